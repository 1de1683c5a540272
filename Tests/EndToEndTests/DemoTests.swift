// `deltahook demo` (issue 7 item 8): the built binary runs the emulators, the change generator, the verifying
// receiver and the real daemon, prints events from all four providers and a summary with no signature failure
// and the Zoho Books connection's request budget (used vs budget, stretched intervals),
// exits 0 after --duration and removes its temporary directory. In-process: the summary counts a delivery signed
// with the wrong secret as a failure (so exit 1), and the generator's edits reach all three emulators.
import Core
import Crypto
import Emulators
import Foundation
import Glibc
import HTTPClient
import Testing
import TestSupport

@Suite("deltahook demo", .serialized)
struct DemoTests {
    /// The environment a fresh shell would give the demo: no config, no credentials, no systemd variables.
    private var environment: [String: String] {
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        if let tmp = ProcessInfo.processInfo.environment["TMPDIR"] { env["TMPDIR"] = tmp }
        return env
    }

    @Test("the binary: events from ServiceNow, GitHub, NetSuite and Zoho Books, all verified, the Zoho budget in the summary, exit 0 after --duration, cleanup")
    func builtBinaryRunsTheDemo() async throws {
        let binary = try #require(BuiltBinary.deltahook(), "build first: swift build")
        let result = try await ProcessRunner.run(binary, ["demo", "--duration", "8s"], environment: environment,
                                                 timeout: .seconds(60))
        let report = "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)"
        #expect(!result.timedOut, "\(report)")
        #expect(result.status == 0, "\(report)")

        let eventLines = result.stdout.split(separator: "\n").filter { $0.contains(" ✓ ") || $0.contains(" ✗ ") }
        for source in ["servicenow/incident", "servicenow/sys_user", "github/issues", "netsuite/customer",
                       "zoho_books/invoices", "zoho_books/contacts"] {
            #expect(eventLines.contains { $0.contains(source) }, "no \(source) event; \(report)")
        }
        #expect(eventLines.contains { $0.contains("ticket.created") }, "\(report)")
        #expect(!eventLines.contains { $0.contains(" ✗ ") }, "\(report)")
        #expect(result.stdout.contains("signature failures: 0"), "\(report)")
        #expect(result.stdout.contains("events by provider:"), "\(report)")
        #expect(result.stdout.contains("  zoho_books  "), "the banner names the Zoho organization; \(report)")
        // The Zoho connection's budget: requests counted against it, and intervals the planner stretched past the
        // configured second (60 a minute cannot carry two objects polled every second).
        let budgetLine = try #require(result.stdout.split(separator: "\n").first {
            $0.contains("\(DemoWorld.zohoConnection): ") && $0.contains("requests today of \(DemoWorld.zohoBudgetPerDay)")
        }, "no budget line; \(report)")
        #expect(budgetLine.contains("this minute of \(DemoWorld.zohoBudgetPerMinute)"), "\(budgetLine)")
        #expect(budgetLine.contains("invoices ") && budgetLine.contains("contacts "), "\(budgetLine)")
        #expect(budgetLine.contains("(configured 1.0s)"), "stretched: \(budgetLine)")

        // The banner names the temporary directory; it is gone after the exit.
        let stateLine = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("  state ") }, "\(report)")
        let path = try #require(stateLine.split(separator: " ").dropFirst().first.map(String.init))
        #expect(path.contains("deltahook-demo-"))
        #expect(!FileManager.default.fileExists(atPath: path), "\(path) was left behind")
        // Secrets never reach the output.
        #expect(!result.stdout.contains("whsec_") && !result.stderr.contains("whsec_"), "\(report)")
    }

    @Test("--json: one parseable object per event, every signature verified, then the summary")
    func jsonOutput() async throws {
        let binary = try #require(BuiltBinary.deltahook(), "build first: swift build")
        let result = try await ProcessRunner.run(binary, ["demo", "--duration", "4s", "--json"], environment: environment,
                                                 timeout: .seconds(60))
        let report = "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)"
        #expect(result.status == 0 && !result.timedOut, "\(report)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let objects = try lines.map { try JSONValue.parse(Array($0.utf8)) }
        let summary = try #require(objects.last?["summary"], "\(report)")
        let events = objects.dropLast()
        #expect(!events.isEmpty)
        #expect(events.allSatisfy { $0["signature_verified"] == .bool(true) }, "\(report)")
        #expect(Set(events.compactMap { $0["provider"]?.stringValue }) == ["servicenow", "github", "netsuite", "zoho_books"],
                "\(report)")
        let budget = try #require(summary["budgets"]?.arrayValue?.first, "\(report)")
        #expect(budget["connection"]?.stringValue == DemoWorld.zohoConnection)
        #expect((budget["used_today"]?.int64Value ?? 0) > 0, "the Zoho requests are counted: \(report)")
        #expect(budget["per_minute"] == .integer(Int64(DemoWorld.zohoBudgetPerMinute)))
        #expect(events.allSatisfy { $0["webhook_id"]?.stringValue?.hasPrefix("evt_") == true })
        #expect(summary["signature_failures"] == .integer(0) && summary["ok"] == .bool(true), "\(report)")
        #expect(summary["events"]?.int64Value == Int64(Set(events.compactMap { $0["webhook_id"]?.stringValue }).count))
        #expect(result.stderr.contains("deltahook demo"), "the banner goes to stderr in --json mode")
    }

    @Test("Ctrl-C (SIGINT) without --duration: the daemon drains, the summary is printed, exit 0, cleanup")
    func interruptStopsTheDemo() async throws {
        let binary = try #require(BuiltBinary.deltahook(), "build first: swift build")
        let process = try RunningProcess(binary, ["demo"], environment: environment)
        let flowing = await Wait.until(timeout: .seconds(30), interval: .milliseconds(100)) {
            process.stdout.contains(" ✓ ")
        }
        #expect(flowing, "no event within 30 s: \(process.stdout)\n\(process.stderr)")
        process.kill(signal: SIGINT)
        let result = await process.wait(timeout: .seconds(30))
        let report = "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)"
        #expect(!result.timedOut && result.status == 0, "\(report)")
        #expect(result.stdout.contains("signature failures: 0"), "\(report)")
        let stateLine = result.stdout.split(separator: "\n").first { $0.hasPrefix("  state ") }
        if let path = stateLine?.split(separator: " ").dropFirst().first.map(String.init) {
            #expect(!FileManager.default.fileExists(atPath: path), "\(path) was left behind")
        } else {
            Issue.record("no state line in the banner: \(report)")
        }
    }

    @Test("usage mistakes exit 64")
    func usage() async throws {
        let binary = try #require(BuiltBinary.deltahook(), "build first: swift build")
        for arguments in [["demo", "--duration", "soon"], ["demo", "--duration", "0s"], ["demo", "--colour"]] {
            let result = try await ProcessRunner.run(binary, arguments, environment: environment, timeout: .seconds(20))
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
        }
    }

    @Test("a delivery signed with another secret is a signature failure: the demo would exit 1")
    func wrongSecretFailsTheSummary() async throws {
        let good = try StandardWebhooks.generateSecret()
        let other = try StandardWebhooks.generateSecret()
        let receiver = try ReceiverEmulator(secrets: [good])
        defer { receiver.stop() }
        let client = try CurlHTTPClient()
        defer { client.shutdown() }

        func send(id: String, signedWith secret: String) async throws {
            let body = Array(JSONValue.object(JSONObject([
                ("type", .string("ticket.updated")), ("timestamp", .string("2026-11-29T06:00:01Z")),
                ("data", .object(JSONObject([
                    ("event_id", .string(id)), ("connection", .string("demo-servicenow")),
                    ("provider", .string("servicenow")), ("object", .string("incident")),
                    ("record_id", .string("9d385017c611228701d22104cc95c371")),
                    ("record", .object(JSONObject([("number", .string("INC0010001"))]))),
                    ("changes", .object(JSONObject([("status", .object(JSONObject([
                        ("from", .string("open")), ("to", .string("in_progress"))])))]))),
                ]))),
            ])).serialized().utf8)
            let timestamp = Int64(Date().timeIntervalSince1970)
            let signature = try StandardWebhooks.sign(id: id, timestamp: timestamp, body: body,
                                                      secrets: [try StandardWebhooks.Secret(secret)])
            let response = try await client.send(HTTPRequest(method: "POST", url: receiver.url, headers: [
                ("content-type", "application/json"), ("webhook-id", id),
                ("webhook-timestamp", String(timestamp)), ("webhook-signature", signature),
            ], body: body))
            #expect(response.status == 204)
        }
        try await send(id: "evt_good", signedWith: good)
        try await send(id: "evt_bad", signedWith: other)

        var summary = DemoSummary()
        let received = receiver.received
        #expect(received.count == 2)
        for webhook in received {
            let delivery = try #require(DemoDelivery(webhook, latency: .milliseconds(12)))
            if webhook.webhookID == "evt_good" {
                #expect(delivery.line().contains("status: open → in_progress"), "\(delivery.line())")
                #expect(delivery.line().contains("INC0010001") && delivery.line().contains(" ✓ "))
            } else {
                #expect(delivery.line().contains("✗ signature"), "\(delivery.line())")
            }
            summary.add(delivery)
        }
        #expect(summary.events == 2 && summary.deliveries == 2)
        #expect(summary.verified == 1 && summary.signatureFailures == 1)
        #expect(!summary.succeeded)
        #expect(summary.render().contains("signature failures: 1"))
        #expect(summary.latencyPercentile(50) == 12)
        #expect(summary.json["summary"]?["ok"] == .bool(false))
        #expect(!DemoSummary().succeeded, "no event at all is a failed demo")
    }

    @Test("the change generator edits records in all four emulators, with creates and updates")
    func generatorTouchesEveryProvider() throws {
        let world = try DemoWorld(secrets: try DemoSecrets.generate())
        defer { world.stop() }
        #expect(world.servicenow.ids("incident").count == 3 && world.servicenow.ids("sys_user").count == 3)
        #expect(world.github.issues.count == 3 && world.netsuite.rowCount("customer") == 3)
        #expect(world.zoho.records("invoices").count == 3 && world.zoho.records("contacts").count == 3)

        let generator = DemoChangeGenerator(world: world, seed: 42)
        var changes: [DemoChange] = []
        let start = Date()
        for tick in 0..<60 { changes += generator.step(now: start.addingTimeInterval(Double(tick))) }
        for provider in DemoChange.Provider.allCases {
            let mine = changes.filter { $0.provider == provider }
            #expect(mine.count >= 15, "every provider is the sure one every fourth tick: \(provider)")
            #expect(mine.contains { $0.kind == "created" } && mine.contains { $0.kind == "updated" }, "\(provider)")
        }
        #expect(changes.contains { $0.kind == "deleted" })
        #expect(world.servicenow.rejectedRequests.isEmpty)

        // The same seed replays the same edits (a demo run can be reproduced while debugging).
        let again = try DemoWorld(secrets: try DemoSecrets.generate())
        defer { again.stop() }
        let replay = DemoChangeGenerator(world: again, seed: 42)
        var replayed: [DemoChange] = []
        for tick in 0..<60 { replayed += replay.step(now: start.addingTimeInterval(Double(tick))) }
        #expect(replayed.map(\.summary) == changes.map(\.summary))
    }
}
