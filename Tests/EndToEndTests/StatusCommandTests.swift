// `deltahook status` against a store prepared through the Store API (no daemon running): per-object poll
// state, cursor and lag, last error; per-subscriber state with reason, backlog, oldest pending age, failed
// count; rows for objects/subscribers removed from the config; secrets never printed; no store → exit 1.
import Core
import Foundation
import Store
import Testing

private let secretMarker = "STATUS-E2E-do-not-print-7781"

private func runStatus(_ arguments: [String], environment: [String: String] = [:]) throws
    -> (status: Int32, stdout: String, stderr: String)
{
    try runDeltahook(["status"] + arguments, environment: environment)
}

/// A state directory with: acme/incident polled successfully with a cursor, acme/problem failing, crm with two
/// pending deliveries (one record), ops paused by the operator with one failed delivery, and a subscriber
/// `gone` the config no longer lists.
private func prepareStore(in directory: String) throws {
    let store = try StateStore(path: directory + "/" + StateStore.fileName)
    let now = Date()
    let watermark = now.addingTimeInterval(-90)
    func event(_ n: Int, record: String) -> ChangeEvent {
        ChangeEvent(id: "evt_status_\(n)", model: "ticket", kind: .updated,
                    subject: .init(connection: "acme", provider: "servicenow", object: "incident", recordID: record),
                    occurredAt: watermark, detectedAt: now.addingTimeInterval(-60),
                    content: .init(record: ["id": .string(record)], raw: ["sys_id": .string(record)]))
    }
    _ = try store.commitPage(PageCommit(
        connection: "acme", object: "incident",
        events: [OutgoingEvent(event: event(1, record: "r1"), subscribers: ["crm", "ops"]),
                 OutgoingEvent(event: event(2, record: "r1"), subscribers: ["crm", "gone"])],
        cursor: CursorState(connection: "acme", object: "incident", watermark: watermark),
        now: now.addingTimeInterval(-60)))
    try store.recordPoll(PollReport(connection: "acme", object: "incident", at: now.addingTimeInterval(-5), events: 2,
                                    records: 7))
    try store.recordPoll(PollReport(connection: "acme", object: "problem", at: now.addingTimeInterval(-3),
                                    error: "HTTP 403: insufficient rights for table problem"))
    let claimed = try store.claimDueDeliveries(subscriber: "ops", now: now, leaseUntil: now.addingTimeInterval(30))
    let opsDelivery = try #require(claimed.first)
    try store.recordAttempt(AttemptResult(deliveryID: opsDelivery.delivery.id, attemptedAt: now, httpStatus: 410,
                                          latencyMilliseconds: 12, outcome: .failed))
    try store.setSubscriberState(id: "ops", state: .paused, reason: "operator: maintenance window", at: now)
}

