// Tests of the state store: migrations, transactions, cross-process WAL reading, atomic page commits,
// per-record delivery ordering and secret-free errors.
import Foundation
import Synchronization
import Testing
import Core
@testable import Store
#if canImport(CDispatch)
import CDispatch
#endif

/// A fresh directory per test, removed afterwards.
struct TempDir: ~Copyable {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    var dbPath: String { url.appendingPathComponent(StateStore.fileName).path }
    deinit { try? FileManager.default.removeItem(at: url) }
}

let t0 = Date(timeIntervalSince1970: 1_764_000_000)

func makeEvent(_ recordID: String, _ n: Int, kind: ChangeKind = .updated, detected: Date = t0) -> ChangeEvent {
    let record: JSONValue = ["id": .string(recordID), "n": .integer(Int64(n))]
    let occurred = t0.addingTimeInterval(Double(n))
    let id = ChangeEvent.makeID(connection: "c", object: "o", recordID: recordID, sourceTimestamp: occurred,
                                contentHash: ContentHash.of(record), kind: kind)
    return ChangeEvent(
        id: id, model: "ticket", kind: kind,
        subject: .init(connection: "c", provider: "servicenow", object: "o", recordID: recordID),
        occurredAt: occurred, detectedAt: detected,
        content: .init(
            record: record,
            changes: kind == .updated ? ["n": FieldChange(from: .integer(Int64(n - 1)), to: .integer(Int64(n)))] : nil,
            raw: ["sys_id": .string(recordID), "n": .string(String(n))]))
}

func snapshotWrite(_ recordID: String, _ n: Int, tombstoned: Bool = false) -> SnapshotWrite {
    let record: JSONValue = ["id": .string(recordID), "n": .integer(Int64(n))]
    return SnapshotWrite(recordID: recordID, contentHash: ContentHash.of(record), record: record,
                         raw: ["sys_id": .string(recordID)], sourceTimestamp: t0.addingTimeInterval(Double(n)),
                         tombstoned: tombstoned)
}

func userVersion(_ store: StateStore) throws -> Int {
    try store.database.read { try $0.queryOne("PRAGMA user_version") { $0.int(0) } ?? -1 }
}

struct InjectedFailure: Error {}

@Suite struct MigrationTests {
    @Test func migratesFromEmptyAndReopenIsIdempotent() throws {
        let dir = try TempDir()
        do {
            let store = try StateStore(path: dir.dbPath)
            #expect(try userVersion(store) == StateStore.schemaVersion)
            try store.setCursor(CursorState(connection: "c", object: "o", watermark: t0), now: t0)
            let mode = try store.database.read { try $0.queryOne("PRAGMA journal_mode") { $0.string(0) } ?? nil }
            #expect(mode == "wal")
        }
        let reopened = try StateStore(path: dir.dbPath)
        #expect(try userVersion(reopened) == StateStore.schemaVersion)
        #expect(try reopened.cursor(connection: "c", object: "o")?.watermark == t0)
        let tables = try reopened.database.read {
            try $0.queryAll("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name") {
                $0.text(0)
            }
        }
        #expect(tables == ["attempts", "auth_state", "budget_plans", "cursors", "deliveries", "events", "held_sweeps",
                           "nodes", "permits", "poll_leases", "poll_status", "provider_waits", "quarantine",
                           "request_budget", "snapshots", "subscribers"])
        // A read-only open of an up-to-date file works too.
        let reader = try StateStore(path: dir.dbPath, mode: .readOnly)
        #expect(try reader.cursor(connection: "c", object: "o") != nil)
    }

    @Test func version1FileIsMigratedWithItsData() throws {
        let dir = try TempDir()
        do {
            // A file as the first release wrote it.
            let database = try Database(path: dir.dbPath)
            try database.write { db in
                try db.executeScript(Schema.version1)
                try db.executeScript("PRAGMA user_version = 1")
                try db.execute("""
                    INSERT INTO snapshots (connection, object, record_id, content_hash, record, raw, source_ts,
                                           tombstoned, last_seen_sweep, updated_at)
                    VALUES ('c', 'o', 'r1', 'h1', '{"id":"r1"}', '{"sys_id":"r1"}', 1, 0, 5, 5)
                    """)
            }
        }
        let store = try StateStore(path: dir.dbPath)
        #expect(try userVersion(store) == StateStore.schemaVersion)
        let indexes = try store.database.read {
            try $0.queryAll("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name") {
                ($0.text(0), $0.text(1))
            }
        }
        #expect(!indexes.contains { $0.0 == "events_record" })
        let live = try #require(indexes.first { $0.0 == "snapshots_live" })
        #expect(live.1.contains("(connection, object, record_id, last_seen_sweep)"))
        #expect(try store.liveRecordIDs(connection: "c", object: "o") == ["r1"])
        #expect(try store.snapshotHeads(connection: "c", object: "o", ids: ["r1"])["r1"]?.contentHash == "h1")
        #expect(try store.unseenLiveIDs(connection: "c", object: "o", sweep: Date(timeIntervalSince1970: 1)) == ["r1"])
    }

    @Test func newerSchemaIsRefused() throws {
        let dir = try TempDir()
        do {
            let store = try StateStore(path: dir.dbPath)
            try store.sqlite.withConnection { try $0.executeScript("PRAGMA user_version = 99") }
        }
        for mode in [Database.Mode.readWrite, .readOnly] {
            do {
                _ = try StateStore(path: dir.dbPath, mode: mode)
                Issue.record("a newer schema was accepted in \(mode)")
            } catch let error as StoreError {
                #expect(error.code == .schemaTooNew(found: 99, known: StateStore.schemaVersion))
                #expect(error.description.contains("has schema version 99"))
                #expect(error.description.contains("knows up to \(StateStore.schemaVersion)"))
                #expect(error.description.contains("upgrade deltahook"))
            }
        }
    }

    @Test func readOnlyOpenOfMissingFileFails() throws {
        let dir = try TempDir()
        #expect(throws: StoreError.self) { _ = try StateStore(path: dir.dbPath, mode: .readOnly) }
        #expect(!FileManager.default.fileExists(atPath: dir.dbPath))
    }
}

