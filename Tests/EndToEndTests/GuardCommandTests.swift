// The built `deltahook` binary against a store prepared through the Store API: `quarantine list|clear`
// (docs/DESIGN.md §2 rule 16), `reconcile --apply-held` with and without a daemon holding the poller lock, and
// what `status` shows of both (rule 17).
import Core
import Foundation
import Store
import Testing

private func deltahook(_ arguments: [String], environment: [String: String] = [:]) throws
    -> (status: Int32, stdout: String, stderr: String)
{
    try runDeltahook(arguments, environment: environment)
}

private func json(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

/// acme/incident with live r1…r3 (written a minute ago), a sweep held on them, and one quarantined record.
private func prepare(_ directory: String) throws -> (store: StateStore, config: String) {
    let store = try StateStore(path: directory + "/" + StateStore.fileName)
    let past = Date().addingTimeInterval(-60)
    let snapshots = (1...3).map { i -> SnapshotWrite in
        let record: JSONValue = ["sys_id": .string("r\(i)"), "short_description": .string("printer \(i)")]
        return SnapshotWrite(recordID: "r\(i)", contentHash: ContentHash.of(record), record: record, raw: record,
                             sourceTimestamp: past)
    }
    _ = try store.commitPage(PageCommit(
        connection: "acme", object: "incident", snapshots: snapshots,
        cursor: CursorState(connection: "acme", object: "incident", watermark: past), now: past,
        quarantine: [RejectedRecord(id: "bad", position: "$.result[4]", reason: "$.result[4].sys_id: \"a^ORb\" is not a 32-hex sys_id",
                                    rawExcerpt: #"{"sys_id":"a^ORb"}"#)]))
    let started = Date().addingTimeInterval(-10)
    try store.holdSweep(HeldSweep(connection: "acme", object: "incident", sweepStarted: started, heldAt: started,
                                  wouldDelete: 0, live: 3, listed: 0))
    let config = directory + "/config.json"
    try """
        {"state_directory": "\(directory)",
         "connections": [{"id": "acme", "provider": "servicenow", "base_url": "https://acme.service-now.com",
                          "auth": {"type": "basic", "username": "u", "password": {"env": "SNOW_PASSWORD"}},
                          "objects": [{"name": "incident"}]}],
         "subscribers": [{"id": "crm", "url": "https://hooks.example.com/crm", "secrets": [{"env": "CRM_SECRET"}]}]}
        """.write(toFile: config, atomically: true, encoding: .utf8)
    return (store, config)
}

private let secrets = ["SNOW_PASSWORD": "pw-guard-e2e", "CRM_SECRET": "whsec_" + String(repeating: "A", count: 44)]

@Suite("deltahook quarantine and reconcile", .serialized)
struct GuardCommandTests {
    @Test("rule 16: quarantine list shows the record (table and --json); clear removes it")
    func quarantineListAndClear() throws {
        let directory = try ScratchDirectory("quarantine")
        let (store, config) = try prepare(directory.path)
        let table = try deltahook(["quarantine", "list", "--config", config])
        #expect(table.status == 0, "\(table.stderr)")
        for text in ["CONNECTION", "RECORD", "REASON", "acme", "incident", "bad", "not a 32-hex sys_id"] {
            #expect(table.stdout.contains(text), "\(text) missing from:\n\(table.stdout)")
        }
        let listed = try deltahook(["quarantine", "list", "--json", "--connection", "acme", "--config", config])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        #expect(rows.count == 1)
        #expect(rows.first?["record_key"] as? String == "bad" && rows.first?["seen_count"] as? Int == 1)
        #expect((rows.first?["raw_excerpt"] as? String)?.contains("a^ORb") == true)

        let usage = try deltahook(["quarantine", "clear", "--record", "bad", "--connection", "acme", "--config", config])
        #expect(usage.status == 64)
        let cleared = try deltahook(["quarantine", "clear", "--connection", "acme", "--object", "incident",
                                     "--record", "bad", "--config", config])
        #expect(cleared.status == 0 && cleared.stdout.contains("cleared 1 quarantined record"), "\(cleared.stderr)")
        #expect(try store.quarantine().isEmpty)
    }

    @Test("rules 16, 17: status shows the quarantined count and \"sweep held: would delete N of M\"")
    func statusShowsBoth() throws {
        let directory = try ScratchDirectory("guard-status")
        let (_, config) = try prepare(directory.path)
        let text = try deltahook(["status", "--config", config])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("QUARANTINED"))
        #expect(text.stdout.contains("acme/incident: sweep held: would delete 3 of 3"))
        #expect(text.stdout.contains("deltahook reconcile --connection acme --object incident --apply-held"))
        let root = try json(try deltahook(["status", "--json", "--config", config]).stdout)
        let object = try #require((root["objects"] as? [[String: Any]])?.first)
        #expect(object["quarantined"] as? Int == 1)
        let held = try #require(object["sweep_held"] as? [String: Any])
        #expect(held["would_delete"] as? Int == 3 && held["live"] as? Int == 3 && held["apply_requested"] as? Bool == false)
    }

    @Test("rule 17: reconcile --apply-held without a daemon applies the held sweep once, with deliveries")
    func applyHeldNow() throws {
        let directory = try ScratchDirectory("apply-held")
        let (store, config) = try prepare(directory.path)
        let result = try deltahook(["reconcile", "--connection", "acme", "--object", "incident", "--apply-held",
                                    "--json", "--config", config], environment: secrets)
        #expect(result.status == 0, "\(result.stderr)")
        let root = try json(result.stdout)
        #expect(root["action"] as? String == "applied" && root["deleted"] as? Int == 3)
        let events = try store.events(EventQuery(connection: "acme", limit: 100)).map(\.event)
        #expect(events.map(\.kind) == [.deleted, .deleted, .deleted])
        #expect(events.map(\.recordID) == ["r1", "r2", "r3"])
        for event in events { #expect(try store.deliveries(eventID: event.id).map(\.subscriber) == ["crm"]) }
        #expect(try store.heldSweep(connection: "acme", object: "incident") == nil)
        #expect(try store.liveRecordIDs(connection: "acme", object: "incident").isEmpty)

        let again = try deltahook(["reconcile", "--connection", "acme", "--object", "incident", "--apply-held",
                                   "--config", config], environment: secrets)
        #expect(again.status == 1 && again.stderr.contains("no held sweep"), "\(again.stderr)")
        #expect(try store.events(EventQuery(connection: "acme", limit: 100)).count == 3)
    }

    @Test("rule 17: beside a running poller, reconcile --apply-held only requests it; usage and config errors exit 64/78")
    func applyHeldRequested() throws {
        let directory = try ScratchDirectory("apply-request")
        let (store, config) = try prepare(directory.path)
        let lock = try #require(try PollerLock.acquire(directory: directory.path))  // what `deltahook run` holds
        let result = try deltahook(["reconcile", "--connection", "acme", "--object", "incident", "--apply-held",
                                    "--config", config], environment: secrets)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("requested"))
        #expect(try store.heldSweep(connection: "acme", object: "incident")?.applyRequested == true)
        #expect(try store.events(EventQuery(connection: "acme", limit: 100)).isEmpty)
        let sweep = try deltahook(["reconcile", "--connection", "acme", "--object", "incident", "--config", config],
                                  environment: secrets)
        #expect(sweep.status == 1 && sweep.stderr.contains("deltahook run is polling"))
        withExtendedLifetime(lock) {}

        let missing = try deltahook(["reconcile", "--connection", "acme", "--apply-held", "--config", config])
        #expect(missing.status == 64)
        let unknown = try deltahook(["reconcile", "--connection", "acme", "--object", "nope", "--apply-held",
                                     "--config", config], environment: secrets)
        #expect(unknown.status == 64 && unknown.stderr.contains("no object \"nope\""))
        let noSecret = try deltahook(["reconcile", "--connection", "acme", "--object", "incident", "--apply-held",
                                      "--config", config])
        #expect(noSecret.status == 78)
    }
}
