// `deltahook run` as systemd runs it (docs/DESIGN.md §8): the real binary against the GitHub emulator and a webhook
// receiver, with a fake $NOTIFY_SOCKET. Proves: a bad config exits 78 before READY with every problem printed;
// a good one sends READY=1 + STATUS=, polls, delivers, writes the metrics textfile and serves /metrics and
// /healthz; SIGHUP with a broken file keeps running (RELOADING=1 … READY=1, problems logged) and a good file
// adds a subscriber; WATCHDOG=1 pings stop when the engine stalls; SIGTERM sends STOPPING=1 and exits 0.
import Core
import Emulators
import Foundation
import Glibc
import TestSupport
import Testing

private let webhookSecret = "whsec_" + Data((0..<32).map { UInt8($0 &* 7 &+ 3) }).base64EncodedString()
private let githubToken = "ghp_emulatortoken"

/// One daemon scenario: emulator, receiver, temp dirs, config and environment.
private final class Scenario {
    let directory: ScratchDirectory
    let github: GitHubEmulator
    let receiver: ReceiverEmulator
    let notify: NotifySocket
    let httpPort: UInt16
    var configPath: String { directory.path + "/config.json" }
    var runtimeDirectory: String { directory.path + "/run" }
    var stateDirectory: String { directory.path + "/state" }

    init() throws {
        directory = try ScratchDirectory("daemon")
        github = try GitHubEmulator()
        receiver = try ReceiverEmulator(secrets: [webhookSecret])
        notify = try NotifySocket(directory: directory.path)
        httpPort = try freeLoopbackPort()
        try FileManager.default.createDirectory(atPath: runtimeDirectory, withIntermediateDirectories: true)
    }

    deinit {
        github.stop()
        receiver.stop()
    }

    func subscriber(_ id: String) -> String {
        """
        {"id": "\(id)", "url": "\(receiver.url)", "secrets": [{"env": "E2E_WEBHOOK_SECRET"}], "events": ["*"],
         "allow_insecure_http": true, "allow_private_network": true}
        """
    }

    func connection(_ id: String) -> String {
        """
        {"id": "\(id)", "provider": "github", "base_url": "\(github.baseURL)",
         "auth": {"type": "token", "token": {"env": "E2E_GITHUB_TOKEN"}},
         "objects": [{"name": "issues", "repository": "octo-org/hello", "model": "ticket",
                      "interval": "1s", "initial_sync": "emit"}]}
        """
    }

    func writeConfig(subscribers: [String] = ["crm"], connections: [String] = ["e2e-github"], extra: String = "",
                     shutdownTimeout: String = "5s") throws {
        let config = """
            {"state_directory": "\(stateDirectory)", "log_level": "info", "shutdown_timeout": "\(shutdownTimeout)",
             "http": {"listen": "127.0.0.1:\(httpPort)"},\(extra)
             "connections": [\(connections.map(connection).joined(separator: ","))],
             "subscribers": [\(subscribers.map(subscriber).joined(separator: ","))]}
            """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ["NOTIFY_SOCKET": notify.path, "E2E_GITHUB_TOKEN": githubToken, "E2E_WEBHOOK_SECRET": webhookSecret,
         "RUNTIME_DIRECTORY": runtimeDirectory].merging(extra) { _, new in new }
    }

    /// `binary`: `deltahook`, or the test-only `DeltahookWatchdogProof` (the daemon with its engine stalled).
    func start(_ extra: [String: String] = [:], binary: String = "deltahook") throws -> DaemonProcess {
        try DaemonProcess(arguments: ["run", "--config", configPath], environment: environment(extra),
                          directory: directory.path, binary: binary)
    }
}

