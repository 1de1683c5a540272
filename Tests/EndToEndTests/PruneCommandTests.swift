// `deltahook prune [--dry-run] [--json]` with the built binary against a store prepared through the Store API
// (docs/DESIGN.md §6 `retention`, §7; issue 12 item 3), and what `status` then shows of the store.
import Core
import Foundation
import Store
import Testing

private func json(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

/// A store with: one event delivered 8 days ago (past the 7 d default), one delivered an hour ago, one pending
/// for `gone` (no longer configured), and a tombstone 91 days old beside a live snapshot.
private func prepare(_ directory: String, retention: String? = nil) throws -> (store: StateStore, config: String) {
    let store = try StateStore(path: directory + "/" + StateStore.fileName)
    let now = Date()
    func event(_ n: Int, detected: Date) -> ChangeEvent {
        ChangeEvent(id: "evt_prune_\(n)", model: "ticket", kind: .updated,
                    subject: .init(connection: "acme", provider: "servicenow", object: "incident", recordID: "r\(n)"),
                    occurredAt: detected, detectedAt: detected,
                    content: .init(record: ["id": .string("r\(n)")], raw: ["sys_id": .string("r\(n)")]))
    }
    let old = now.addingTimeInterval(-8 * 86_400), recent = now.addingTimeInterval(-3600)
    _ = try store.commitPage(PageCommit(connection: "acme", object: "incident",
                                        events: [OutgoingEvent(event: event(1, detected: old), subscribers: ["crm"])],
                                        now: old))
    _ = try store.commitPage(PageCommit(connection: "acme", object: "incident",
                                        events: [OutgoingEvent(event: event(2, detected: recent), subscribers: ["crm"]),
                                                 OutgoingEvent(event: event(3, detected: recent), subscribers: ["gone"])],
                                        now: recent))
    for (n, at) in [(1, old), (2, recent)] {
        let id = try #require(try store.deliveries(eventID: "evt_prune_\(n)").first).id
        try store.recordAttempt(AttemptResult(deliveryID: id, attemptedAt: at, httpStatus: 204, latencyMilliseconds: 3,
                                              outcome: .delivered))
    }
    let deleted = now.addingTimeInterval(-91 * 86_400)
    let record: JSONValue = ["id": "x"]
    _ = try store.commitPage(PageCommit(connection: "acme", object: "incident", snapshots: [
        SnapshotWrite(recordID: "dead", contentHash: ContentHash.of(record), record: record, raw: record,
                      sourceTimestamp: deleted, tombstoned: true),
    ], now: deleted))
    _ = try store.commitPage(PageCommit(connection: "acme", object: "incident", snapshots: [
        SnapshotWrite(recordID: "live", contentHash: ContentHash.of(record), record: record, raw: record,
                      sourceTimestamp: now),
    ], now: now))
    let config = directory + "/config.json"
    try """
        {"state_directory": "\(directory)",
         "connections": [{"id": "acme", "provider": "servicenow", "base_url": "https://acme.service-now.com",
                          "auth": {"type": "basic", "username": "u", "password": {"env": "SNOW_PASSWORD"}},
                          "objects": [{"name": "incident"}]}],
         "subscribers": [{"id": "crm", "url": "https://hooks.example.com/crm", "secrets": [{"env": "CRM_SECRET"}]}]
         \(retention.map { ", \"retention\": \($0)" } ?? "")}
        """.write(toFile: config, atomically: true, encoding: .utf8)
    return (store, config)
}

@Suite("deltahook prune", .serialized)
struct PruneCommandTests {
    @Test("--dry-run counts and changes nothing; prune removes exactly that; status shows size and oldest row")
    func dryRunThenPrune() throws {
        let directory = try ScratchDirectory("prune")
        let (store, config) = try prepare(directory.path)

        let dry = try runDeltahook(["prune", "--dry-run", "--json", "--config", config])
        #expect(dry.status == 0, "\(dry.stderr)")
        let counted = try json(dry.stdout)
        #expect(counted["dry_run"] as? Bool == true)
        #expect(counted["events"] as? Int == 1 && counted["deliveries"] as? Int == 1 && counted["attempts"] as? Int == 1)
        #expect(counted["tombstones"] as? Int == 1)
        #expect((counted["orphaned"] as? [String: Any])?["gone"] as? Int == 1)
        #expect(try store.event(id: "evt_prune_1") != nil)
        #expect(try store.deliveries(eventID: "evt_prune_3").first?.state == .pending)

        let text = try runDeltahook(["prune", "--dry-run", "--config", config])
        #expect(text.status == 0 && text.stdout.contains("would remove"), "\(text.stdout)\(text.stderr)")
        #expect(text.stdout.contains("orphaned deliveries: 1 (gone 1)") && text.stdout.contains("events: 1"))

        let pruned = try runDeltahook(["prune", "--json", "--config", config])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        let removed = try json(pruned.stdout)
        #expect(removed["dry_run"] as? Bool == false)
        #expect(removed["events"] as? Int == 1 && removed["tombstones"] as? Int == 1)
        #expect((removed["orphaned"] as? [String: Any])?["gone"] as? Int == 1)
        #expect(try store.event(id: "evt_prune_1") == nil)
        #expect(try store.event(id: "evt_prune_2") != nil && store.event(id: "evt_prune_3") != nil)
        #expect(try store.deliveries(eventID: "evt_prune_3").first?.state == .orphaned)
        #expect(try store.snapshotHeads(connection: "acme", object: "incident", ids: ["dead", "live"]).keys.sorted()
                == ["live"])

        // A second run finds nothing more.
        let again = try json(try runDeltahook(["prune", "--json", "--config", config]).stdout)
        #expect(again["events"] as? Int == 0 && again["tombstones"] as? Int == 0)

        let status = try runDeltahook(["status", "--json", "--config", config])
        #expect(status.status == 0, "\(status.stderr)")
        let report = try json(status.stdout)
        let storage = try #require(report["storage"] as? [String: Any])
        #expect((storage["bytes"] as? Int ?? 0) > 0)
        #expect(storage["auto_vacuum"] as? String == "incremental")
        #expect(storage["oldest_event_at"] is String)
        let subscribers = try #require(report["subscribers"] as? [[String: Any]])
        #expect(subscribers.first { $0["id"] as? String == "gone" }?["orphaned"] as? Int == 1)
        let human = try runDeltahook(["status", "--config", config])
        #expect(human.stdout.contains("store size:") && human.stdout.contains("ORPHANED"), "\(human.stdout)")
    }

    @Test("retention comes from the config; an invalid value refuses to prune")
    func retentionFromConfig() throws {
        let directory = try ScratchDirectory("prune-retention")
        let (_, config) = try prepare(directory.path, retention: #"{"delivered": "30m"}"#)
        let dry = try json(try runDeltahook(["prune", "--dry-run", "--json", "--config", config]).stdout)
        #expect(dry["events"] as? Int == 2)
        #expect((dry["retention"] as? [String: Any])?["delivered"] as? String == "30m")

        let bad = try ScratchDirectory("prune-bad")
        let (store, badConfig) = try prepare(bad.path, retention: #"{"delivered": "soon"}"#)
        let refused = try runDeltahook(["prune", "--config", badConfig])
        #expect(refused.status == 1 && refused.stderr.contains("retention.delivered"), "\(refused.stderr)")
        #expect(try store.event(id: "evt_prune_1") != nil)
        #expect(try runDeltahook(["prune", "--bogus", "--config", badConfig]).status == 64)
    }
}
