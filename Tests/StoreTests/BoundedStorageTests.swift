// Bounded storage and lease-checked results (docs/DESIGN.md §5 `orphaned`, §6 `retention`; issue 12 items 3
// and 5): each class of row pruned at its own age, pending never; tombstones purged; a result that a re-arm
// overtook is discarded and the re-armed delivery goes out; and a churn run with a one-minute retention on an
// injected clock whose file size levels off.
import Foundation
import Testing
import Core
@testable import Store

/// 1 min delivered, 2 min failed/orphaned, 3 min tombstones: short enough to step through with an injected clock.
private let shortPolicy = RetentionPolicy(delivered: 60, failed: 120, tombstones: 180)

private func commit(_ store: StateStore, _ events: [(ChangeEvent, [String])], at now: Date = t0) throws {
    _ = try store.commitPage(PageCommit(connection: "c", object: "o",
                                        events: events.map { OutgoingEvent(event: $0.0, subscribers: $0.1) },
                                        now: now))
}

private func deliveryID(_ store: StateStore, _ event: ChangeEvent, _ subscriber: String = "crm") throws -> Int64 {
    try #require(try store.deliveries(eventID: event.id).first { $0.subscriber == subscriber }).id
}

@Suite("Bounded storage: retention, orphaned deliveries, tombstones (issue 12 item 3)")
struct BoundedStorageTests {
    @Test("each class is pruned at its own age; pending never; dry run only counts", arguments: StoreBackend.all)
    func eachClassPrunedAtItsAge(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let delivered = makeEvent("A", 1), failed = makeEvent("B", 1), pending = makeEvent("C", 1)
        let unrouted = makeEvent("D", 1), orphan = makeEvent("E", 1)
        try commit(store, [(delivered, ["crm"]), (failed, ["crm"]), (pending, ["crm"]), (unrouted, []),
                           (orphan, ["gone"])])
        try store.recordAttempts([
            AttemptResult(deliveryID: try deliveryID(store, delivered), attemptedAt: t0, httpStatus: 204,
                          latencyMilliseconds: 1, outcome: .delivered),
            AttemptResult(deliveryID: try deliveryID(store, failed), attemptedAt: t0, httpStatus: 500,
                          latencyMilliseconds: 1, outcome: .failed),
        ])
        func present() throws -> [String] {
            try [delivered, failed, pending, unrouted, orphan].filter { try store.event(id: $0.id) != nil }.map(\.recordID)
        }

        // Nothing is old enough yet.
        var report = try store.applyRetention(shortPolicy, configuredSubscribers: ["crm"], now: t0.addingTimeInterval(59))
        #expect(report.events == 0 && report.orphaned == ["gone": 1])
        #expect(try store.deliveries(eventID: orphan.id).first?.state == .orphaned)
        #expect(try store.backlog(subscriber: "gone").orphaned == 1)
        #expect(try store.backlog(subscriber: "gone").pending == 0)
        #expect(try store.dueDeliveries(subscriber: "gone", now: .distantFuture).isEmpty)

        // A dry run one second after the delivered retention counts A and D with their rows, and changes nothing.
        let at61 = t0.addingTimeInterval(61)
        let dry = try store.applyRetention(shortPolicy, configuredSubscribers: ["crm"], now: at61, dryRun: true)
        #expect(dry.events == 2 && dry.deliveries == 1 && dry.attempts == 1 && dry.orphaned.isEmpty)
        #expect(try present() == ["A", "B", "C", "D", "E"])

        report = try store.applyRetention(shortPolicy, configuredSubscribers: ["crm"], now: at61)
        #expect(report.events == 2 && report.deliveries == 1 && report.attempts == 1)
        #expect(try present() == ["B", "C", "E"])
        #expect(try store.attempts(deliveryID: try deliveryID(store, failed)).count == 1)

        // Failed goes after its own, longer retention; orphaned counts from when it was orphaned (t0 + 59 s).
        report = try store.applyRetention(shortPolicy, configuredSubscribers: ["crm"], now: t0.addingTimeInterval(121))
        #expect(report.events == 1)
        #expect(try present() == ["C", "E"])
        report = try store.applyRetention(shortPolicy, configuredSubscribers: ["crm"], now: t0.addingTimeInterval(180))
        #expect(report.events == 1)
        #expect(try present() == ["C"])

        // A pending delivery keeps its event however old.
        report = try store.applyRetention(shortPolicy, configuredSubscribers: ["crm"], now: t0.addingTimeInterval(86_400 * 365))
        #expect(report.events == 0)
        #expect(try present() == ["C"])
        #expect(try store.pendingCount() == 1)
    }