@Suite("deltahook run under a fake systemd", .serialized)
struct DaemonTests {
    @Test("a bad config exits 78 with every problem printed and never sends READY=1")
    func badConfigExits78BeforeReady() async throws {
        let scenario = try Scenario()
        try scenario.writeConfig(extra: #" "colour": "blue", "log_levle": "debug","#)
        let daemon = try scenario.start()
        let status = await daemon.waitForExit(timeout: .seconds(20))
        #expect(status == 78, "\(daemon.stderr)")
        await scenario.notify.read(for: .milliseconds(200))
        #expect(!scenario.notify.messages.contains { $0.contains("READY=1") }, "\(scenario.notify.messages)")
        let stderr = daemon.stderr
        #expect(stderr.contains("colour"), "\(stderr)")
        #expect(stderr.contains("log_levle"), "\(stderr)")
        #expect(!stderr.contains(webhookSecret) && !stderr.contains(githubToken))
    }

    @Test("READY, STATUS, polling and delivery, metrics, reload (broken then good), SIGTERM drain, status --json")
    func lifecycle() async throws {
        let scenario = try Scenario()
        scenario.github.createIssue(title: "first issue")
        try scenario.writeConfig()
        let daemon = try scenario.start(["WATCHDOG_USEC": "1000000"])

        let ready = await scenario.notify.waitFor(timeout: .seconds(20)) { $0.contains("READY=1") }
        let readyMessage = try #require(ready, "no READY=1; stderr: \(daemon.stderr)")
        #expect(readyMessage.contains("STATUS=1 connections, 1 subscribers"), "\(readyMessage)")
        let stateMode = try FileManager.default.attributesOfItem(atPath: scenario.stateDirectory)[.posixPermissions]
        #expect(stateMode as? Int == 0o700, "the daemon creates its state directory private")

        // The engine polls at once and the dispatcher delivers the `created` event, signed.
        _ = await Wait.until(timeout: .seconds(20)) { !scenario.receiver.accepted.isEmpty }
        let delivered = try #require(scenario.receiver.accepted.first, "nothing delivered; stderr: \(daemon.stderr)")
        #expect(delivered.type == "ticket.created")

        // Watchdog pings at half of WATCHDOG_USEC while the engine beats.
        let pings = await scenario.notify.read(for: .seconds(2)).filter { $0.contains("WATCHDOG=1") }
        #expect(pings.count >= 2, "\(scenario.notify.messages)")

        // Metrics textfile (0644) and the listener.
        let prom = scenario.runtimeDirectory + "/deltahook.prom"
        var promText: String { (try? String(contentsOfFile: prom, encoding: .utf8)) ?? "" }
        _ = await Wait.until(timeout: .seconds(15), interval: .milliseconds(100)) {
            promText.contains("deltahook_events_total") && promText.contains("deltahook_up{")
        }
        // Every series carries this node's id (a cluster of one): `deltahook_up{node="<host>-<pid>"} 1`.
        #expect(promText.contains("deltahook_up{node=\"") && promText.contains("\"} 1\n"), "\(promText)")
        #expect(promText.split(separator: "\n").contains {
            $0.hasPrefix("deltahook_subscriber_backlog{node=\"") && $0.contains(",subscriber=\"crm\"} ")
        })
        let mode = try FileManager.default.attributesOfItem(atPath: prom)[.posixPermissions] as? Int
        #expect(mode == 0o644)
        let health = try loopbackGET(port: scenario.httpPort, path: "/healthz")
        #expect(health.0 == 200 && health.1 == "ok\n")
        let metrics = try loopbackGET(port: scenario.httpPort, path: "/metrics")
        #expect(metrics.0 == 200 && metrics.1.contains("# TYPE deltahook_events_total counter"))

        // A SQLite daemon is a cluster of one: status shows its node, alive, holding the polled object's lease.
        let (running, runningText) = try statusJSON(configPath: scenario.configPath)
        let nodes = try #require(running["nodes"] as? [[String: Any]], "\(runningText)")
        #expect(nodes.count == 1 && nodes.first?["alive"] as? Bool == true, "\(runningText)")
        #expect(nodes.first?["pid"] as? Int == Int(daemon.process.processIdentifier), "\(runningText)")
        let nodeID = try #require(nodes.first?["id"] as? String)
        let polled = (running["objects"] as? [[String: Any]])?.first { $0["object"] as? String == "issues" }
        #expect((polled?["lease"] as? [String: Any])?["owner"] as? String == nodeID, "\(runningText)")

        // SIGHUP with a broken file: RELOADING=1 (+ MONOTONIC_USEC), READY=1, still running, problems logged.
        scenario.notify.drain()
        try #"{"connections": [], "bogus": 1}"#.write(toFile: scenario.configPath, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        let reloading = await scenario.notify.waitFor(timeout: .seconds(10)) { $0.contains("RELOADING=1") }
        #expect(reloading?.contains("MONOTONIC_USEC=") == true)
        #expect(await scenario.notify.waitFor(timeout: .seconds(10)) { $0.contains("READY=1") } != nil)
        #expect(daemon.process.isRunning)
        #expect(await daemon.waitForLog("reload rejected", timeout: .seconds(5)))
        #expect(daemon.stderr.contains("bogus"), "\(daemon.stderr)")
        #expect(daemon.stderr.contains("connections"))