@Suite struct TransactionTests {
    @Test func throwingWriteLeavesNothingBehind() throws {
        let dir = try TempDir()
        let store = try StateStore(path: dir.dbPath)
        #expect(throws: InjectedFailure.self) {
            try store.database.write { db in
                try db.execute("INSERT INTO subscribers (id, state, changed_at) VALUES (?, 'active', 0)", ["crm"])
                #expect((db as? SQLiteConnection)?.isInsideTransaction == true)
                throw InjectedFailure()
            }
        }
        #expect(try store.subscriber(id: "crm") == nil)
        try store.sqlite.withConnection { #expect(($0 as? SQLiteConnection)?.isInsideTransaction == false) }
        // The connection is usable afterwards.
        try store.setSubscriberState(id: "crm", state: .paused, reason: "operator", at: t0)
        #expect(try store.subscriber(id: "crm")?.state == .paused)
    }

    @Test func readOnlyConnectionRefusesWrites() throws {
        let dir = try TempDir()
        _ = try StateStore(path: dir.dbPath)
        let reader = try StateStore(path: dir.dbPath, mode: .readOnly)
        #expect(throws: StoreError.self) {
            try reader.setSubscriberState(id: "x", state: .active, reason: nil, at: t0)
        }
    }

    /// The CLI reads beside the daemon: while the daemon holds a write transaction open, a reader on another
    /// thread and a reader in another process see the last committed state and are not blocked.
    @Test func readersSeeCommittedDataWhileWriterHoldsTransaction() throws {
        let dir = try TempDir()
        let path = dir.dbPath
        let store = try StateStore(path: path)
        try store.setSubscriberState(id: "committed", state: .active, reason: nil, at: t0)

        try store.database.write { db in
            try db.execute("INSERT INTO subscribers (id, state, changed_at) VALUES ('uncommitted', 'active', 0)")

            // Another connection on another thread.
            let done = DispatchSemaphore(value: 0)
            let seen = LockedBox<Result<[String], any Error>>(.success([]))
            Thread.detachNewThread {
                seen.set(Result { try StateStore(path: path, mode: .readOnly).subscribers().map(\.id) })
                done.signal()
            }
            #expect(done.wait(timeout: .now() + 10) == .success, "thread reader blocked by the writer")
            #expect(try seen.get().get() == ["committed"])

            // Another process: python3's sqlite3 module, read-only URI, 2 s busy timeout.
            let python = Process()
            python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            python.arguments = ["python3", "-c", """
                import sqlite3, sys
                c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=2)
                print(",".join(r[0] for r in c.execute("SELECT id FROM subscribers ORDER BY id")))
                """, path]
            let output = Pipe()
            python.standardOutput = output
            python.standardError = output
            try python.run()
            let bytes = output.fileHandleForReading.readDataToEndOfFile()
            python.waitUntilExit()
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(python.terminationStatus == 0, "python3 reader failed: \(text)")
            #expect(text == "committed")
        }
        #expect(try store.subscribers().map(\.id) == ["committed", "uncommitted"])
    }
}

/// A tiny lock-protected box for handing results between threads in tests.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func set(_ newValue: Value) { lock.lock(); value = newValue; lock.unlock() }
    func get() -> Value { lock.lock(); defer { lock.unlock() }; return value }
}