    @Test("orphaned deliveries come back with replay, and a subscriber back in the config is not orphaned", arguments: StoreBackend.all)
    func orphanedAreReplayable(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let event = makeEvent("A", 1)
        try commit(store, [(event, ["crm", "old"])])
        #expect(try store.orphanDeliveries(keeping: ["crm"], now: t0, dryRun: true) == ["old": 1])
        #expect(try store.orphanDeliveries(keeping: ["crm"], now: t0) == ["old": 1])
        #expect(try store.orphanDeliveries(keeping: ["crm"], now: t0).isEmpty)
        #expect(try store.deliveries(subscriber: "crm").first?.state == .pending)
        #expect(try store.replay(subscriber: "old", since: .distantPast, now: t0) { _ in true } == 1)
        #expect(try store.deliveries(subscriber: "old").first?.state == .pending)
        #expect(try store.orphanDeliveries(keeping: ["crm", "old"], now: t0).isEmpty)
    }

    @Test("tombstones are purged after their retention; live snapshots stay; an undelete then looks new", arguments: StoreBackend.all)
    func tombstonesPurged(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        _ = try store.commitPage(PageCommit(connection: "c", object: "o",
                                            snapshots: [snapshotWrite("live", 1), snapshotWrite("dead", 1, tombstoned: true)],
                                            now: t0))
        #expect(try store.purgeTombstones(before: t0, dryRun: true) == 0)
        #expect(try store.purgeTombstones(before: t0.addingTimeInterval(1), dryRun: true) == 1)
        #expect(try store.storageSummary().oldestTombstoneAt == t0)
        let report = try store.applyRetention(shortPolicy, configuredSubscribers: nil, now: t0.addingTimeInterval(181))
        #expect(report.tombstones == 1)
        let heads = try store.snapshotHeads(connection: "c", object: "o", ids: ["live", "dead"])
        #expect(Set(heads.keys) == ["live"])
        #expect(try store.storageSummary().oldestTombstoneAt == nil)
    }

    @Test("a new file is incremental-vacuum; the summary reports size and the oldest event")
    func storageSummary() throws {
        let dir = try TempDir()
        let store = try StateStore(path: dir.dbPath)
        try commit(store, [(makeEvent("A", 1, detected: t0.addingTimeInterval(-5)), ["crm"])])
        let summary = try store.storageSummary()
        #expect(summary.autoVacuum == "incremental")
        #expect(summary.totalBytes > 0)
        #expect(summary.oldestEventAt == t0.addingTimeInterval(-5))
    }

    @Test("an upgraded small file is switched to incremental vacuum, its deliveries and attempts kept")
    func upgradeSwitchesVacuumMode() throws {
        let dir = try TempDir()
        do {
            // A version-2 file as released: no auto_vacuum, deliveries without lease_token.
            let database = try Database(path: dir.dbPath)
            try database.withConnection { try $0.executeScript("PRAGMA auto_vacuum = NONE; VACUUM;") }
            try database.write { db in
                try db.executeScript(Schema.version1)
                try db.executeScript(Schema.version2)
                try db.executeScript("PRAGMA user_version = 2")
                try db.executeScript("""
                    INSERT INTO events (seq, event_id, type, model, kind, connection, provider, object, record_id,
                                        detected_at, record, raw)
                    VALUES (7, 'evt_x', 'ticket.updated', 'ticket', 'updated', 'c', 'p', 'o', 'r', 1, '{}', '{}');
                    INSERT INTO deliveries (id, event_seq, subscriber, record_key, state, attempts, created_at, updated_at)
                    VALUES (3, 7, 'crm', 'c/o/r', 'failed', 8, 1, 2);
                    INSERT INTO attempts (delivery_id, attempted_at, latency_ms, error) VALUES (3, 2, 10, 'timeout');
                    """)
            }
            let mode = try database.withConnection { try $0.queryOne("PRAGMA auto_vacuum") { $0.int(0) } }
            #expect(mode == 0)
        }
        let store = try StateStore(path: dir.dbPath)
        #expect(try userVersion(store) == StateStore.schemaVersion)
        #expect(try store.storageSummary().autoVacuum == "incremental")
        let delivery = try #require(try store.deliveries(eventID: "evt_x").first)
        #expect(delivery.id == 3 && delivery.state == .failed && delivery.attempts == 8 && delivery.leaseToken == 0)
        #expect(try store.attempts(deliveryID: 3).map(\.error) == ["timeout"])
        // The rebuilt table takes the new state; the foreign keys still cascade.
        #expect(try store.orphanDeliveries(keeping: [], now: t0).isEmpty)
        #expect(try store.replay(subscriber: "crm", since: .distantPast, now: t0) { _ in true } == 1)
        #expect(try store.orphanDeliveries(keeping: [], now: t0) == ["crm": 1])
        try store.database.write { try $0.execute("DELETE FROM events WHERE seq = 7") }
        #expect(try store.attempts(deliveryID: 3).isEmpty)
    }