        // SIGHUP with a good file adding a subscriber: applied without a restart.
        scenario.notify.drain()
        try scenario.writeConfig(subscribers: ["crm", "audit"])
        daemon.signal(SIGHUP)
        let reloaded = await scenario.notify.waitFor(timeout: .seconds(10)) { $0.contains("READY=1") }
        #expect(reloaded?.contains("2 subscribers") == true, "\(String(describing: reloaded))")
        #expect(await daemon.waitForLog("configuration reloaded", timeout: .seconds(5)))

        // A change after the reload reaches both subscribers.
        scenario.github.createIssue(title: "second issue")
        _ = await Wait.until(timeout: .seconds(20)) { scenario.receiver.accepted.count >= 3 }
        #expect(scenario.receiver.accepted.count >= 3, "\(daemon.stderr)")
        #expect(daemon.process.isRunning, "the reloads did not restart or stop the process")

        // SIGTERM: STOPPING=1, exit 0 within shutdown_timeout (5 s) plus start-up slack.
        daemon.signal(SIGTERM)
        #expect(await scenario.notify.waitFor(timeout: .seconds(10)) { $0.contains("STOPPING=1") } != nil)
        let status = await daemon.waitForExit(timeout: .seconds(15))
        #expect(status == 0, "\(daemon.stderr)")
        #expect(!FileManager.default.fileExists(atPath: prom), "the textfile is removed on stop")
        #expect(!daemon.stderr.contains(webhookSecret) && !daemon.stderr.contains(githubToken))