@Suite struct PageCommitTests {
    func page(_ events: [ChangeEvent], subscribers: [String] = ["crm", "ops"]) -> PageCommit {
        PageCommit(
            connection: "c", object: "o",
            snapshots: events.map { snapshotWrite($0.recordID, Int($0.record["n"]?.int64Value ?? 0)) },
            events: events.map { OutgoingEvent(event: $0, subscribers: subscribers) },
            cursor: CursorState(connection: "c", object: "o", watermark: t0.addingTimeInterval(60),
                                resumeState: #"{"after":"r2"}"#),
            now: t0)
    }

    @Test(arguments: [StateStore.CommitStage.snapshots, .events, .deliveries, .cursor])
    func failureMidCommitLeavesNothing(stage: StateStore.CommitStage) throws {
        let dir = try TempDir()
        let store = try StateStore(path: dir.dbPath)
        let events = [makeEvent("r1", 1, kind: .created), makeEvent("r2", 1, kind: .created)]
        #expect(throws: InjectedFailure.self) {
            _ = try store.commitPage(page(events)) { if $0 == stage { throw InjectedFailure() } }
        }
        #expect(try store.snapshotHeads(connection: "c", object: "o", ids: ["r1", "r2"]).isEmpty)
        #expect(try store.event(id: events[0].id) == nil)
        #expect(try store.events(EventQuery()).isEmpty)
        #expect(try store.pendingCount() == 0)
        #expect(try store.cursor(connection: "c", object: "o") == nil)

        let result = try store.commitPage(page(events))
        #expect(result.inserted.map(\.id) == events.map(\.id))
        #expect(result.deliveriesCreated == 4)
        #expect(result.snapshotsWritten == 2)
        #expect(try store.pendingCount() == 4)
        #expect(try store.cursor(connection: "c", object: "o")?.resumeState == #"{"after":"r2"}"#)
        #expect(try store.event(id: events[1].id)?.event == events[1])
    }

    @Test(arguments: StoreBackend.all) func commitObserverHearsOnlyCommittedNewEvents(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let heard = Mutex<[Int]>([])
        store.observeCommittedEvents { count in
            // Called after the transaction: the events are already readable.
            #expect((try? store.pendingCount()) ?? 0 > 0)
            heard.withLock { $0.append(count) }
        }
        let events = [makeEvent("r1", 2), makeEvent("r2", 3)]
        _ = try store.commitPage(page(events))
        _ = try store.commitPage(page(events))          // duplicates only: nothing new, no call
        _ = try store.commitPage(page([]))              // cursor-only page: no call
        #expect(heard.withLock { $0 } == [2])
        store.observeCommittedEvents(nil)
        _ = try store.commitPage(page([makeEvent("r3", 4)]))
        #expect(heard.withLock { $0 } == [2])
    }

    @Test func pollerLockAdmitsOneHolderAndIsFreedWithIt() throws {
        let dir = try TempDir()
        let directory = (dir.dbPath as NSString).deletingLastPathComponent
        var first = try PollerLock.acquire(directory: directory)
        #expect(first != nil)
        #expect(try PollerLock.acquire(directory: directory) == nil)
        first = nil
        #expect(try PollerLock.acquire(directory: directory) != nil)
        #expect(throws: StoreError.self) { try PollerLock.acquire(directory: directory + "/missing") }
    }

    @Test(arguments: StoreBackend.all) func duplicateEventIDsAreIgnored(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let event = makeEvent("r1", 2)
        let first = try store.commitPage(page([event]))
        #expect(first.inserted.count == 1)
        let again = try store.commitPage(page([event], subscribers: ["crm", "ops", "new"]))
        #expect(again.inserted.isEmpty)
        #expect(again.duplicateEventIDs == [event.id])
        #expect(again.deliveriesCreated == 0)
        #expect(try store.events(EventQuery()).count == 1)
        #expect(try store.pendingCount() == 2)
        let stored = try #require(try store.event(id: event.id))
        #expect(stored.seq == first.inserted[0].seq)
        #expect(stored.event == event)
        #expect(stored.event.changes?["n"] == FieldChange(from: 1, to: 2))
    }