    @Test("churn with a one-minute retention on an injected clock: the file size levels off")
    func churnPlateaus() throws {
        let dir = try TempDir()
        let store = try StateStore(path: dir.dbPath)
        let policy = RetentionPolicy(delivered: 60, failed: 60, tombstones: 60)
        let body = String(repeating: "x", count: 400)
        var sizes: [Int64] = []
        var n = 0
        // 5 simulated seconds per round, 150 rounds: 12.5 minutes, more than ten retention windows.
        for round in 0..<150 {
            let now = t0.addingTimeInterval(Double(round) * 5)
            var events: [OutgoingEvent] = []
            var snapshots: [SnapshotWrite] = []
            for i in 0..<100 {
                n += 1
                let recordID = "r\(i + (round % 10) * 100)"
                let record: JSONValue = ["id": .string(recordID), "n": .integer(Int64(n)), "body": .string(body)]
                let event = ChangeEvent(
                    id: ChangeEvent.makeID(connection: "c", object: "o", recordID: recordID,
                                           sourceTimestamp: now, contentHash: ContentHash.of(record), kind: .updated),
                    model: "ticket", kind: .updated,
                    subject: .init(connection: "c", provider: "p", object: "o", recordID: recordID),
                    occurredAt: now, detectedAt: now, content: .init(record: record, raw: record))
                events.append(OutgoingEvent(event: event, subscribers: ["crm"]))
                snapshots.append(SnapshotWrite(recordID: recordID, contentHash: ContentHash.of(record), record: record,
                                               raw: record, sourceTimestamp: now))
                // And ten records a round are deleted for good: tombstones pile up unless purged.
                if i < 10 {
                    snapshots.append(SnapshotWrite(recordID: "gone-\(round)-\(i)", contentHash: ContentHash.of(record),
                                                   record: record, raw: record, sourceTimestamp: now, tombstoned: true))
                }
            }
            _ = try store.commitPage(PageCommit(connection: "c", object: "o", snapshots: snapshots, events: events,
                                                now: now))
            // Deliver everything that is due, as the dispatcher would (one head per record at a time).
            while true {
                let claimed = try store.claimDueDeliveries(subscriber: "crm", now: now, leaseUntil: now, limit: 1000)
                if claimed.isEmpty { break }
                try store.recordAttempts(claimed.map {
                    AttemptResult(deliveryID: $0.delivery.id, attemptedAt: now, httpStatus: 204, latencyMilliseconds: 1,
                                  outcome: .delivered, leaseToken: $0.delivery.leaseToken)
                })
            }
            if round % 4 == 3 {
                _ = try store.applyRetention(policy, configuredSubscribers: ["crm"], now: now)
                sizes.append(try store.storageSummary().totalBytes)
            }
        }
        #expect(try store.pendingCount() == 0)
        // 37 measurements. Once the first minute has passed (measurement ~4), rows leave as fast as they come;
        // the last third must not outgrow the second by more than a few pages of slack.
        let middle = try #require(sizes[8..<20].max())
        let last = try #require(sizes[25...].max())
        #expect(last <= middle + middle / 10 + 64 * 1024, "sizes: \(sizes)")
        // And the file is far smaller than 15 000 kept events would need.
        let oldest = try #require(try store.storageSummary().oldestEventAt)
        #expect(oldest >= t0.addingTimeInterval(149 * 5 - 60 - 20))
    }
}

