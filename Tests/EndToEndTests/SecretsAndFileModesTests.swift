// Issue 12 items 1 and 2 with the real binary (docs/DESIGN.md §1, "Secrets and file modes"): secrets planted
// in every path never reach an output or the store file, and the state files are private when deltahook runs
// from a shell without systemd's UMask=0077.
import Core
import Emulators
import Foundation
import Glibc
import Testing

private let webhookSecret = "whsec_" + Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }).base64EncodedString()
private let githubToken = "ghp_plantedGitHubToken4242"
private let snowClientSecret = "plantedSnowClientSecret77"
private let snowRefreshToken = "plantedSnowRefreshToken88"
/// Slack-style hook: the secret is the path.
private let hookPath = "/services/T0PATHSECRET1/B0PATHSECRET2/XxPathSecret3"
private let subscriberQuerySecret = "plantedSubscriberQuery55"
private let redirectPassword = "plantedRedirectPass66"
private let redirectQuerySecret = "plantedRedirectQuery99"

/// Everything in `text` that is one of `secrets`.
private func leaks(_ text: String, _ secrets: [String]) -> [String] {
    secrets.filter { !$0.isEmpty && text.contains($0) }
}

/// The mode bits of `path`, nil when it does not exist.
private func mode(_ path: String) -> mode_t? {
    var info = stat()
    return stat(path, &info) == 0 ? info.st_mode & 0o777 : nil
}