    @Test(arguments: StoreBackend.all) func snapshotsLookupAndReconciliationSweep(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let ids = ["r1", "r2", "r3", "r4", "r5"]
        _ = try store.commitPage(PageCommit(connection: "c", object: "o", snapshots: ids.map { snapshotWrite($0, 1) },
                                            now: t0))
        let heads = try store.snapshotHeads(connection: "c", object: "o", ids: ["r1", "r3", "missing"])
        #expect(Set(heads.keys) == ["r1", "r3"])
        #expect(heads["r1"]?.contentHash == snapshotWrite("r1", 1).contentHash)
        let full = try store.snapshots(connection: "c", object: "o", ids: ["r2"])
        #expect(full["r2"]?.record == ["id": "r2", "n": 1])
        #expect(full["r2"]?.tombstoned == false)
        // The differ's lighter read: records only, existing ids only.
        let records = try store.snapshotRecords(connection: "c", object: "o", ids: ["r2", "r4", "missing"])
        #expect(records == ["r2": ["id": "r2", "n": 1], "r4": ["id": "r4", "n": 1]])
        #expect(try store.snapshotRecords(connection: "c", object: "o", ids: []).isEmpty)

        // Keyset pages over live ids.
        var walked: [String] = []
        var after: String?
        for _ in 0..<10 {
            let page = try store.liveRecordIDs(connection: "c", object: "o", after: after, limit: 2)
            guard let last = page.last else { break }
            walked += page
            after = last
        }
        #expect(walked == ids)

        // A sweep that started after the writes saw r1, r2, r4; r5 is deleted (tombstoned) meanwhile.
        let sweep = t0.addingTimeInterval(10)
        try store.markSeen(connection: "c", object: "o", ids: ["r1", "r2", "r4"], sweep: sweep)
        #expect(try store.unseenLiveIDs(connection: "c", object: "o", sweep: sweep) == ["r3", "r5"])
        _ = try store.commitPage(PageCommit(connection: "c", object: "o",
                                            snapshots: [snapshotWrite("r5", 1, tombstoned: true)], now: t0))
        #expect(try store.unseenLiveIDs(connection: "c", object: "o", sweep: sweep, limit: 10) == ["r3"])
        #expect(try store.liveRecordIDs(connection: "c", object: "o", limit: 10) == ["r1", "r2", "r3", "r4"])
        let tomb = try #require(try store.snapshots(connection: "c", object: "o", ids: ["r5"])["r5"])
        #expect(tomb.tombstoned && tomb.tombstonedAt == t0)
        // A record written during the sweep counts as seen.
        _ = try store.commitPage(PageCommit(connection: "c", object: "o", snapshots: [snapshotWrite("r6", 1)],
                                            now: sweep.addingTimeInterval(1)))
        #expect(try store.unseenLiveIDs(connection: "c", object: "o", sweep: sweep) == ["r3"])
        // So does a new version of a live record the listing did not mark (it changed during the sweep).
        _ = try store.commitPage(PageCommit(connection: "c", object: "o", snapshots: [snapshotWrite("r3", 2)],
                                            now: sweep.addingTimeInterval(2)))
        #expect(try store.unseenLiveIDs(connection: "c", object: "o", sweep: sweep).isEmpty)
        #expect(try store.snapshotRecords(connection: "c", object: "o", ids: ["r3"])["r3"] == ["id": "r3", "n": 2])
        // The next sweep has not seen it yet.
        #expect(try store.unseenLiveIDs(connection: "c", object: "o", sweep: sweep.addingTimeInterval(10)).contains("r3"))
    }

    @Test(arguments: StoreBackend.all) func liveWritesReplaceLiveSnapshotsAndUndeleteTombstones(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let first = try store.commitPage(PageCommit(connection: "c", object: "o",
                                                    snapshots: [snapshotWrite("r1", 1), snapshotWrite("r2", 1)], now: t0))
        #expect(first.snapshotsWritten == 2)
        // A new version of a live record replaces every stored column.
        let t1 = t0.addingTimeInterval(5)
        let second = try store.commitPage(PageCommit(connection: "c", object: "o", snapshots: [snapshotWrite("r1", 2)],
                                                     now: t1))
        #expect(second.snapshotsWritten == 1)
        let r1 = try #require(try store.snapshots(connection: "c", object: "o", ids: ["r1"])["r1"])
        #expect(r1.contentHash == snapshotWrite("r1", 2).contentHash && r1.record == ["id": "r1", "n": 2])
        #expect(r1.sourceTimestamp == t0.addingTimeInterval(2) && r1.updatedAt == t1 && !r1.tombstoned)
        // Tombstone r2, then a live write brings it back (an undelete), clearing the tombstone.
        _ = try store.commitPage(PageCommit(connection: "c", object: "o",
                                            snapshots: [snapshotWrite("r2", 1, tombstoned: true)], now: t1))
        #expect(try store.liveRecordIDs(connection: "c", object: "o") == ["r1"])
        let t2 = t0.addingTimeInterval(9)
        let undelete = try store.commitPage(PageCommit(connection: "c", object: "o", snapshots: [snapshotWrite("r2", 3)],
                                                       now: t2))
        #expect(undelete.snapshotsWritten == 1)
        let r2 = try #require(try store.snapshots(connection: "c", object: "o", ids: ["r2"])["r2"])
        #expect(!r2.tombstoned && r2.tombstonedAt == nil && r2.record == ["id": "r2", "n": 3] && r2.updatedAt == t2)
        #expect(try store.liveRecordIDs(connection: "c", object: "o") == ["r1", "r2"])
    }
}