@Suite("Lease-checked results (issue 12 item 5)")
struct LeaseCheckTests {
    @Test("a result that a redeliver overtook is discarded; the re-armed delivery is claimed and delivered", arguments: StoreBackend.all)
    func resultAfterRearmIsDiscarded(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let a1 = makeEvent("A", 1)
        try commit(store, [(a1, ["crm"])])
        let lease = t0.addingTimeInterval(40)
        let first = try #require(try store.claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: lease).first)
        #expect(first.delivery.leaseToken == 1)

        // The operator redelivers while the attempt is in flight: due now, but its record is held.
        #expect(try store.redeliver(eventID: a1.id, now: t0.addingTimeInterval(1)) == 1)
        let inFlight: Set<Int64> = [first.delivery.id]
        #expect(try store.claimDueDeliveries(subscriber: "crm", now: t0.addingTimeInterval(1), leaseUntil: lease,
                                             inFlight: inFlight).isEmpty)

        // The attempt's result arrives: logged, but it does not overwrite the re-arm.
        let superseded = try store.recordAttempts([
            AttemptResult(deliveryID: first.delivery.id, attemptedAt: t0, httpStatus: 204, latencyMilliseconds: 5,
                          outcome: .delivered, leaseToken: first.delivery.leaseToken),
        ])
        #expect(superseded == [first.delivery.id])
        var row = try #require(try store.deliveries(eventID: a1.id).first)
        #expect(row.state == .pending && row.attempts == 0 && row.deliveredAt == nil)
        #expect(try store.attempts(deliveryID: row.id).map(\.httpStatus) == [204])

        // Nothing in flight any more: the redelivery goes out and its own result is written.
        let again = try #require(try store.claimDueDeliveries(subscriber: "crm", now: t0.addingTimeInterval(2),
                                                              leaseUntil: lease).first)
        #expect(again.delivery.id == first.delivery.id && again.delivery.leaseToken > first.delivery.leaseToken)
        #expect(try store.recordAttempts([
            AttemptResult(deliveryID: again.delivery.id, attemptedAt: t0.addingTimeInterval(2), httpStatus: 200,
                          latencyMilliseconds: 5, outcome: .delivered, leaseToken: again.delivery.leaseToken),
        ]).isEmpty)
        row = try #require(try store.deliveries(eventID: a1.id).first)
        #expect(row.state == .delivered && row.attempts == 1)
        #expect(try store.attempts(deliveryID: row.id).count == 2)
    }

    @Test("replay of an older event of a record in flight waits for that attempt: never two heads in flight", arguments: StoreBackend.all)
    func replayOfOlderEventWaitsForTheHead(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let a1 = makeEvent("A", 1), a2 = makeEvent("A", 2), b1 = makeEvent("B", 1)
        try commit(store, [(a1, ["crm"]), (a2, ["crm"]), (b1, ["crm"])])
        let lease = t0.addingTimeInterval(40)
        var claimed = try store.claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: lease)
        #expect(claimed.map(\.event.id) == [a1.id, b1.id])
        try store.recordAttempts(claimed.map {
            AttemptResult(deliveryID: $0.delivery.id, attemptedAt: t0, httpStatus: 200, latencyMilliseconds: 1,
                          outcome: .delivered, leaseToken: $0.delivery.leaseToken)
        })
        let head = try #require(try store.claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: lease).first)
        #expect(head.event.id == a2.id)

        // A1 is replayed while A2 is in flight: A1 becomes the record's oldest pending, but is not claimable yet.
        #expect(try store.replay(subscriber: "crm", since: .distantPast, now: t0) { $0.id == a1.id } == 1)
        claimed = try store.claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: lease, inFlight: [head.delivery.id])
        #expect(claimed.isEmpty)

        // A2's result is still its own (A2 was not re-armed) and is written; then A1 goes out.
        #expect(try store.recordAttempts([
            AttemptResult(deliveryID: head.delivery.id, attemptedAt: t0, httpStatus: 200, latencyMilliseconds: 1,
                          outcome: .delivered, leaseToken: head.delivery.leaseToken),
        ]).isEmpty)
        claimed = try store.claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: lease)
        #expect(claimed.map(\.event.id) == [a1.id])
    }

    @Test("a result for a delivery pruned meanwhile is an error naming the cause; unknown tokens never write", arguments: StoreBackend.all)
    func prunedDeliveryAndStaleToken(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let a1 = makeEvent("A", 1)
        try commit(store, [(a1, ["crm"])])
        let id = try deliveryID(store, a1)
        #expect(try store.recordAttempts([
            AttemptResult(deliveryID: id, attemptedAt: t0, httpStatus: 204, latencyMilliseconds: 1,
                          outcome: .delivered, leaseToken: 99),
        ]) == [id])
        #expect(try store.deliveries(eventID: a1.id).first?.state == .pending)
        do {
            try store.recordAttempt(AttemptResult(deliveryID: 4242, attemptedAt: t0, httpStatus: 204,
                                                  latencyMilliseconds: 1, outcome: .delivered, leaseToken: 1))
            Issue.record("a result for a missing delivery was accepted")
        } catch let error as StoreError {
            #expect(error.code == .notFound && error.description.contains("pruned"))
        }
    }
}