@Suite("Secrets and private files (issue 12 items 1-2), real binary", .serialized)
struct SecretsAndFileModesTests {
    @Test("item 1: planted secrets reach no log, CLI output, metrics text or store byte")
    func plantedSecretsNeverLeave() async throws {
        let directory = try ScratchDirectory("secrets")
        var snowOptions = ServiceNowEmulator.Options(oauthClients: ["deltahook": snowClientSecret],
                                                     refreshTokens: [snowRefreshToken])
        snowOptions.rotateRefreshTokens = true
        let snow = try ServiceNowEmulator(options: snowOptions)
        defer { snow.stop() }
        // Every Table API request: 401 whose body echoes the bearer token it was sent.
        snow.failNext(.unauthorizedEchoingAuthorization, times: 10_000)
        let github = try GitHubEmulator(options: .init(tokens: [githubToken]))
        defer { github.stop() }
        _ = github.createIssue(title: "one change to deliver")
        // A receiver that echoes the signing secret in its error body, behind a Slack-style secret path.
        let echo = try ReceiverEmulator(secrets: [webhookSecret], path: hookPath)
        defer { echo.stop() }
        echo.setDefault(.status(500, body: "signature mismatch; I was configured with \(webhookSecret)"))
        // A receiver that redirects to a Location carrying user:pass@ and a token in the query.
        let moved = try ReceiverEmulator(secrets: [webhookSecret])
        defer { moved.stop() }
        moved.setDefault(.redirect(to: "http://deltahook:\(redirectPassword)@127.0.0.1:9/new?sig=\(redirectQuerySecret)"))
        let metricsPort = try freeLoopbackPort()
        let state = directory.path + "/state"
        let config = """
            {"state_directory": "\(state)", "log_level": "debug", "shutdown_timeout": "5s",
             "http": {"listen": "127.0.0.1:\(metricsPort)"},
             "connections": [
               {"id": "snow", "provider": "servicenow", "base_url": "\(snow.baseURL)",
                "auth": {"type": "oauth2", "grant": "refresh_token", "client_id": "deltahook",
                         "client_secret": {"env": "E2E_SNOW_CS"}, "refresh_token": {"env": "E2E_SNOW_RT"}},
                "objects": [{"name": "incident", "interval": "1s", "initial_sync": "emit"}]},
               {"id": "gh", "provider": "github", "base_url": "\(github.baseURL)",
                "auth": {"type": "token", "token": {"env": "E2E_GITHUB_TOKEN"}},
                "objects": [{"name": "issues", "repository": "octo-org/hello", "model": "ticket", "interval": "1s",
                             "initial_sync": "emit"}]}],
             "subscribers": [
               {"id": "echo", "url": "\(echo.url)", "secrets": [{"env": "E2E_WEBHOOK_SECRET"}], "events": ["*"],
                "allow_insecure_http": true, "allow_private_network": true},
               {"id": "moved", "url": "\(moved.url)?token=\(subscriberQuerySecret)", "secrets": [{"env": "E2E_WEBHOOK_SECRET"}],
                "events": ["*"], "allow_insecure_http": true, "allow_private_network": true}],
             "delivery": {"retry_schedule": ["0s", "1s", "1s"]}}
            """
        let configPath = directory.path + "/config.json"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let environment = ["E2E_SNOW_CS": snowClientSecret, "E2E_SNOW_RT": snowRefreshToken,
                           "E2E_GITHUB_TOKEN": githubToken, "E2E_WEBHOOK_SECRET": webhookSecret]
        let daemon = try DaemonProcess(arguments: ["run", "--config", configPath], environment: environment,
                                       directory: directory.path)
        defer {
            if daemon.process.isRunning { daemon.signal(SIGTERM); _ = daemon.waitForExit(timeout: .seconds(10)) }
        }
        func waitUntil(_ condition: () -> Bool) async -> Bool {
            let deadline = ContinuousClock.now + .seconds(40)
            while ContinuousClock.now < deadline {
                if condition() { return true }
                try? await Task.sleep(for: .milliseconds(100))
            }
            return condition()
        }
        func cli(_ arguments: [String]) throws -> String {
            let result = try runDeltahook(arguments + ["--config", configPath], environment: environment)
            return result.stdout + result.stderr
        }
        // Every path exercised: tokens minted and rotated, the 401 echo stored, both receivers answered thrice.
        let exercised = await waitUntil {
            snow.issuedTokens.count >= 4 && echo.receivedCount >= 3 && moved.receivedCount >= 3
                && ((try? cli(["status", "--json"]))?.contains("Invalid credentials") ?? false)
        }
        #expect(exercised, "stderr: \(daemon.stderr)")

        let status = try cli(["status", "--json"])
        let deliveries = try cli(["deliveries", "list", "--json"])
        let eventID = try #require(deliveries.firstMatch(of: /"event_id"\s*:\s*"([^"]+)"/)?.1)
        let shown = try cli(["deliveries", "show", String(eventID), "--json"])
        let subscribers = try cli(["subscribers", "list"]) + cli(["subscribers", "list", "--json"])
        let (metricsStatus, metrics) = try loopbackGET(port: metricsPort, path: "/metrics")
        #expect(metricsStatus == 200)
        func storeBytes() -> String {
            ["", "-wal"].map { suffix in
                let data = FileManager.default.contents(atPath: state + "/deltahook.sqlite" + suffix) ?? Data()
                return String(decoding: data, as: UTF8.self)
            }.joined()
        }
        let storeWhileRunning = storeBytes()
        #expect(await daemon.waitForExit(timeout: .zero) == nil)
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0)