@Suite struct DeliveryTests {
    func setUp(_ store: StateStore, _ events: [ChangeEvent]) throws -> [String: Int64] {
        let result = try store.commitPage(PageCommit(
            connection: "c", object: "o", events: events.map { OutgoingEvent(event: $0, subscribers: ["crm"]) },
            now: t0))
        let seqs = Dictionary(uniqueKeysWithValues: result.inserted.map { ($0.id, $0.seq) })
        var ids: [String: Int64] = [:]
        for delivery in try store.deliveries(subscriber: "crm", limit: 100) {
            ids[delivery.eventID] = delivery.id
            #expect(seqs[delivery.eventID] == delivery.eventSeq)
        }
        return ids
    }

    @Test(arguments: StoreBackend.all) func dueDeliveriesReturnOnlyTheHeadOfEachRecord(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let a1 = makeEvent("A", 1), a2 = makeEvent("A", 2), b1 = makeEvent("B", 1), a3 = makeEvent("A", 3)
        let ids = try setUp(store, [a1, a2, b1, a3])
        func due(_ at: Date = t0) throws -> [String] {
            try store.dueDeliveries(subscriber: "crm", now: at).map(\.event.id)
        }
        #expect(try due() == [a1.id, b1.id])
        #expect(try store.dueDeliveries(subscriber: "other", now: t0).isEmpty)

        // A1 fails and waits for its retry: A2 stays blocked, B is not.
        let a1ID = try #require(ids[a1.id])
        try store.recordAttempt(AttemptResult(deliveryID: a1ID, attemptedAt: t0, httpStatus: 500,
                                              latencyMilliseconds: 12, responseExcerpt: "oops",
                                              outcome: .retry(at: t0.addingTimeInterval(5))))
        #expect(try due() == [b1.id])
        #expect(try due(t0.addingTimeInterval(5)) == [a1.id, b1.id])
        #expect(try store.nextDueAt(subscriber: "crm") == t0)  // B1 is due now

        // A1 delivered: A2 becomes the head.
        try store.recordAttempt(AttemptResult(deliveryID: a1ID, attemptedAt: t0.addingTimeInterval(5),
                                              httpStatus: 204, latencyMilliseconds: 3, outcome: .delivered))
        #expect(try due(t0.addingTimeInterval(5)) == [a2.id, b1.id])

        // A2 fails for good: terminal, A3 is next.
        try store.recordAttempt(AttemptResult(deliveryID: try #require(ids[a2.id]), attemptedAt: t0,
                                              httpStatus: nil, latencyMilliseconds: 15_000, error: "timeout",
                                              outcome: .failed))
        #expect(try due(t0.addingTimeInterval(5)) == [b1.id, a3.id])

        let delivered = try #require(try store.deliveries(eventID: a1.id).first)
        #expect(delivered.state == .delivered && delivered.attempts == 2 && delivered.lastStatus == 204)
        #expect(delivered.deliveredAt == t0.addingTimeInterval(5))
        #expect(try store.attempts(deliveryID: a1ID).map(\.httpStatus) == [204, 500])
        #expect(try store.deliveries(subscriber: "crm", state: .failed).map(\.eventID) == [a2.id])
        #expect(try store.nextDueAt(subscriber: "nobody") == nil)
        let backlog = try store.backlog(subscriber: "crm")
        #expect(backlog.pending == 2 && backlog.failed == 1 && backlog.oldestPendingCreatedAt == t0)
    }