        // status --json reads the store the daemon left behind.
        try assertStatusShape(configPath: scenario.configPath)
    }

    private func assertStatusShape(configPath: String) throws {
        let (root, text) = try statusJSON(configPath: configPath)
        #expect(!text.contains(webhookSecret) && !text.contains(githubToken))
        #expect((root["nodes"] as? [Any])?.isEmpty == true, "the stopped daemon left the cluster: \(text)")
        #expect(root["generated_at"] is String)
        #expect(root["pending_total"] as? Int == 0, "\(text)")
        let objects = try #require(root["objects"] as? [[String: Any]])
        let issues = try #require(objects.first { $0["object"] as? String == "issues" }, "\(text)")
        #expect(issues["connection"] as? String == "e2e-github")
        #expect(issues["last_success_at"] is String)
        #expect(issues["last_poll_at"] is String)
        #expect(issues["cursor"] is String)
        #expect(issues["lag_seconds"] is Double || issues["lag_seconds"] is Int)
        #expect((issues["events_total"] as? Int ?? 0) >= 2)
        #expect(issues["last_error"] is NSNull)
        let subscribers = try #require(root["subscribers"] as? [[String: Any]])
        #expect(Set(subscribers.compactMap { $0["id"] as? String }) == ["crm", "audit"])
        for subscriber in subscribers {
            #expect(subscriber["state"] as? String == "active")
            #expect(subscriber["backlog"] as? Int == 0)
            #expect(subscriber["failed"] as? Int == 0)
            #expect(subscriber.keys.contains("oldest_pending_age_seconds"))
            #expect(subscriber.keys.contains("reason"))
        }
    }

    @Test("the watchdog stops pinging when the engine's liveness stalls, and /healthz turns 503")
    func stalledEngineStopsWatchdogPings() async throws {
        let scenario = try Scenario()
        try scenario.writeConfig()
        // The shipped binary has no stall switch: the test-only build sets `DaemonTestHooks.stallEngineLiveness`.
        let daemon = try scenario.start(["WATCHDOG_USEC": "400000"], binary: "DeltahookWatchdogProof")
        #expect(await scenario.notify.waitFor(timeout: .seconds(20)) { $0.contains("READY=1") } != nil, "\(daemon.stderr)")
        // Pings flow until the engine's heartbeat is older than the liveness window, then stop for good.
        #expect(await daemon.waitForLog("liveness probe failed", timeout: .seconds(15)), "\(daemon.stderr)")
        scenario.notify.drain()
        let after = await scenario.notify.read(for: .milliseconds(1500))
        #expect(!after.contains { $0.contains("WATCHDOG=1") }, "\(after)")
        #expect(daemon.process.isRunning, "without systemd nobody kills it; the daemon itself keeps running")
        let health = try loopbackGET(port: scenario.httpPort, path: "/healthz")
        #expect(health.0 == 503 && health.1.contains("heartbeat"), "\(health)")
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0)
    }

    @Test("SIGTERM waits for a delivery in flight (within shutdown_timeout) and records it")
    func drainsInFlightDelivery() async throws {
        let scenario = try Scenario()
        scenario.receiver.setDefault(ReceiverReply.ok.delayed(.milliseconds(1500)))
        scenario.github.createIssue(title: "slow receiver")
        try scenario.writeConfig(shutdownTimeout: "10s")
        let daemon = try scenario.start()
        #expect(await scenario.notify.waitFor(timeout: .seconds(20)) { $0.contains("READY=1") } != nil, "\(daemon.stderr)")
        _ = await Wait.until(timeout: .seconds(20)) { scenario.receiver.receivedCount > 0 }
        try #require(scenario.receiver.receivedCount == 1, "no delivery started; \(daemon.stderr)")
        daemon.signal(SIGTERM)  // the POST is still waiting for its answer
        #expect(await daemon.waitForExit(timeout: .seconds(20)) == 0, "\(daemon.stderr)")
        let (root, text) = try statusJSON(configPath: scenario.configPath)
        #expect(root["pending_total"] as? Int == 0, "the drained delivery was recorded: \(text)")
        #expect(scenario.receiver.receivedCount == 1, "not sent twice")
    }

    @Test("a receiver slower than shutdown_timeout does not hold the stop; the delivery stays pending")
    func drainDeadline() async throws {
        let scenario = try Scenario()
        scenario.receiver.setDefault(ReceiverReply.ok.delayed(.seconds(60)))
        scenario.github.createIssue(title: "stuck receiver")
        try scenario.writeConfig(shutdownTimeout: "500ms")
        let daemon = try scenario.start()
        #expect(await scenario.notify.waitFor(timeout: .seconds(20)) { $0.contains("READY=1") } != nil, "\(daemon.stderr)")
        _ = await Wait.until(timeout: .seconds(20)) { scenario.receiver.receivedCount > 0 }
        try #require(scenario.receiver.receivedCount == 1, "no delivery started; \(daemon.stderr)")
        daemon.signal(SIGTERM)
        // Far below the receiver's 60 s: the drain gave up at its deadline and the process still exited 0.
        #expect(await daemon.waitForExit(timeout: .seconds(20)) == 0, "\(daemon.stderr)")
        let (root, text) = try statusJSON(configPath: scenario.configPath)
        #expect(root["pending_total"] as? Int == 1, "the unanswered delivery is due again later: \(text)")
    }

    @Test("SIGHUP adds and removes connections without a restart")
    func reloadAddsAndRemovesConnections() async throws {
        let scenario = try Scenario()
        scenario.github.createIssue(title: "seen by both connections")
        try scenario.writeConfig()
        let daemon = try scenario.start()
        #expect(await scenario.notify.waitFor(timeout: .seconds(20)) { $0.contains("READY=1") } != nil, "\(daemon.stderr)")
        func connections() -> Set<String> {
            Set(scenario.receiver.accepted.compactMap { try? JSONValue.parse($0.body)["data"]?["connection"]?.stringValue })
        }
        _ = await Wait.until(timeout: .seconds(20)) { connections().contains("e2e-github") }
        #expect(connections() == ["e2e-github"])

        try scenario.writeConfig(connections: ["e2e-github", "e2e-second"])
        daemon.signal(SIGHUP)
        #expect(await scenario.notify.waitFor(timeout: .seconds(10)) { $0.contains("READY=1") }?.contains("2 connections") == true)
        _ = await Wait.until(timeout: .seconds(20)) { connections().contains("e2e-second") }
        #expect(connections() == ["e2e-github", "e2e-second"], "the new connection polls at once: \(daemon.stderr)")

        try scenario.writeConfig(connections: ["e2e-second"])
        daemon.signal(SIGHUP)
        #expect(await scenario.notify.waitFor(timeout: .seconds(10)) { $0.contains("READY=1") }?.contains("1 connections") == true)
        #expect(daemon.process.isRunning, "reloads never restart the process")
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0, "\(daemon.stderr)")
        let (root, text) = try statusJSON(configPath: scenario.configPath)
        let objects = try #require(root["objects"] as? [[String: Any]], "\(text)")
        let removed = objects.first { $0["connection"] as? String == "e2e-github" }
        #expect(removed?["configured"] as? Bool == false, "the removed connection's history is kept, marked: \(text)")
        #expect(objects.first { $0["connection"] as? String == "e2e-second" }?["configured"] as? Bool == true)
    }
}

/// `deltahook status --json` with no environment at all (no secrets reachable): the parsed object and the text.
func statusJSON(configPath: String) throws -> ([String: Any], String) {
    let process = Process()
    process.executableURL = try daemonBinary()
    process.arguments = ["status", "--json", "--config", configPath]
    process.environment = [:]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    #expect(process.terminationStatus == 0, "\(text)")
    let parsed = try JSONSerialization.jsonObject(with: data) as? [String: Any]
    return (try #require(parsed, "\(text)"), text)
}