        let secrets = [snowClientSecret, snowRefreshToken, githubToken, webhookSecret,
                       String(webhookSecret.dropFirst("whsec_".count)), "T0PATHSECRET1", "B0PATHSECRET2",
                       "XxPathSecret3", subscriberQuerySecret, redirectPassword, redirectQuerySecret]
            + snow.issuedTokens
        let outputs = ["stderr": daemon.stderr, "status --json": status, "deliveries list --json": deliveries,
                       "deliveries show --json": shown, "subscribers list": subscribers, "metrics": metrics,
                       "store while running": storeWhileRunning, "store after stop": storeBytes()]
        for (name, text) in outputs.sorted(by: { $0.key < $1.key }) {
            #expect(leaks(text, secrets).isEmpty, "\(name) leaks \(leaks(text, secrets))")
        }
        // The planted texts did arrive and were scrubbed, not merely absent.
        #expect(status.contains("Bearer <redacted>"), "status: \(status)")
        #expect(shown.contains("<redacted>"), "deliveries show: \(shown)")
        #expect(subscribers.contains("/…"), "subscribers: \(subscribers)")
        #expect((deliveries + shown).contains("redirect to http://127.0.0.1:9/…"), "deliveries: \(deliveries)")
    }

    @Test("item 2: poll-once from a shell creates the state directory 0700 and the store 0600")
    func pollOnceFromAShellMakesPrivateFiles() async throws {
        let directory = try ScratchDirectory("modes-poll")
        let github = try GitHubEmulator(options: .init(tokens: [githubToken]))
        defer { github.stop() }
        _ = github.createIssue(title: "a change")
        let state = directory.path + "/fresh/state"
        let configPath = try writeGitHubConfig(directory: directory, state: state, github: github)
        let result = try runDeltahook(["poll-once", "--connection", "gh", "--config", configPath],
                                      environment: ["E2E_GITHUB_TOKEN": githubToken])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(mode(state) == 0o700)
        #expect(mode(directory.path + "/fresh") == 0o700, "parents created for the store are private too")
        for suffix in ["", "-wal", "-shm"] {
            if let found = mode(state + "/deltahook.sqlite" + suffix) { #expect(found == 0o600, "\(suffix)") }
        }
        #expect(mode(state + "/deltahook.sqlite") != nil)
    }

    @Test("item 2: run from a shell tightens an existing 0755 state directory and 0644 store, with a warning")
    func runFromAShellTightensLooseFiles() async throws {
        let directory = try ScratchDirectory("modes-run")
        let github = try GitHubEmulator(options: .init(tokens: [githubToken]))
        defer { github.stop() }
        let state = directory.path + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o755])
        // A store left by an older version, world-readable.
        let configPath = try writeGitHubConfig(directory: directory, state: state, github: github)
        let first = try runDeltahook(["poll-once", "--connection", "gh", "--config", configPath],
                                     environment: ["E2E_GITHUB_TOKEN": githubToken])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(chmod(state, 0o755) == 0 && chmod(state + "/deltahook.sqlite", 0o644) == 0)

        let daemon = try DaemonProcess(arguments: ["run", "--config", configPath],
                                       environment: ["E2E_GITHUB_TOKEN": githubToken], directory: directory.path)
        defer {
            if daemon.process.isRunning { daemon.signal(SIGTERM); _ = daemon.waitForExit(timeout: .seconds(10)) }
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline, !daemon.stderr.contains("deltahook started") {
            try? await Task.sleep(for: .milliseconds(100))
        }
        #expect(daemon.stderr.contains("deltahook started"), "\(daemon.stderr)")
        #expect(mode(state) == 0o700)
        for suffix in ["", "-wal", "-shm"] {
            if let found = mode(state + "/deltahook.sqlite" + suffix) { #expect(found == 0o600, "\(suffix)") }
        }
        #expect(daemon.stderr.contains("tightened"), "\(daemon.stderr)")
        #expect(daemon.stderr.contains("was 0755"), "\(daemon.stderr)")
        #expect(daemon.stderr.contains("was 0644"), "\(daemon.stderr)")
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0)
    }

    private func writeGitHubConfig(directory: ScratchDirectory, state: String, github: GitHubEmulator) throws -> String {
        let config = """
            {"state_directory": "\(state)", "log_level": "info", "shutdown_timeout": "5s",
             "connections": [{"id": "gh", "provider": "github", "base_url": "\(github.baseURL)",
                              "auth": {"type": "token", "token": {"env": "E2E_GITHUB_TOKEN"}},
                              "objects": [{"name": "issues", "repository": "octo-org/hello", "model": "ticket",
                                           "interval": "1s", "initial_sync": "emit"}]}],
             "subscribers": []}
            """
        let path = directory.path + "/config.json"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