    @Test(arguments: StoreBackend.all) func claimLeasesDeliveriesUntilTheLeaseEnds(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let a1 = makeEvent("A", 1), b1 = makeEvent("B", 1)
        _ = try setUp(store, [a1, b1])
        let lease = t0.addingTimeInterval(30)
        let claimed = try store.claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: lease, limit: 1)
        #expect(claimed.map(\.event.id) == [a1.id])
        #expect(claimed.first?.event == SerializedEvent(a1))
        #expect(try claimed.first?.event.decoded() == a1)
        #expect(try store.claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: lease).map(\.event.id) == [b1.id])
        #expect(try store.claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: lease).isEmpty)
        #expect(try store.dueDeliveries(subscriber: "crm", now: lease).count == 2)
    }

    @Test(arguments: StoreBackend.all) func replayAndRedeliverKeepTheEventID(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let old = makeEvent("A", 1, detected: t0.addingTimeInterval(-3600))
        let new1 = makeEvent("A", 2), new2 = makeEvent("B", 1, kind: .deleted)
        let ids = try setUp(store, [old, new1, new2])
        for id in ids.values {
            try store.recordAttempt(AttemptResult(deliveryID: id, attemptedAt: t0, httpStatus: 200,
                                                  latencyMilliseconds: 1, outcome: .delivered))
        }
        #expect(try store.pendingCount() == 0)

        // Replay since t0 for a subscriber that only takes *.updated.
        let count = try store.replay(subscriber: "crm", since: t0, now: t0.addingTimeInterval(1), pageSize: 1) {
            $0.type.hasSuffix(".updated")
        }
        #expect(count == 1)
        let due = try store.dueDeliveries(subscriber: "crm", now: t0.addingTimeInterval(1))
        #expect(due.map(\.event.id) == [new1.id])
        #expect(due.first?.delivery.attempts == 0)

        // Replay to a subscriber that never had rows creates them.
        #expect(try store.replay(subscriber: "audit", since: .distantPast, now: t0) { _ in true } == 3)
        #expect(try store.backlog(subscriber: "audit").pending == 3)

        #expect(try store.redeliver(eventID: new2.id, now: t0.addingTimeInterval(2)) == 2)
        #expect(try store.redeliver(eventID: old.id, subscribers: ["x"], now: t0) == 1)
        #expect(try store.deliveries(eventID: old.id).map(\.subscriber) == ["audit", "crm", "x"])
        #expect(try store.event(id: new2.id)?.event.changes == nil)
        do {
            _ = try store.redeliver(eventID: "evt_unknown", now: t0)
            Issue.record("unknown event accepted")
        } catch let error as StoreError {
            #expect(error.code == .notFound)
        }
    }

    /// docs/DESIGN.md §2 rule 5a: `changed_fields` is stored with the event, and every reader that rebuilds an event
    /// (show, list, seq range, due deliveries after replay and redeliver) renders the body of the first delivery.
    @Test("rule 5a: changed_fields round-trips through every event reader; bodies are byte-identical", arguments: StoreBackend.all)
    func changedFieldsRoundTrip(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        var touched = makeEvent("A", 1)
        touched.changes = [:]
        touched.changedFields = ["comments", "u_note"]
        let modelChange = makeEvent("B", 2)          // an updated event stored without changed_fields
        let created = makeEvent("C", 1, kind: .created)
        _ = try setUp(store, [touched, modelChange, created])
        let bodies = { (event: ChangeEvent) in
            [event.webhookBody(includeRaw: false).serialized(), event.webhookBody(includeRaw: true).serialized()]
        }
        let shown = try #require(try store.event(id: touched.id)).event
        #expect(shown == touched && shown.changedFields == ["comments", "u_note"] && shown.changes == [:])
        #expect(bodies(shown) == bodies(touched))
        #expect(shown.webhookBody(includeRaw: false)["data"]?["changed_fields"] == ["comments", "u_note"])
        #expect(try store.event(id: modelChange.id)?.event.changedFields == nil)
        #expect(try store.event(id: created.id)?.event.changedFields == nil)
        let listed = try store.events(EventQuery(connection: "c")).map(\.event)
        #expect(listed == [touched, modelChange, created])
        #expect(try store.events(seqIn: 1...3).map(\.event) == listed)
        // Replay and redeliver send what the first delivery sent; the dispatcher splices it from the stored texts.
        let sent = { (event: SerializedEvent) in
            [String(decoding: event.webhookBody(includeRaw: false), as: UTF8.self),
             String(decoding: event.webhookBody(includeRaw: true), as: UTF8.self)]
        }
        let first = try store.dueDeliveries(subscriber: "crm", now: t0).map(\.event)
        #expect(first.map(sent) == listed.map(bodies))
        #expect(try first.map { try $0.decoded() } == listed)
        #expect(try store.redeliver(eventID: touched.id, subscribers: ["audit"], now: t0) == 1)
        #expect(try store.replay(subscriber: "audit2", since: .distantPast, now: t0) { _ in true } == 3)
        let again = try store.dueDeliveries(subscriber: "audit", now: t0).map(\.event)
        #expect(again.map(sent) == [bodies(touched)])
        #expect(try store.dueDeliveries(subscriber: "audit2", now: t0).map(\.event).map(sent) == listed.map(bodies))
    }

    @Test("rule 5a: snapshotPriors loads record and raw of the given ids only", arguments: StoreBackend.all)
    func snapshotPriorsLoadRaw(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        _ = try store.commitPage(PageCommit(connection: "c", object: "o",
                                            snapshots: [snapshotWrite("r1", 1), snapshotWrite("r2", 1)], now: t0))
        let priors = try store.snapshotPriors(connection: "c", object: "o", ids: ["r2", "missing"])
        #expect(priors == ["r2": SnapshotBody(record: ["id": "r2", "n": 1], raw: ["sys_id": "r2"])])
        #expect(try store.snapshotPriors(connection: "c", object: "o", ids: []).isEmpty)
    }

    @Test(arguments: StoreBackend.all) func attemptExcerptIsCappedAtFourKilobytes(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let event = makeEvent("A", 1)
        let id = try #require(try setUp(store, [event])[event.id])
        let body = String(repeating: "é", count: 3000)  // 6000 bytes, 2 bytes per character
        try store.recordAttempt(AttemptResult(deliveryID: id, attemptedAt: t0, httpStatus: 502,
                                              latencyMilliseconds: 1, responseExcerpt: body,
                                              outcome: .retry(at: t0)))
        let excerpt = try #require(try store.attempts(deliveryID: id).first?.responseExcerpt)
        #expect(excerpt.utf8.count == 4096)
        #expect(excerpt == String(repeating: "é", count: 2048))
        #expect(throws: StoreError.self) {
            try store.recordAttempt(AttemptResult(deliveryID: 999_999, attemptedAt: t0, httpStatus: 200,
                                                  latencyMilliseconds: 1, outcome: .delivered))
        }
    }
}

