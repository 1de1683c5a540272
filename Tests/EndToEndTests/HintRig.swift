// The real `deltahook run` binary with push hints (docs/DESIGN.md §2 rule 23): two GitHub emulators (connection
// `gh` takes GitHub-style hints, `sw` Standard-Webhooks-style ones), a verifying receiver, and the hook listener
// on `http.listen`. Used by the hint end-to-end tests and by the latency measurement (Scripts/bench-hints).
import Core
import Crypto
import Emulators
import Foundation
import Glibc
import HTTPClient
import TestSupport
import Testing

let hintWebhookSecret = "whsec_" + Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }).base64EncodedString()
let hintGitHubSecret = "gh-hook-secret-e2e-0123456789abcdef"
let hintStandardSecret = "whsec_" + Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 5 &+ 9) }).base64EncodedString()
private let hintGitHubToken = "ghp_emulatortoken"

final class HintRig {
    let directory: ScratchDirectory
    let gh: GitHubEmulator
    let sw: GitHubEmulator
    let receiver: ReceiverEmulator
    let port: UInt16
    let sender: GitHubHintSender
    let client: CurlHTTPClient
    private(set) var daemon: DaemonProcess?
    var configPath: String { directory.path + "/config.json" }

    init() throws {
        directory = try ScratchDirectory("hints")
        gh = try GitHubEmulator()
        sw = try GitHubEmulator()
        receiver = try ReceiverEmulator(secrets: [hintWebhookSecret])
        port = try freeLoopbackPort()
        sender = try GitHubHintSender(url: "http://127.0.0.1:\(port)/hooks/gh", secret: hintGitHubSecret)
        client = try CurlHTTPClient()
    }

    deinit {
        if let daemon, daemon.process.isRunning {
            daemon.signal(SIGTERM)
            _ = daemon.waitForExit(timeout: .seconds(10))
        }
        sender.stop()
        client.shutdown()
        gh.stop()
        sw.stop()
        receiver.stop()
    }

    /// Writes the config and starts the daemon. `hints: false` leaves hints out (the interval-only baseline).
    func start(interval: String, debounce: String = "1s", hints: Bool = true, logLevel: String = "info",
               maxPerMinute: Int = 600, swHints: Bool = true) throws {
        try writeConfig(interval: interval, debounce: debounce, hints: hints, logLevel: logLevel,
                        maxPerMinute: maxPerMinute, swHints: swHints)
        daemon = try DaemonProcess(arguments: ["run", "--config", configPath], environment: [
            "E2E_GITHUB_TOKEN": hintGitHubToken, "E2E_WEBHOOK_SECRET": hintWebhookSecret,
            "E2E_GH_HOOK": hintGitHubSecret, "E2E_SW_HOOK": hintStandardSecret,
        ], directory: directory.path)
    }

    /// Writes the config (also for a SIGHUP reload). `swHints: false` leaves `sw` without hints.
    func writeConfig(interval: String, debounce: String = "1s", hints: Bool = true, logLevel: String = "info",
                     maxPerMinute: Int = 600, swHints: Bool = true) throws {
        func connection(_ id: String, _ emulator: GitHubEmulator, _ hintsJSON: String) -> String {
            let withHints = hints && (id == "gh" || swHints)
            return """
            {"id": "\(id)", "provider": "github", "base_url": "\(emulator.baseURL)",\(withHints ? hintsJSON : "")
             "auth": {"type": "token", "token": {"env": "E2E_GITHUB_TOKEN"}},
             "objects": [{"name": "issues", "repository": "octo-org/hello", "model": "ticket",
                          "interval": "\(interval)", "initial_sync": "emit"}]}
            """
        }
        let config = """
            {"state_directory": "\(directory.path)/state", "log_level": "\(logLevel)", "shutdown_timeout": "5s",
             "http": {"listen": "127.0.0.1:\(port)"},
             "hints": {"debounce": "\(debounce)", "max_per_minute": \(maxPerMinute)},
             "connections": [
               \(connection("gh", gh, #" "hints": {"style": "github", "secret": {"env": "E2E_GH_HOOK"}},"#)),
               \(connection("sw", sw, #" "hints": {"style": "standard", "secret": {"env": "E2E_SW_HOOK"}},"#))],
             "subscribers": [{"id": "crm", "url": "\(receiver.url)", "secrets": [{"env": "E2E_WEBHOOK_SECRET"}],
                              "events": ["*"], "allow_insecure_http": true, "allow_private_network": true}]}
            """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    var stderr: String { daemon?.stderr ?? "" }

    /// Accepted deliveries of `connection` for the issue `issue` (its id is the record id) whose title is `title`,
    /// with their arrival times.
    func arrivals(_ connection: String, issue: GitHubEmulator.Issue, title: String) -> [Date] {
        let record = issue.id
        return receiver.accepted.compactMap { webhook in
            guard let body = try? JSONValue.parse(webhook.body), body["data"]?["connection"]?.stringValue == connection,
                  body["data"]?["record_id"]?.stringValue == String(record),
                  body["data"]?["record"]?["title"]?.stringValue == title else { return nil }
            return webhook.receivedAt
        }
    }

    /// POSTs a Standard-Webhooks-signed hint to `/hooks/sw` (`secret`: another one for a forged hint).
    func standardHint(secret: String = hintStandardSecret, body: [UInt8] = Array(#"{"type":"changed"}"#.utf8))
        async throws -> Int?
    {
        let id = "msg_" + UUID().uuidString
        let timestamp = Int64(Date().timeIntervalSince1970)
        let signature = StandardWebhooks.signature(id: id, timestamp: timestamp, body: body,
                                                   secret: try StandardWebhooks.Secret(secret))
        let request = HTTPRequest(method: "POST", url: "http://127.0.0.1:\(port)/hooks/sw", headers: [
            ("webhook-id", id), ("webhook-timestamp", String(timestamp)), ("webhook-signature", signature),
            ("Content-Type", "application/json"),
        ], body: body, timeout: .seconds(5))
        return try? await client.send(request).status
    }

    /// POSTs `body` to `path` with `headers` (refusal tests).
    func post(_ path: String, body: [UInt8], headers: [(name: String, value: String)] = []) async -> Int? {
        let request = HTTPRequest(method: "POST", url: "http://127.0.0.1:\(port)\(path)", headers: headers, body: body,
                                  timeout: .seconds(10))
        return try? await client.send(request).status
    }

    /// Edits the title of `record` on `emulator` (now) and returns the new title.
    @discardableResult
    func retitle(_ emulator: GitHubEmulator, _ record: Int64, _ title: String) -> GitHubEmulator.Issue? {
        emulator.updateIssue(record) { $0.title = title }
    }

    /// One sample of change → signed delivery: edit, send the hint (when `hint`), wait for the delivery.
    func measure(_ emulator: GitHubEmulator, connection: String, issue original: GitHubEmulator.Issue, title: String,
                 hint: Bool, timeout: Duration) async -> Duration? {
        let start = Date()
        guard let issue = retitle(emulator, original.number, title) else { return nil }
        if hint {
            if connection == "gh" {
                await sender.issueChanged(issue, action: "edited")
            } else {
                _ = try? await standardHint()
            }
        }
        guard await Wait.until(timeout: timeout, interval: .milliseconds(5), {
            !arrivals(connection, issue: issue, title: title).isEmpty
        }), let arrived = arrivals(connection, issue: issue, title: title).first else { return nil }
        return .milliseconds(Int64((arrived.timeIntervalSince(start) * 1000).rounded()))
    }
}