@Suite("deltahook status", .serialized)
struct StatusCommandTests {
    @Test("--json lists objects and subscribers from config and store, without secrets")
    func jsonShape() throws {
        let directory = try ScratchDirectory("status")
        try prepareStore(in: directory.path)
        let config = directory.path + "/config.json"
        try """
            {"state_directory": "\(directory.path)",
             "connections": [{"id": "acme", "provider": "servicenow", "base_url": "https://acme.service-now.com",
                              "auth": {"type": "basic", "username": "u", "password": {"env": "SNOW_PASSWORD"}},
                              "objects": [{"name": "incident"}, {"name": "problem"}, {"name": "change_request"}]}],
             "subscribers": [{"id": "crm", "url": "https://h.example.com/\(secretMarker)", "secrets": [{"env": "X"}]},
                             {"id": "ops", "url": "https://ops.example.com", "secrets": [{"env": "Y"}]}]}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let result = try runStatus(["--json", "--config", config], environment: ["SNOW_PASSWORD": secretMarker])
        #expect(result.status == 0, "\(result.stderr)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(root["pending_total"] as? Int == 3)  // crm ×2, gone ×1; ops failed
        let objects = try #require(root["objects"] as? [[String: Any]])
        #expect(objects.map { $0["object"] as? String } == ["incident", "problem", "change_request"])
        let incident = objects[0]
        #expect(incident["cursor"] is String && incident["last_success_at"] is String)
        #expect(((incident["lag_seconds"] as? Double) ?? 0) >= 89)
        #expect(incident["events_total"] as? Int == 2)
        let problem = objects[1]
        #expect((problem["last_error"] as? String)?.contains("403") == true)
        #expect(problem["last_success_at"] is NSNull && problem["cursor"] is NSNull)
        #expect(objects[2]["last_poll_at"] is NSNull, "configured but never polled")

        let subscribers = try #require(root["subscribers"] as? [[String: Any]])
        let byID = Dictionary(uniqueKeysWithValues: subscribers.compactMap { s in (s["id"] as? String).map { ($0, s) } })
        #expect(byID["crm"]?["state"] as? String == "active")
        #expect(byID["crm"]?["backlog"] as? Int == 2)
        #expect(((byID["crm"]?["oldest_pending_age_seconds"] as? Double) ?? 0) >= 59)
        #expect(byID["ops"]?["state"] as? String == "paused")
        #expect(byID["ops"]?["reason"] as? String == "operator: maintenance window")
        #expect(byID["ops"]?["failed"] as? Int == 1 && byID["ops"]?["backlog"] as? Int == 0)
        #expect(byID["gone"]?["configured"] as? Bool == false && byID["gone"]?["backlog"] as? Int == 1)
        #expect(!result.stdout.contains(secretMarker) && !result.stderr.contains(secretMarker))

        // The human form carries the same facts in tables.
        let human = try runStatus(["--config", config], environment: ["SNOW_PASSWORD": secretMarker])
        #expect(human.status == 0)
        for text in ["CONNECTION", "incident", "HTTP 403", "SUBSCRIBER", "paused", "operator: maintenance window",
                     "gone (not configured)", "pending deliveries: 3"] {
            #expect(human.stdout.contains(text), "missing \(text) in\n\(human.stdout)")
        }
        #expect(!human.stdout.contains(secretMarker))
    }

    @Test("--json and the tables list the nodes and which node holds each object's poll lease")
    func nodesAndLeases() throws {
        let directory = try ScratchDirectory("status-cluster")
        try prepareStore(in: directory.path)
        // A daemon that joined and took acme/incident's lease (what `deltahook run` does before its first poll).
        let store = try StateStore(path: directory.path + "/" + StateStore.fileName)
        let node = NodeIdentity(id: "node-a", host: "host-a.example", pid: 4242, version: "9.9.9", startedAt: Date())
        try store.joinCluster(node, leaseTTL: .seconds(30), objects: 2)
        let lease = try store.acquirePollLease(connection: "acme", object: "incident")
        #expect(lease.mayPoll, "\(lease)")

        let result = try runStatus(["--json", "--config", directory.path + "/absent.json",
                                    "--state-directory", directory.path])
        #expect(result.status == 0, "\(result.stderr)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let nodes = try #require(root["nodes"] as? [[String: Any]], "\(result.stdout)")
        #expect(nodes.count == 1)
        #expect(nodes.first?["id"] as? String == "node-a" && nodes.first?["host"] as? String == "host-a.example")
        #expect(nodes.first?["pid"] as? Int == 4242 && nodes.first?["version"] as? String == "9.9.9")
        #expect(nodes.first?["alive"] as? Bool == true && nodes.first?["last_heartbeat_at"] is String)
        let objects = try #require(root["objects"] as? [[String: Any]])
        let incident = try #require(objects.first { $0["object"] as? String == "incident" })
        let held = try #require(incident["lease"] as? [String: Any], "\(result.stdout)")
        #expect(held["owner"] as? String == "node-a" && held["expired"] as? Bool == false)
        #expect(held["token"] is Int && held["expires_at"] is String)
        #expect(objects.first { $0["object"] as? String == "problem" }?["lease"] is NSNull)

        let human = try runStatus(["--config", directory.path + "/absent.json", "--state-directory", directory.path])
        #expect(human.status == 0)
        for text in ["LEASE", "nodes:", "NODE", "LAST HEARTBEAT", "host-a.example", "4242"] {
            #expect(human.stdout.contains(text), "missing \(text) in\n\(human.stdout)")
        }
        let incidentLine = human.stdout.split(separator: "\n").first { $0.hasPrefix("acme") && $0.contains("incident") }
        #expect(incidentLine?.contains("node-a") == true, "\(human.stdout)")

        // Leaving releases the lease and removes the node: status says no daemon runs.
        try store.leaveCluster()
        let after = try runStatus(["--config", directory.path + "/absent.json", "--state-directory", directory.path])
        #expect(after.stdout.contains("nodes: none"), "\(after.stdout)")
    }

    @Test("rule 22: status shows each budgeted connection's use today, projection, run-out time and intervals")
    func requestBudgets() throws {
        let directory = try ScratchDirectory("status-budget")
        try prepareStore(in: directory.path)
        // What a daemon leaves: 30 requests counted today, and a plan stretching two 1-minute objects to 5 minutes.
        let store = try StateStore(path: directory.path + "/" + StateStore.fileName)
        let now = Date()
        let limits = RequestBudgetLimits(perDay: 1000)
        for _ in 0..<30 { _ = try store.admitRequest(connection: "zoho", limits: limits, at: now) }
        try store.saveBudgetPlans(["invoices", "contacts"].map {
            BudgetPlanRow(connection: "zoho", object: $0, configuredInterval: .seconds(60),
                          effectiveInterval: .seconds(300), costPerCycle: 1, perDay: 1000, updatedAt: now)
        })

        let result = try runStatus(["--json", "--config", directory.path + "/absent.json",
                                    "--state-directory", directory.path])
        #expect(result.status == 0, "\(result.stderr)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let budgets = try #require(root["budgets"] as? [[String: Any]], "\(result.stdout)")
        let zoho = try #require(budgets.first)
        #expect(budgets.count == 1 && zoho["connection"] as? String == "zoho")
        #expect(zoho["per_day"] as? Int == 1000)
        let used = try #require(zoho["used_today"] as? Int)
        #expect(used == 30 || used == 0, "30, or 0 when the UTC day rolled during the test")
        // Two objects, one request each every 5 minutes: at most 576 more today, so the budget lasts the day.
        let projected = try #require(zoho["projected_today"] as? Int)
        #expect(projected >= used && projected <= used + 577)
        #expect(zoho["runs_out_at"] is NSNull)
        let objects = try #require(zoho["objects"] as? [[String: Any]])
        #expect(objects.map { $0["object"] as? String } == ["contacts", "invoices"])
        #expect(objects.allSatisfy { $0["effective_interval_seconds"] as? Double == 300 })
        #expect(objects.allSatisfy { $0["configured_interval_seconds"] as? Double == 60 })

        let human = try runStatus(["--config", directory.path + "/absent.json", "--state-directory", directory.path])
        #expect(human.status == 0)
        for text in ["request budgets:", "USED TODAY", "/ 1000", "not today", "invoices 5m (configured 1m)"] {
            #expect(human.stdout.contains(text), "missing \(text) in\n\(human.stdout)")
        }
    }

    @Test("--state-directory without a config; a missing store exits 1 and says why")
    func noConfigAndNoStore() throws {
        let directory = try ScratchDirectory("status-nostore")
        let missing = try runStatus(["--config", directory.path + "/absent.json", "--state-directory", directory.path])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no store at"), "\(missing.stderr)")
        let missingJSON = try runStatus(["--json", "--state-directory", directory.path, "--config", "/nonexistent"])
        #expect(missingJSON.status == 1)
        #expect(missingJSON.stdout.contains("\"error\""))

        try prepareStore(in: directory.path)
        let storeOnly = try runStatus(["--json", "--config", directory.path + "/absent.json",
                                       "--state-directory", directory.path])
        #expect(storeOnly.status == 0, "\(storeOnly.stderr)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(storeOnly.stdout.utf8)) as? [String: Any])
        #expect((root["note"] as? String)?.contains("not readable") == true)
        let objects = try #require(root["objects"] as? [[String: Any]])
        #expect(Set(objects.compactMap { $0["object"] as? String }) == ["incident", "problem"])
        #expect(objects.allSatisfy { $0["configured"] as? Bool == false })
    }
}