@Suite struct StatusAndQueryTests {
    @Test(arguments: StoreBackend.all) func pollStatusAccumulatesAndClearsErrors(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        try store.recordPoll(PollReport(connection: "c", object: "o", at: t0, events: 2, records: 10))
        try store.recordPoll(PollReport(connection: "c", object: "o", at: t0.addingTimeInterval(60),
                                        error: "HTTP 503 from acme"))
        var status = try #require(try store.pollStatuses().first)
        #expect(status.lastSuccessAt == t0 && status.lastError == "HTTP 503 from acme")
        #expect(status.eventsTotal == 2 && status.recordsTotal == 10)
        try store.recordPoll(PollReport(connection: "c", object: "o", at: t0.addingTimeInterval(120), records: 5))
        status = try #require(try store.pollStatuses().first)
        #expect(status.lastError == nil && status.lastErrorAt == t0.addingTimeInterval(60))
        #expect(status.lastSuccessAt == t0.addingTimeInterval(120) && status.recordsTotal == 15)
    }

    @Test(arguments: StoreBackend.all) func eventQueriesFilterAndPage(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let events = (1...5).map { makeEvent("R\($0)", $0, kind: $0 % 2 == 0 ? .updated : .created,
                                              detected: t0.addingTimeInterval(Double($0))) }
        _ = try store.commitPage(PageCommit(connection: "c", object: "o",
                                            events: events.map { OutgoingEvent(event: $0, subscribers: []) }, now: t0))
        #expect(try store.events(EventQuery(type: "ticket.updated")).map(\.event.id) == [events[1].id, events[3].id])
        #expect(try store.events(EventQuery(since: t0.addingTimeInterval(2), until: t0.addingTimeInterval(4)))
            .map(\.event.id) == [events[1].id, events[2].id])
        let newest = try store.events(EventQuery(paging: .init(newestFirst: true), limit: 2))
        #expect(newest.map(\.event.id) == [events[4].id, events[3].id])
        let next = try store.events(EventQuery(paging: .init(beforeSeq: newest[1].seq, newestFirst: true), limit: 2))
        #expect(next.map(\.event.id) == [events[2].id, events[1].id])
        #expect(try store.events(EventQuery(connection: "other")).isEmpty)
        #expect(try store.events(seqIn: newest[1].seq...newest[0].seq).count == 2)
    }

    @Test(arguments: StoreBackend.all) func subscriberStateRoundTrips(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        try store.setSubscriberFailingSince(id: "crm", t0, at: t0)
        try store.setSubscriberState(id: "crm", state: .paused, reason: "failing for 5d", at: t0.addingTimeInterval(1))
        #expect(try store.subscriber(id: "crm") == SubscriberStatus(
            id: "crm", state: .paused, reason: "failing for 5d", changedAt: t0.addingTimeInterval(1), failingSince: t0))
        try store.setSubscriberFailingSince(id: "crm", nil, at: t0)
        #expect(try store.subscriber(id: "crm")?.failingSince == nil)
        #expect(try store.subscriber(id: "crm")?.state == .paused)
    }

    /// `perform` and `enqueue` run their bodies on the store's own serial queue ("deltahook.store"), never inline on
    /// the caller's thread (a cooperative one here), and in the order they were queued.
    @Test(arguments: StoreBackend.all) func asyncPerformRunsOnTheStoreQueue(_ backend: StoreBackend) async throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let (count, label) = try await store.perform { try ($0.pendingCount(), currentQueueLabel()) }
        #expect(count == 0)
        #expect(label == "deltahook.store", "perform ran on \(label)")
        #expect(currentQueueLabel() != "deltahook.store")
        let order = Mutex<[Int]>([])
        let first = store.enqueue { _ in order.withLock { $0.append(1) }; return currentQueueLabel() }
        let second = try await store.perform { _ in order.withLock { $0.append(2) }; return currentQueueLabel() }
        #expect(try await first.value == "deltahook.store")
        #expect(second == "deltahook.store")
        #expect(order.withLock { $0 } == [1, 2], "a job queued first ran first")
    }
}

