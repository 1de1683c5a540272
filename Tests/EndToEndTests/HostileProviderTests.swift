// The real `deltahook run` binary against a hostile provider and a healthy one at the same time
// (docs/DESIGN.md §2 rules 12–18). In every scenario: the daemon keeps running, the healthy connection keeps
// delivering, and no live record gets a `deleted` event. Each test names the rule it proves.
import Core
import Emulators
import Foundation
import Glibc
import Testing

private let webhookSecret = "whsec_" + Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 11 &+ 5) }).base64EncodedString()
private let githubToken = "ghp_emulatortoken"

/// A daemon polling two GitHub repositories, one served by a hostile emulator and one by a healthy one, and
/// delivering to one receiver.
final class HostileScenario {
    let directory: ScratchDirectory
    let hostile: GitHubEmulator
    let healthy: GitHubEmulator
    let receiver: ReceiverEmulator
    var configPath: String { directory.path + "/config.json" }
    var stateDirectory: String { directory.path + "/state" }
    private(set) var daemon: DaemonProcess?

    init(hostile: GitHubEmulator? = nil) throws {
        directory = try ScratchDirectory("hostile")
        self.hostile = try hostile ?? GitHubEmulator()
        healthy = try GitHubEmulator()
        receiver = try ReceiverEmulator(secrets: [webhookSecret])
    }

    deinit {
        if let daemon, daemon.process.isRunning {
            daemon.signal(SIGTERM)
            _ = daemon.waitForExit(timeout: .seconds(10))
        }
        hostile.stop()
        healthy.stop()
        receiver.stop()
    }

    /// Writes the config (`hostileExtra` goes into the hostile connection, `objectExtra` into its object) and
    /// starts the daemon.
    @discardableResult
    func start(hostileExtra: String = "", objectExtra: String = "") throws -> DaemonProcess {
        func connection(_ id: String, _ emulator: GitHubEmulator, extra: String, objectExtra: String) -> String {
            """
            {"id": "\(id)", "provider": "github", "base_url": "\(emulator.baseURL)",\(extra)
             "auth": {"type": "token", "token": {"env": "E2E_GITHUB_TOKEN"}},
             "objects": [{"name": "issues", "repository": "octo-org/hello", "model": "ticket",
                          "interval": "1s", "initial_sync": "emit"\(objectExtra)}]}
            """
        }
        let config = """
            {"state_directory": "\(stateDirectory)", "log_level": "info", "shutdown_timeout": "5s",
             "connections": [\(connection("hostile", hostile, extra: hostileExtra, objectExtra: objectExtra)),
                             \(connection("healthy", healthy, extra: "", objectExtra: ""))],
             "subscribers": [{"id": "crm", "url": "\(receiver.url)", "secrets": [{"env": "E2E_WEBHOOK_SECRET"}],
                              "events": ["*"], "allow_insecure_http": true, "allow_private_network": true}]}
            """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let process = try DaemonProcess(arguments: ["run", "--config", configPath],
                                        environment: ["E2E_GITHUB_TOKEN": githubToken,
                                                      "E2E_WEBHOOK_SECRET": webhookSecret],
                                        directory: directory.path)
        daemon = process
        return process
    }

    /// Accepted deliveries as (connection, type, record_id).
    var deliveries: [(connection: String, type: String, recordID: String)] {
        receiver.accepted.compactMap { webhook in
            guard let body = try? JSONValue.parse(webhook.body),
                  let connection = body["data"]?["connection"]?.stringValue,
                  let type = body["type"]?.stringValue,
                  let record = body["data"]?["record_id"]?.stringValue else { return nil }
            return (connection, type, record)
        }
    }

    func delivered(_ connection: String, _ type: String, record: Int64) -> Bool {
        deliveries.contains { $0.connection == connection && $0.type == type && $0.recordID == String(record) }
    }

    /// Polls `condition` every 50 ms for at most `timeout`.
    func waitUntil(_ timeout: Duration = .seconds(30), _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    /// The healthy connection still flows: a new issue there is delivered, and the daemon is alive.
    func expectHealthyConnectionFlows(_ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let issue = healthy.createIssue(title: "healthy after \(label)")
        let flowed = waitUntil { self.delivered("healthy", "ticket.created", record: issue.id) }
        #expect(flowed, "the healthy connection stopped after \(label); stderr: \(daemon?.stderr ?? "")",
                sourceLocation: sourceLocation)
        #expect(daemon?.process.isRunning == true, "the daemon died after \(label)", sourceLocation: sourceLocation)
    }

    /// No `deleted` event was delivered for a record the hostile emulator still holds.
    func expectNoLiveRecordDeleted(sourceLocation: SourceLocation = #_sourceLocation) {
        let live = Set(hostile.issues.map { String($0.id) })
        let wrong = deliveries.filter { $0.type.hasSuffix(".deleted") && $0.connection == "hostile" && live.contains($0.recordID) }
        #expect(wrong.isEmpty, "live records got deleted events: \(wrong.map(\.recordID))", sourceLocation: sourceLocation)
    }
}

@Suite("Hostile provider answers, real daemon", .serialized)
struct HostileProviderTests {
    @Test("rule 14: one issue dated 2099 does not freeze the cursor; present-day changes keep flowing")
    func futureDatedRecord() throws {
        let scenario = try HostileScenario()
        let now = scenario.hostile.clock.now()
        let early = scenario.hostile.createIssue(title: "early", at: now.addingTimeInterval(-120))
        let future = scenario.hostile.createIssue(title: "broken import",
                                                  at: Date(timeIntervalSince1970: 4_070_908_800))  // 2099-01-01
        let daemon = try scenario.start()
        #expect(scenario.waitUntil {
            scenario.delivered("hostile", "ticket.created", record: early.id)
                && scenario.delivered("hostile", "ticket.created", record: future.id)
        }, "initial events missing; stderr: \(daemon.stderr)")
        #expect(daemon.waitForLog("record dated in the future", timeout: .seconds(10)), "\(daemon.stderr)")

        // Changes made now, after the 2099 record was read, are still seen.
        scenario.hostile.updateIssue(early.number) { $0.title = "edited today" }
        let later = scenario.hostile.createIssue(title: "created today")
        #expect(scenario.waitUntil {
            scenario.delivered("hostile", "ticket.updated", record: early.id)
                && scenario.delivered("hostile", "ticket.created", record: later.id)
        }, "present-day changes after a 2099 record were never read; stderr: \(daemon.stderr)")
        scenario.expectHealthyConnectionFlows("a 2099 record")
        scenario.expectNoLiveRecordDeleted()
    }
}