@Suite struct ErrorTests {
    /// Errors name the SQL and SQLite's message, never the bound values (they reach journald).
    @Test(arguments: StoreBackend.all) func errorsCarrySQLButNotBoundValues(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let secret = "sk_live_5f2b8c0e9d1a7Secret"
        let sql = "INSERT INTO subscribers (id, state, changed_at) VALUES (?, ?, ?)"
        do {
            try store.database.write { try $0.execute(sql, [.text("crm"), .text(secret), .integer(0)]) }
            Issue.record("CHECK constraint not enforced")
        } catch let error as StoreError {
            #expect(error.isConstraintViolation)
            switch backend {
            case .sqlite:
                #expect(error.code == .sqlite(primary: 19, extended: 275))  // SQLITE_CONSTRAINT_CHECK
                #expect(error.description.contains("CHECK constraint failed"))
            case .postgres:
                #expect(error.code == .postgres(sqlState: "23514"))  // check_violation
                #expect(error.description.contains("subscribers_state_check"))
            }
            #expect(error.sql == sql)
            #expect(error.description.contains(sql))
            #expect(!error.description.contains(secret))
            #expect(!String(reflecting: error).contains(secret))
        }
        // UNIQUE violation with the secret as the duplicated key.
        try store.database.write { try $0.execute(sql, [.text(secret), .text("active"), .integer(0)]) }
        do {
            try store.database.write { try $0.execute(sql, [.text(secret), .text("active"), .integer(0)]) }
            Issue.record("PRIMARY KEY not enforced")
        } catch let error as StoreError {
            #expect(error.isConstraintViolation)
            #expect(error.code == (backend == .sqlite ? .sqlite(primary: 19, extended: 1555) : .postgres(sqlState: "23505")))
            #expect(!error.description.contains(secret))
        }
        // The failed statement was evicted from the cache and the SQL still works.
        try store.database.write { try $0.execute(sql, [.text("ok"), .text("active"), .integer(0)]) }
        #expect(try store.subscriber(id: "ok") != nil)
    }

    @Test func dueQueryUsesThePendingIndexes() throws {
        let dir = try TempDir()
        let store = try StateStore(path: dir.dbPath)
        let plan = try store.database.read { db in
            try db.queryAll("EXPLAIN QUERY PLAN " + StateStore.dueSQL, [.text("s"), .integer(0), .integer(1)]) {
                $0.text(3)
            }
        }.joined(separator: "\n")
        #expect(plan.contains("deliveries_pending"), "\(plan)")
        #expect(plan.contains("deliveries_pending_record"), "\(plan)")
        #expect(!plan.contains("SCAN d"), "\(plan)")
    }
}

@Suite struct RetentionTests {
    @Test(arguments: StoreBackend.all) func pruneDeletesOnlyFullyDeliveredOldEvents(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let events = [makeEvent("A", 1), makeEvent("B", 1), makeEvent("C", 1)]
        _ = try store.commitPage(PageCommit(connection: "c", object: "o",
                                            events: events.map { OutgoingEvent(event: $0, subscribers: ["crm"]) },
                                            now: t0))
        let rows = try store.deliveries(subscriber: "crm")
        func id(_ event: ChangeEvent) throws -> Int64 { try #require(rows.first { $0.eventID == event.id }).id }
        try store.recordAttempts([
            AttemptResult(deliveryID: try id(events[0]), attemptedAt: t0, httpStatus: 200, latencyMilliseconds: 1,
                          outcome: .delivered),
            AttemptResult(deliveryID: try id(events[1]), attemptedAt: t0, httpStatus: 500, latencyMilliseconds: 1,
                          outcome: .failed),
        ])
        let lastSeq = try #require(try store.events(EventQuery(paging: .init(newestFirst: true), limit: 1)).first).seq
        #expect(try store.pruneEvents(detectedBefore: t0) == 0)  // not older than the cutoff
        #expect(try store.pruneEvents(detectedBefore: t0.addingTimeInterval(1)) == 1)
        #expect(try store.event(id: events[0].id) == nil)
        #expect(try store.deliveries(eventID: events[0].id).isEmpty)
        #expect(try store.attempts(deliveryID: try id(events[0])).isEmpty)
        #expect(try store.event(id: events[1].id) != nil && store.event(id: events[2].id) != nil)
        try store.checkpoint()
        // seq is never reused after a delete.
        let next = try store.commitPage(PageCommit(connection: "c", object: "o",
                                                   events: [OutgoingEvent(event: makeEvent("D", 1), subscribers: [])],
                                                   now: t0))
        #expect(try #require(next.inserted.first).seq > lastSeq)
    }
}

/// The label of the dispatch queue the caller runs on.
private func currentQueueLabel() -> String {
    #if canImport(CDispatch)
    String(cString: dispatch_queue_get_label(nil))
    #else
    String(cString: __dispatch_queue_get_label(nil))
    #endif
}

extension StateStore {
    /// The SQLite database under a store opened by path: what the SQLite-only tests (PRAGMAs, WAL) reach.
    var sqlite: Database {
        guard let database = database as? Database else { fatalError("not a SQLite store") }
        return database
    }
}
