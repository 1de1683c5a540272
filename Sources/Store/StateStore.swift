// StateStore: deltahook's durable state — the typed repository the engine, the dispatcher, status and the
// CLI call. It knows nothing of providers, HTTP or delivery policy: callers decide what changed, whom an event
// is routed to and when to retry; the store makes those decisions durable and atomic.
//
// Memory stays flat: every listing is bounded by a limit and pages by keyset (seq, id), never by OFFSET, and no
// method materializes a whole table.
public import Foundation
public import Core
import Dispatch
import Synchronization

/// The result of one job on the store's queue, handed to whoever awaits it (before or after it is ready).
private final class QueuedOutcome<T: Sendable>: Sendable {
    private struct State {
        var result: Result<T, any Error>?
        var waiter: CheckedContinuation<T, any Error>?
    }
    private let state = Mutex(State())

    func resolve(_ result: Result<T, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<T, any Error>? in
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<T, any Error>? in
                if state.result == nil { state.waiter = continuation }
                return state.result
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// The state store over one SQLite file.
///
/// `Sendable`: it holds only a ``Database`` (itself lock-guarded) and a serial queue. All methods are
/// synchronous and block the caller; from async code use ``perform(_:)`` to keep SQLite off the cooperative pool.
public final class StateStore: Sendable {
    /// The conventional file name inside `state_directory`.
    public static let fileName = "deltahook.sqlite"
    /// Response bodies are kept up to this many UTF-8 bytes (DESIGN §5: "a few KB").
    public static let responseExcerptLimit = 4096
    /// The schema version this binary writes.
    public static var schemaVersion: Int { Schema.currentVersion }

    public let database: Database
    private let queue: DispatchQueue
    /// Told after every committed page that inserted events (see ``observeCommittedEvents(_:)``).
    private let eventsObserver = Mutex<(@Sendable (Int) -> Void)?>(nil)

    /// Registers the one observer told, after the transaction committed, how many new events a page commit
    /// inserted. The daemon wakes the dispatcher with it, so a delivery starts as soon as its row is durable,
    /// whichever engine path (delta scan, delete feed, sweep) committed it.
    public func observeCommittedEvents(_ observer: (@Sendable (Int) -> Void)?) {
        eventsObserver.withLock { $0 = observer }
    }

    /// Opens the store. `.readWrite` (the daemon) creates the file and applies migrations; `.readOnly` (the CLI
    /// beside a running daemon) opens it as a WAL reader and requires the current schema.
    ///
    /// - Throws: ``StoreError`` — `.schemaTooNew` when the file was written by a newer deltahook.
    public init(path: String, mode: Database.Mode = .readWrite) throws {
        database = try Database(path: path, mode: mode)
        queue = DispatchQueue(label: "deltahook.store")
        switch mode {
        case .readWrite:
            try Schema.migrate(database)
            // SQLite creates the file under the process umask and gives -wal/-shm the file's mode: made 0600 here,
            // every later -wal/-shm is 0600 too (docs/DESIGN.md §1, private files).
            try PrivateFiles.tightenStoreFiles(path)
        case .readOnly: try Schema.checkReadable(database)
        }
    }

    /// Runs `body` on the store's own serial queue, so blocking SQLite calls never occupy a Swift concurrency
    /// thread (the same reason GRDB confines connections to a DispatchQueue).
    public func perform<T: Sendable>(_ body: @escaping @Sendable (StateStore) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body(self) }) }
        }
    }

    /// Puts `body` on the store's serial queue now — before anything enqueued after this call returns — and
    /// returns a task that delivers its result. Lets a caller order jobs (a read before a commit) and await
    /// them later, doing other work meanwhile.
    public func enqueue<T: Sendable>(_ body: @escaping @Sendable (StateStore) throws -> T) -> Task<T, any Error> {
        let outcome = QueuedOutcome<T>()
        queue.async { outcome.resolve(Result { try body(self) }) }
        return Task { try await outcome.value() }
    }

    // MARK: - Page commit (DESIGN §2 rule 1)

    /// Where ``commitPage(_:)`` is; tests inject failures between stages.
    enum CommitStage: Sendable { case snapshots, events, deliveries, quarantine, cursor }

    /// Commits one page in ONE write transaction: upserts the snapshots, inserts the events (an event id that
    /// already exists is skipped — a re-poll after a crash produces the same ids), inserts one pending delivery
    /// per (new event, listed subscriber) due at `commit.now`, quarantines the page's rejected records and
    /// releases the accepted ones (Quarantine.swift), and writes the cursor. Either all of it is
    /// durable or none of it is, so the cursor never advances past data that is not diffed and enqueued.
    ///
    /// Deliveries are created only for newly inserted events: a duplicate id means the event and its deliveries
    /// were committed before.
    public func commitPage(_ commit: PageCommit) throws -> PageCommitResult {
        let result = try commitPage(commit, checkpoint: { _ in })
        if !result.inserted.isEmpty, let observer = eventsObserver.withLock({ $0 }) { observer(result.inserted.count) }
        return result
    }

    func commitPage(_ commit: PageCommit, checkpoint: (CommitStage) throws -> Void) throws -> PageCommitResult {
        let now = Millis.from(commit.now)
        return try database.write { db in
            var result = PageCommitResult(inserted: [], duplicateEventIDs: [], deliveriesCreated: 0,
                                          snapshotsWritten: 0)
            for snapshot in commit.snapshots {
                let record = snapshot.recordText ?? snapshot.record.canonicalString()
                let raw = snapshot.rawText ?? snapshot.raw.serialized()
                if !snapshot.tombstoned {
                    // The common case: a new record or a new version of a live one. Changes nothing when the
                    // stored row is a tombstone; then the full upsert below clears it (an undelete).
                    let changed = try db.execute(Self.upsertLiveSnapshotSQL, [
                        .text(commit.connection), .text(commit.object), .text(snapshot.recordID),
                        .text(snapshot.contentHash), .text(record), .text(raw), .date(snapshot.sourceTimestamp),
                        .integer(now), .integer(now),
                    ])
                    if changed == 1 {
                        result.snapshotsWritten += 1
                        continue
                    }
                }
                try db.execute(Self.upsertSnapshotSQL, [
                    .text(commit.connection), .text(commit.object), .text(snapshot.recordID),
                    .text(snapshot.contentHash), .text(record), .text(raw), .date(snapshot.sourceTimestamp),
                    .bool(snapshot.tombstoned), snapshot.tombstoned ? .integer(now) : .null, .integer(now), .integer(now),
                ])
                result.snapshotsWritten += 1
            }
            try checkpoint(.snapshots)

            var newEvents: [(seq: Int64, outgoing: OutgoingEvent)] = []
            for outgoing in commit.events {
                let event = outgoing.event
                let changed = try db.execute(Self.insertEventSQL, Self.eventArguments(
                    event, recordText: outgoing.recordText, rawText: outgoing.rawText))
                if changed == 1 {
                    let seq = db.lastInsertRowID
                    result.inserted.append(.init(id: event.id, seq: seq))
                    newEvents.append((seq, outgoing))
                } else {
                    result.duplicateEventIDs.append(event.id)
                }
            }
            try checkpoint(.events)

            for (seq, outgoing) in newEvents {
                let key = Self.recordKey(outgoing.event)
                var seen = Set<String>()
                for subscriber in outgoing.subscribers where seen.insert(subscriber).inserted {
                    result.deliveriesCreated += try db.execute(Self.insertDeliverySQL, [
                        .integer(seq), .text(subscriber), .text(key), .integer(now), .integer(now), .integer(now),
                    ])
                }
            }
            try checkpoint(.deliveries)

            try Self.writeQuarantine(of: commit, now: now, into: &result, db)
            try checkpoint(.quarantine)

            if let cursor = commit.cursor {
                try Self.writeCursor(cursor, now: now, db)
            }
            try checkpoint(.cursor)
            return result
        }
    }

    /// Inserts a live snapshot, or replaces a live one; leaves a tombstoned row untouched (0 changes). It sets
    /// none of `snapshots_live`'s columns (record_id, last_seen_sweep, tombstoned), so SQLite does not rewrite
    /// that index entry on every update (Schema.version2).
    static let upsertLiveSnapshotSQL = """
        INSERT INTO snapshots (connection, object, record_id, content_hash, record, raw, source_ts, tombstoned,
                               tombstoned_at, last_seen_sweep, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL, ?, ?)
        ON CONFLICT (connection, object, record_id) DO UPDATE SET
            content_hash = excluded.content_hash, record = excluded.record, raw = excluded.raw,
            source_ts = excluded.source_ts, updated_at = excluded.updated_at
        WHERE snapshots.tombstoned = 0
        """

    /// Any snapshot write: tombstones (deletes) and undeletes.
    static let upsertSnapshotSQL = """
        INSERT INTO snapshots (connection, object, record_id, content_hash, record, raw, source_ts, tombstoned,
                               tombstoned_at, last_seen_sweep, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (connection, object, record_id) DO UPDATE SET
            content_hash = excluded.content_hash, record = excluded.record, raw = excluded.raw,
            source_ts = excluded.source_ts, tombstoned = excluded.tombstoned, tombstoned_at = excluded.tombstoned_at,
            last_seen_sweep = MAX(snapshots.last_seen_sweep, excluded.last_seen_sweep),
            updated_at = excluded.updated_at
        """

    static let insertEventSQL = """
        INSERT INTO events (event_id, type, model, kind, connection, provider, object, record_id, occurred_at,
                            detected_at, record, changes, raw, changed_fields)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (event_id) DO NOTHING
        """

    static let insertDeliverySQL = """
        INSERT INTO deliveries (event_seq, subscriber, record_key, state, attempts, next_attempt_at, created_at,
                                updated_at)
        VALUES (?, ?, ?, 'pending', 0, ?, ?, ?)
        ON CONFLICT (event_seq, subscriber) DO NOTHING
        """

    /// `connection/object/record_id`: the per-record ordering key of deliveries.
    public static func recordKey(connection: String, object: String, recordID: String) -> String {
        "\(connection)/\(object)/\(recordID)"
    }

    static func recordKey(_ event: ChangeEvent) -> String {
        recordKey(connection: event.connection, object: event.object, recordID: event.recordID)
    }

    static func eventArguments(_ event: ChangeEvent, recordText: String? = nil, rawText: String? = nil)
        -> [SQLValue]
    {
        var changes: SQLValue = .null
        if let fieldChanges = event.changes {
            var object = JSONObject()
            for key in fieldChanges.keys.sorted() {
                guard let change = fieldChanges[key] else { continue }
                object[key] = .object(JSONObject([("from", change.from), ("to", change.to)]))
            }
            changes = .text(JSONValue.object(object).serialized())
        }
        // Stored as given (the differ sorts them), so a replay renders the body of the first delivery (rule 5a).
        let changedFields: SQLValue = event.changedFields.map { .text(jsonArray($0)) } ?? .null
        return [
            .text(event.id), .text(event.type), .text(event.model), .text(event.kind.rawValue),
            .text(event.connection), .text(event.provider), .text(event.object), .text(event.recordID),
            .date(event.occurredAt), .date(event.detectedAt), .text(recordText ?? event.record.serialized()), changes,
            .text(rawText ?? event.raw.serialized()), changedFields,
        ]
    }

    // MARK: - Snapshots

    /// Hash, source time and tombstone flag of the given ids (those that exist), keyed by record id: enough for
    /// the differ to skip unchanged re-reads without parsing stored JSON.
    public func snapshotHeads(connection: String, object: String, ids: [String]) throws -> [String: SnapshotHead] {
        guard !ids.isEmpty else { return [:] }
        return try database.read { db in
            var result = [String: SnapshotHead](minimumCapacity: ids.count)
            try db.query("""
                SELECT record_id, content_hash, source_ts, tombstoned FROM snapshots
                WHERE connection = ? AND object = ? AND record_id IN (SELECT value FROM json_each(?))
                """, [.text(connection), .text(object), .text(Self.jsonArray(ids))]) { row in
                let id = row.text(0)
                result[id] = SnapshotHead(recordID: id, contentHash: row.text(1), sourceTimestamp: row.date(2),
                                          tombstoned: row.bool(3))
            }
            return result
        }
    }

    /// Full snapshots of the given ids (those that exist), keyed by record id.
    public func snapshots(connection: String, object: String, ids: [String]) throws -> [String: Snapshot] {
        guard !ids.isEmpty else { return [:] }
        return try database.read { db in
            var result = [String: Snapshot](minimumCapacity: ids.count)
            try db.query("""
                SELECT record_id, content_hash, record, raw, source_ts, tombstoned, tombstoned_at, updated_at
                FROM snapshots
                WHERE connection = ? AND object = ? AND record_id IN (SELECT value FROM json_each(?))
                """, [.text(connection), .text(object), .text(Self.jsonArray(ids))]) { row in
                let id = row.text(0)
                let context = "snapshot \(connection)/\(object)/\(id)"
                result[id] = Snapshot(
                    recordID: id, contentHash: row.text(1),
                    record: try Self.parseJSON(row.text(2), "\(context) record"),
                    raw: try Self.parseJSON(row.text(3), "\(context) raw"), sourceTimestamp: row.date(4),
                    tombstoned: row.bool(5), tombstonedAt: row.date(6), updatedAt: row.date(7) ?? Date(timeIntervalSince1970: 0))
            }
            return result
        }
    }

    /// The stored normalized records of the given ids (those that exist), keyed by record id: what the differ
    /// needs for an `updated` event's field-level `changes`. Unlike ``snapshots(connection:object:ids:)`` it
    /// does not read or parse `raw`, which only deletes need.
    public func snapshotRecords(connection: String, object: String, ids: [String]) throws -> [String: JSONValue] {
        try snapshotBodies(connection: connection, object: object, ids: ids, withRaw: false).mapValues(\.record)
    }

    /// The stored normalized and raw records of the given ids (those that exist), keyed by record id: what the
    /// differ needs for an `updated` event — `changes` from the records, `changed_fields` from the raws
    /// (docs/DESIGN.md §2 rule 5a). Meant for ids whose content hash changed only: unchanged re-reads are decided
    /// by ``snapshotHeads(connection:object:ids:)`` without parsing any JSON.
    public func snapshotPriors(connection: String, object: String, ids: [String]) throws -> [String: SnapshotBody] {
        try snapshotBodies(connection: connection, object: object, ids: ids, withRaw: true)
    }

    /// `record` (and `raw` when `withRaw`; `.null` otherwise) of the given ids, parsed.
    private func snapshotBodies(connection: String, object: String, ids: [String], withRaw: Bool) throws
        -> [String: SnapshotBody]
    {
        guard !ids.isEmpty else { return [:] }
        return try database.read { db in
            var result = [String: SnapshotBody](minimumCapacity: ids.count)
            try db.query("""
                SELECT record_id, record\(withRaw ? ", raw" : "") FROM snapshots
                WHERE connection = ? AND object = ? AND record_id IN (SELECT value FROM json_each(?))
                """, [.text(connection), .text(object), .text(Self.jsonArray(ids))]) { row in
                let id = row.text(0)
                let context = "snapshot \(connection)/\(object)/\(id)"
                let record = try Self.parseJSON(row.text(1), "\(context) record")
                let raw = try withRaw ? Self.parseJSON(row.text(2), "\(context) raw") : JSONValue.null
                result[id] = SnapshotBody(record: record, raw: raw)
            }
            return result
        }
    }

    /// One page of live (non-tombstoned) record ids in id order, after `after` (keyset paging; pass the last id
    /// of the previous page, nil to start). An empty result ends the walk.
    public func liveRecordIDs(connection: String, object: String, after: String? = nil, limit: Int = 1000) throws
        -> [String]
    {
        try database.read { db in
            try db.queryAll("""
                SELECT record_id FROM snapshots
                WHERE connection = ? AND object = ? AND tombstoned = 0 AND record_id > ?
                ORDER BY record_id LIMIT ?
                """, [.text(connection), .text(object), .text(after ?? ""), .integer(Int64(limit))]) { $0.text(0) }
        }
    }

    /// Marks ids as seen by the reconciliation sweep that started at `sweep` (DESIGN §2 rule 6). Snapshots written
    /// by ``commitPage(_:)`` count as seen at their write time (`updated_at`), so records created or changed during
    /// a sweep are not mistaken for deletions.
    public func markSeen(connection: String, object: String, ids: [String], sweep: Date) throws {
        guard !ids.isEmpty else { return }
        try database.write { db in
            try db.execute("""
                UPDATE snapshots SET last_seen_sweep = MAX(last_seen_sweep, ?)
                WHERE connection = ? AND object = ? AND record_id IN (SELECT value FROM json_each(?))
                """, [.date(sweep), .text(connection), .text(object), .text(Self.jsonArray(ids))])
        }
    }

    /// One page (keyset on record id) of live ids NOT seen by the sweep that started at `sweep` — neither marked
    /// by ``markSeen(connection:object:ids:sweep:)`` nor written by ``commitPage(_:)`` since it started: after a
    /// complete, successful sweep these are the deleted records. Call only then — deletes are never inferred from
    /// a partial sweep.
    public func unseenLiveIDs(connection: String, object: String, sweep: Date, after: String? = nil,
                              limit: Int = 1000) throws -> [String]
    {
        try database.read { db in
            try db.queryAll("""
                SELECT record_id FROM snapshots
                WHERE connection = ? AND object = ? AND tombstoned = 0 AND record_id > ? AND last_seen_sweep < ?
                  AND updated_at < ?
                ORDER BY record_id LIMIT ?
                """, [.text(connection), .text(object), .text(after ?? ""), .date(sweep), .date(sweep),
                      .integer(Int64(limit))]) {
                $0.text(0)
            }
        }
    }

    // MARK: - Cursors

    /// The cursor of (connection, object, partition), nil before the first commit.
    public func cursor(connection: String, object: String, partition: String = "") throws -> CursorState? {
        try database.read { db in
            try db.queryOne("""
                SELECT connection, object, partition, watermark, resume_state, delete_cursor, last_reconcile_at,
                       updated_at
                FROM cursors WHERE connection = ? AND object = ? AND partition = ?
                """, [.text(connection), .text(object), .text(partition)], Self.cursorRow)
        }
    }

    /// All partitions' cursors of one object (few rows: partitions are bounded by configuration).
    public func cursors(connection: String, object: String) throws -> [CursorState] {
        try database.read { db in
            try db.queryAll("""
                SELECT connection, object, partition, watermark, resume_state, delete_cursor, last_reconcile_at,
                       updated_at
                FROM cursors WHERE connection = ? AND object = ? ORDER BY partition LIMIT 10000
                """, [.text(connection), .text(object)], Self.cursorRow)
        }
    }

    /// Writes a cursor on its own (e.g. `last_reconcile_at` after a sweep, a delete-feed position). Page cursors
    /// go through ``commitPage(_:)`` with their page.
    public func setCursor(_ cursor: CursorState, now: Date) throws {
        try database.write { db in try Self.writeCursor(cursor, now: Millis.from(now), db) }
    }

    private static func writeCursor(_ cursor: CursorState, now: Int64, _ db: SQLConnection) throws {
        try db.execute("""
            INSERT INTO cursors (connection, object, partition, watermark, resume_state, delete_cursor,
                                 last_reconcile_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (connection, object, partition) DO UPDATE SET
                watermark = excluded.watermark, resume_state = excluded.resume_state,
                delete_cursor = excluded.delete_cursor, last_reconcile_at = excluded.last_reconcile_at,
                updated_at = excluded.updated_at
            """, [
                .text(cursor.connection), .text(cursor.object), .text(cursor.partition), .date(cursor.watermark),
                .text(cursor.resumeState), .text(cursor.deleteFeedCursor), .date(cursor.lastReconcileAt),
                .integer(now),
            ])
    }

    private static func cursorRow(_ row: Row) -> CursorState {
        CursorState(connection: row.text(0), object: row.text(1), partition: row.text(2), watermark: row.date(3),
                    resumeState: row.string(4), deleteFeedCursor: row.string(5), lastReconcileAt: row.date(6),
                    updatedAt: row.date(7))
    }

    // MARK: - Poll status

    /// Adds one poll's outcome: sets last poll time, last success or last error (a success clears the error),
    /// and adds to the counters.
    public func recordPoll(_ report: PollReport) throws {
        try database.write { db in
            try db.execute("""
                INSERT INTO poll_status (connection, object, last_poll_at, last_success_at, last_error, last_error_at,
                                         events_total, records_total)
                VALUES (?1, ?2, ?3, CASE WHEN ?4 IS NULL THEN ?3 END, ?4, CASE WHEN ?4 IS NOT NULL THEN ?3 END,
                        ?5, ?6)
                ON CONFLICT (connection, object) DO UPDATE SET
                    last_poll_at = excluded.last_poll_at,
                    last_success_at = COALESCE(excluded.last_success_at, poll_status.last_success_at),
                    last_error = excluded.last_error,
                    last_error_at = COALESCE(excluded.last_error_at, poll_status.last_error_at),
                    events_total = poll_status.events_total + excluded.events_total,
                    records_total = poll_status.records_total + excluded.records_total
                """, [
                    .text(report.connection), .text(report.object), .date(report.at), .text(report.error),
                    .integer(Int64(report.events)), .integer(Int64(report.records)),
                ])
        }
    }

    /// Poll status of every (connection, object) ever polled, ordered by connection and object.
    public func pollStatuses() throws -> [PollStatus] {
        try database.read { db in
            try db.queryAll("""
                SELECT connection, object, last_poll_at, last_success_at, last_error, last_error_at, events_total,
                       records_total
                FROM poll_status ORDER BY connection, object LIMIT 100000
                """) { row in
                PollStatus(connection: row.text(0), object: row.text(1), lastPollAt: row.date(2),
                           lastSuccessAt: row.date(3), lastError: row.string(4), lastErrorAt: row.date(5),
                           eventsTotal: row.int64(6), recordsTotal: row.int64(7))
            }
        }
    }

    // MARK: - Events

    private static let eventColumns = """
        e.seq, e.event_id, e.model, e.kind, e.connection, e.provider, e.object, e.record_id, e.occurred_at,
        e.detected_at, e.record, e.changes, e.raw, e.changed_fields
        """

    /// The event with this id (`evt_…`), nil when unknown.
    public func event(id: String) throws -> StoredEvent? {
        try database.read { db in
            try db.queryOne("SELECT \(Self.eventColumns) FROM events e WHERE e.event_id = ?", [.text(id)]) {
                try Self.eventRow($0, offset: 0)
            }
        }
    }

    /// Events matching `query`, ordered by seq, at most `query.limit`.
    public func events(_ query: EventQuery) throws -> [StoredEvent] {
        var conditions: [String] = []
        var arguments: [SQLValue] = []
        if let connection = query.connection { conditions.append("e.connection = ?"); arguments.append(.text(connection)) }
        if let object = query.object { conditions.append("e.object = ?"); arguments.append(.text(object)) }
        if let type = query.type { conditions.append("e.type = ?"); arguments.append(.text(type)) }
        if let since = query.since { conditions.append("e.detected_at >= ?"); arguments.append(.date(since)) }
        if let until = query.until { conditions.append("e.detected_at < ?"); arguments.append(.date(until)) }
        if let after = query.afterSeq { conditions.append("e.seq > ?"); arguments.append(.integer(after)) }
        if let before = query.beforeSeq { conditions.append("e.seq < ?"); arguments.append(.integer(before)) }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments.append(.integer(Int64(max(0, query.limit))))
        let sql = "SELECT \(Self.eventColumns) FROM events e \(whereClause) ORDER BY e.seq "
            + (query.newestFirst ? "DESC" : "ASC") + " LIMIT ?"
        return try database.read { db in try db.queryAll(sql, arguments) { try Self.eventRow($0, offset: 0) } }
    }

    /// Events with seq in `range`, ascending, at most `limit`.
    public func events(seqIn range: ClosedRange<Int64>, limit: Int = 1000) throws -> [StoredEvent] {
        try database.read { db in
            try db.queryAll("""
                SELECT \(Self.eventColumns) FROM events e WHERE e.seq BETWEEN ? AND ? ORDER BY e.seq LIMIT ?
                """, [.integer(range.lowerBound), .integer(range.upperBound), .integer(Int64(limit))]) {
                try Self.eventRow($0, offset: 0)
            }
        }
    }

    /// Routing columns of events detected at or after `since` with seq > `afterSeq`, ascending (keyset pages).
    public func eventSummaries(since: Date?, afterSeq: Int64 = 0, limit: Int = 1000) throws -> [EventSummary] {
        try database.read { db in
            try db.queryAll("""
                SELECT seq, event_id, type, connection, object, record_id, detected_at FROM events
                WHERE seq > ? AND detected_at >= ? ORDER BY seq LIMIT ?
                """, [.integer(afterSeq), .date(since ?? Date(timeIntervalSince1970: 0)), .integer(Int64(limit))]) { row in
                EventSummary(seq: row.int64(0), id: row.text(1), type: row.text(2), connection: row.text(3),
                             object: row.text(4), recordID: row.text(5),
                             detectedAt: row.date(6) ?? Date(timeIntervalSince1970: 0))
            }
        }
    }

    /// Decodes the 14 ``eventColumns`` starting at `offset`.
    private static func eventRow(_ row: Row, offset: Int32) throws -> StoredEvent {
        let seq = row.int64(offset)
        let id = row.text(offset + 1)
        let context = "event \(id)"
        guard let kind = ChangeKind(rawValue: row.text(offset + 3)) else {
            throw StoreError(code: .corruptData, message: "\(context) has unknown kind")
        }
        var changes: [String: FieldChange]?
        if let text = row.string(offset + 11) {
            let value = try parseJSON(text, "\(context) changes")
            var result = [String: FieldChange]()
            for (key, change) in value.objectValue ?? JSONObject() {
                result[key] = FieldChange(from: change["from"] ?? .null, to: change["to"] ?? .null)
            }
            changes = result
        }
        var changedFields: [String]?
        if let text = row.string(offset + 13) {
            let value = try parseJSON(text, "\(context) changed_fields")
            guard let names = value.arrayValue?.compactMap(\.stringValue), names.count == value.arrayValue?.count
            else {
                throw StoreError(code: .corruptData, message: "\(context) changed_fields is not an array of names")
            }
            changedFields = names
        }
        let event = ChangeEvent(
            id: id, model: row.text(offset + 2), kind: kind, connection: row.text(offset + 4),
            provider: row.text(offset + 5), object: row.text(offset + 6), recordID: row.text(offset + 7),
            occurredAt: row.date(offset + 8), detectedAt: row.date(offset + 9) ?? Date(timeIntervalSince1970: 0),
            record: try parseJSON(row.text(offset + 10), "\(context) record"), changes: changes,
            raw: try parseJSON(row.text(offset + 12), "\(context) raw"), changedFields: changedFields)
        return StoredEvent(seq: seq, event: event)
    }

    // MARK: - Deliveries

    private static let deliveryColumns = """
        d.id, d.event_seq, e.event_id, e.type, d.subscriber, d.record_key, d.state, d.attempts, d.next_attempt_at,
        d.last_status, d.last_error, d.created_at, d.updated_at, d.delivered_at, d.lease_token
        """

    private static func deliveryRow(_ row: Row) throws -> Delivery {
        guard let state = DeliveryState(rawValue: row.text(6)) else {
            throw StoreError(code: .corruptData, message: "delivery \(row.int64(0)) has unknown state")
        }
        return Delivery(
            id: row.int64(0), eventSeq: row.int64(1), eventID: row.text(2), eventType: row.text(3),
            subscriber: row.text(4), recordKey: row.text(5), state: state, attempts: row.int(7),
            nextAttemptAt: row.date(8), lastStatus: row.optionalInt64(9).map(Int.init), lastError: row.string(10),
            createdAt: row.date(11) ?? Date(timeIntervalSince1970: 0),
            updatedAt: row.date(12) ?? Date(timeIntervalSince1970: 0), deliveredAt: row.date(13),
            leaseToken: row.int64(14))
    }

    /// Pending deliveries of `subscriber` due at `now`, in event order, keeping only the head of each record's
    /// queue: a delivery is returned only if no earlier pending delivery exists for the same
    /// (subscriber, record_key), even one not yet due. So events of one record arrive in order, and a failing
    /// record (whose head waits for its retry) does not block other records (DESIGN §5). `failed` deliveries
    /// are terminal and do not block later ones.
    static let dueSQL = dueQuery()

    /// The due query, with `condition` ANDed to its WHERE clause. ?1 subscriber, ?2 now, ?3 limit.
    private static func dueQuery(_ condition: String = "") -> String {
        """
        SELECT \(deliveryColumns), \(eventColumns)
        FROM deliveries d JOIN events e ON e.seq = d.event_seq
        WHERE d.subscriber = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2
          AND NOT EXISTS (SELECT 1 FROM deliveries p
                          WHERE p.subscriber = ?1 AND p.record_key = d.record_key AND p.state = 'pending'
                            AND p.event_seq < d.event_seq)
          \(condition)
        ORDER BY d.event_seq
        LIMIT ?3
        """
    }

    /// Due head-of-record deliveries of `subscriber` (see the ordering rule above), without changing them.
    public func dueDeliveries(subscriber: String, now: Date, limit: Int = 100) throws -> [DueDelivery] {
        try database.read { db in
            try db.queryAll(Self.dueSQL, [.text(subscriber), .date(now), .integer(Int64(limit))], Self.dueRow)
        }
    }

    /// ``dueSQL`` without the records of deliveries the caller still has in flight (`?4`, a JSON array of
    /// delivery ids). A `redeliver`/`replay` can make an in-flight delivery, or an older event of its record,
    /// pending and due again; it waits until the attempt in flight has ended, so one record never has two
    /// deliveries in flight (docs/DESIGN.md §5, ARCHITECTURE.md invariant 6).
    static let claimSQL = dueQuery("""
        AND d.record_key NOT IN (SELECT h.record_key FROM deliveries h
                                 WHERE h.id IN (SELECT value FROM json_each(?4)))
        """)

    /// Like ``dueDeliveries(subscriber:now:limit:)`` but also leases them: their `next_attempt_at` moves to
    /// `leaseUntil` in the same transaction, so the next call does not return them again while they are in
    /// flight, and after a crash they become due again when the lease ends (at-least-once). Each claim bumps
    /// the row's `lease_token`; the returned ``Delivery/leaseToken`` goes back with the attempt's result.
    ///
    /// - Parameter inFlight: deliveries the caller claimed earlier and has not recorded yet; their records are
    ///   skipped even if a re-arm made one of them due (see ``claimSQL``).
    public func claimDueDeliveries(subscriber: String, now: Date, leaseUntil: Date, limit: Int = 100,
                                   inFlight: Set<Int64> = []) throws -> [DueDelivery]
    {
        let held = JSONValue.array(inFlight.map { .integer($0) }).serialized()
        return try database.write { db in
            let due = try db.queryAll(Self.claimSQL, [.text(subscriber), .date(now), .integer(Int64(limit)), .text(held)],
                                      Self.dueRow)
            return try due.map { item in
                var item = item
                try db.execute("""
                    UPDATE deliveries SET next_attempt_at = ?, updated_at = ?, lease_token = lease_token + 1
                    WHERE id = ?
                    """, [.date(leaseUntil), .date(now), .integer(item.delivery.id)])
                item.delivery.nextAttemptAt = leaseUntil
                item.delivery.leaseToken += 1
                return item
            }
        }
    }

    private static func dueRow(_ row: Row) throws -> DueDelivery {
        DueDelivery(delivery: try deliveryRow(row), event: try eventRow(row, offset: 15).event)
    }

    /// Records one HTTP attempt and the delivery's new state in one transaction.
    /// - Throws: ``StoreError`` `.notFound` when the delivery does not exist.
    public func recordAttempt(_ result: AttemptResult) throws {
        try recordAttempts([result])
    }

    /// Records several attempts in one transaction (the dispatcher batches completions for throughput).
    ///
    /// A result carrying a ``AttemptResult/leaseToken`` changes the delivery only while the row still holds
    /// that token. When a `redeliver` or `replay` re-armed the row during the attempt (or it was claimed
    /// again), the result is superseded: its attempt is still logged in `attempts` (the receiver may have got
    /// it), but state, attempt count and schedule stay as the re-arm left them, so the redelivery happens.
    /// - Returns: the ids of the deliveries whose result was superseded.
    @discardableResult
    public func recordAttempts(_ results: [AttemptResult]) throws -> [Int64] {
        guard !results.isEmpty else { return [] }
        return try database.write { db in
            var superseded: [Int64] = []
            for result in results {
                let at = Millis.from(result.attemptedAt)
                let state: DeliveryState
                var next: SQLValue = .null
                var deliveredAt: SQLValue = .null
                switch result.outcome {
                case .delivered: state = .delivered; deliveredAt = .integer(at)
                case .retry(let when): state = .pending; next = .date(when)
                case .failed: state = .failed
                }
                let changed = try db.execute("""
                    UPDATE deliveries SET attempts = attempts + 1, state = ?, next_attempt_at = ?, last_status = ?,
                        last_error = ?, updated_at = ?, delivered_at = COALESCE(?, delivered_at)
                    WHERE id = ? AND (?8 IS NULL OR lease_token = ?8)
                    """, [
                        .text(state.rawValue), next, .integer(result.httpStatus.map(Int64.init)), .text(result.error),
                        .integer(at), deliveredAt, .integer(result.deliveryID), .integer(result.leaseToken),
                    ])
                if changed != 1 {
                    let exists = try db.queryOne("SELECT 1 FROM deliveries WHERE id = ?",
                                                 [.integer(result.deliveryID)]) { _ in true } ?? false
                    guard exists else {
                        throw StoreError(code: .notFound, message: "delivery \(result.deliveryID) does not exist",
                                         hint: "it was pruned by retention while the attempt was in flight")
                    }
                    superseded.append(result.deliveryID)
                }
                try db.execute("""
                    INSERT INTO attempts (delivery_id, attempted_at, http_status, latency_ms, response_excerpt, error)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """, [
                        .integer(result.deliveryID), .integer(at), .integer(result.httpStatus.map(Int64.init)),
                        .integer(result.latencyMilliseconds),
                        .text(result.responseExcerpt.map { Self.truncateUTF8($0, to: Self.responseExcerptLimit) }),
                        .text(result.error),
                    ])
            }
            return superseded
        }
    }

    /// Deliveries newest first, optionally of one subscriber and/or in one state (`deliveries list [--failed]`);
    /// page with `beforeID` = the last id of the previous page.
    public func deliveries(subscriber: String? = nil, state: DeliveryState? = nil, beforeID: Int64? = nil,
                           limit: Int = 100) throws -> [Delivery]
    {
        var conditions: [String] = []
        var arguments: [SQLValue] = []
        if let subscriber { conditions.append("d.subscriber = ?"); arguments.append(.text(subscriber)) }
        if let state { conditions.append("d.state = ?"); arguments.append(.text(state.rawValue)) }
        if let beforeID { conditions.append("d.id < ?"); arguments.append(.integer(beforeID)) }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments.append(.integer(Int64(max(0, limit))))
        return try database.read { db in
            try db.queryAll("""
                SELECT \(Self.deliveryColumns) FROM deliveries d JOIN events e ON e.seq = d.event_seq
                \(whereClause) ORDER BY d.id DESC LIMIT ?
                """, arguments, Self.deliveryRow)
        }
    }

    /// The deliveries of one event (one per subscriber it was routed to).
    public func deliveries(eventID: String) throws -> [Delivery] {
        try database.read { db in
            try db.queryAll("""
                SELECT \(Self.deliveryColumns) FROM deliveries d JOIN events e ON e.seq = d.event_seq
                WHERE e.event_id = ? ORDER BY d.subscriber LIMIT 10000
                """, [.text(eventID)], Self.deliveryRow)
        }
    }

    /// The most recent attempts of a delivery, newest first.
    public func attempts(deliveryID: Int64, limit: Int = 20) throws -> [Attempt] {
        try database.read { db in
            try db.queryAll("""
                SELECT id, delivery_id, attempted_at, http_status, latency_ms, response_excerpt, error
                FROM attempts WHERE delivery_id = ? ORDER BY id DESC LIMIT ?
                """, [.integer(deliveryID), .integer(Int64(limit))]) { row in
                Attempt(id: row.int64(0), deliveryID: row.int64(1),
                        attemptedAt: row.date(2) ?? Date(timeIntervalSince1970: 0),
                        httpStatus: row.optionalInt64(3).map(Int.init), latencyMilliseconds: row.int64(4),
                        responseExcerpt: row.string(5), error: row.string(6))
            }
        }
    }

    private static let rearmSQL = """
        INSERT INTO deliveries (event_seq, subscriber, record_key, state, attempts, next_attempt_at, created_at,
                                updated_at)
        VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4, ?4)
        ON CONFLICT (event_seq, subscriber) DO UPDATE SET
            state = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
            updated_at = excluded.updated_at, delivered_at = NULL, lease_token = deliveries.lease_token + 1
        """

    /// `replay --subscriber S --since T`: for every event detected at or after `since` that `matches` (the
    /// caller applies the subscriber's event globs and connections), creates a pending delivery for
    /// `subscriber`, or re-arms the existing one (pending, attempts reset, due at `now`). The event id stays
    /// the same, so receivers can deduplicate. Walks the outbox in keyset pages of `pageSize`, one write
    /// transaction per page. Returns the number of deliveries created or re-armed.
    public func replay(subscriber: String, since: Date, now: Date, pageSize: Int = 500,
                       matching matches: (EventSummary) -> Bool) throws -> Int
    {
        var afterSeq: Int64 = 0
        var total = 0
        while true {
            let page = try eventSummaries(since: since, afterSeq: afterSeq, limit: pageSize)
            guard let last = page.last else { return total }
            afterSeq = last.seq
            let selected = page.filter(matches)
            guard !selected.isEmpty else { continue }
            try database.write { db in
                for summary in selected {
                    let key = Self.recordKey(connection: summary.connection, object: summary.object,
                                             recordID: summary.recordID)
                    try db.execute(Self.rearmSQL, [.integer(summary.seq), .text(subscriber), .text(key), .date(now)])
                }
            }
            total += selected.count
        }
    }

    /// `redeliver EVENT`: re-arms the event's deliveries (pending, attempts reset, due at `now`). With
    /// `subscribers` nil, every existing delivery of the event; otherwise exactly those subscribers (creating
    /// rows as needed). Returns the number of deliveries re-armed.
    /// - Throws: ``StoreError`` `.notFound` when the event id is unknown.
    public func redeliver(eventID: String, subscribers: [String]? = nil, now: Date) throws -> Int {
        try database.write { db in
            guard let (seq, key) = try db.queryOne(
                "SELECT seq, connection, object, record_id FROM events WHERE event_id = ?", [.text(eventID)],
                { row in
                    (row.int64(0), Self.recordKey(connection: row.text(1), object: row.text(2), recordID: row.text(3)))
                })
            else {
                throw StoreError(code: .notFound, message: "no event with id \(eventID)",
                                 hint: "list events with `deltahook events list`")
            }
            if let subscribers {
                for subscriber in Set(subscribers) {
                    try db.execute(Self.rearmSQL, [.integer(seq), .text(subscriber), .text(key), .date(now)])
                }
                return Set(subscribers).count
            }
            return try db.execute("""
                UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?1, updated_at = ?1,
                    delivered_at = NULL, lease_token = lease_token + 1
                WHERE event_seq = ?2
                """, [.date(now), .integer(seq)])
        }
    }

    /// When the earliest head-of-record pending delivery of `subscriber` becomes due (nil when nothing is
    /// pending), so the dispatcher can sleep until then. Only heads count: a later event of a record whose head
    /// waits for a retry is not due before that head, and counting it would wake the dispatcher for nothing.
    public func nextDueAt(subscriber: String) throws -> Date? {
        try database.read { db in
            try db.queryOne("""
                SELECT MIN(d.next_attempt_at) FROM deliveries d
                WHERE d.subscriber = ?1 AND d.state = 'pending'
                  AND NOT EXISTS (SELECT 1 FROM deliveries p
                                  WHERE p.subscriber = ?1 AND p.record_key = d.record_key AND p.state = 'pending'
                                    AND p.event_seq < d.event_seq)
                """, [.text(subscriber)]) { $0.date(0) } ?? nil
        }
    }

    /// Retention: deletes up to `limit` events detected before `cutoff` whose deliveries are all delivered (or
    /// that had none), with their deliveries and attempts (ON DELETE CASCADE). Pending and failed deliveries keep
    /// their events. Call repeatedly until it returns 0; each call is one short write transaction. seq is
    /// AUTOINCREMENT, so deleted seqs are never reused and keyset paging stays valid.
    public func pruneEvents(detectedBefore cutoff: Date, limit: Int = 1000) throws -> Int {
        try database.write { db in
            try db.execute("""
                DELETE FROM events WHERE seq IN (
                    SELECT e.seq FROM events e
                    WHERE e.detected_at < ?
                      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq AND d.state != 'delivered')
                    ORDER BY e.seq LIMIT ?)
                """, [.date(cutoff), .integer(Int64(limit))])
        }
    }

    /// Checkpoints the WAL into the database file and truncates it (e.g. on shutdown or after pruning).
    /// Related SQLite documentation: <https://www.sqlite.org/pragma.html#pragma_wal_checkpoint>
    public func checkpoint() throws {
        try database.withConnection { try $0.executeScript("PRAGMA wal_checkpoint(TRUNCATE)") }
    }

    /// Pending and failed counts and the oldest pending delivery's creation time of one subscriber.
    /// Cost is proportional to that subscriber's pending + failed rows (partial indexes), not the table.
    public func backlog(subscriber: String) throws -> SubscriberBacklog {
        try database.read { db in
            let pending = try db.queryOne(
                "SELECT COUNT(*) FROM deliveries WHERE subscriber = ? AND state = 'pending'", [.text(subscriber)]
            ) { $0.int(0) } ?? 0
            let oldest = try db.queryOne("""
                SELECT created_at FROM deliveries WHERE subscriber = ? AND state = 'pending'
                ORDER BY event_seq LIMIT 1
                """, [.text(subscriber)]) { $0.date(0) } ?? nil
            let failed = try db.queryOne(
                "SELECT COUNT(*) FROM deliveries WHERE subscriber = ? AND state = 'failed'", [.text(subscriber)]
            ) { $0.int(0) } ?? 0
            let orphaned = try db.queryOne(
                "SELECT COUNT(*) FROM deliveries WHERE subscriber = ? AND state = 'orphaned'", [.text(subscriber)]
            ) { $0.int(0) } ?? 0
            return SubscriberBacklog(subscriber: subscriber, pending: pending, oldestPendingCreatedAt: oldest,
                                     failed: failed, orphaned: orphaned)
        }
    }

    /// Pending deliveries across all subscribers.
    public func pendingCount() throws -> Int {
        try database.read { db in
            try db.queryOne(
                "SELECT COUNT(*) FROM deliveries INDEXED BY deliveries_pending WHERE state = 'pending'"
            ) { $0.int(0) } ?? 0
        }
    }

    // MARK: - Subscribers

    /// The stored state of a subscriber; nil if never recorded (treat as active).
    public func subscriber(id: String) throws -> SubscriberStatus? {
        try database.read { db in
            try db.queryOne("SELECT id, state, reason, changed_at, failing_since FROM subscribers WHERE id = ?",
                            [.text(id)], Self.subscriberRow)
        }
    }

    /// Every subscriber with stored state, by id.
    public func subscribers() throws -> [SubscriberStatus] {
        try database.read { db in
            try db.queryAll("SELECT id, state, reason, changed_at, failing_since FROM subscribers ORDER BY id LIMIT 100000",
                            [], Self.subscriberRow)
        }
    }

    /// Sets state and reason (pause/resume by the operator, pause after failing for days, disable on 410).
    /// Keeps `failing_since`.
    public func setSubscriberState(id: String, state: SubscriberState, reason: String?, at: Date) throws {
        try database.write { db in
            try db.execute("""
                INSERT INTO subscribers (id, state, reason, changed_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
                    changed_at = excluded.changed_at
                """, [.text(id), .text(state.rawValue), .text(reason), .date(at)])
        }
    }

    /// Sets or clears (nil) the start of the subscriber's current failure run. A new row starts `active`.
    public func setSubscriberFailingSince(id: String, _ since: Date?, at: Date) throws {
        try database.write { db in
            try db.execute("""
                INSERT INTO subscribers (id, state, changed_at, failing_since) VALUES (?, 'active', ?, ?)
                ON CONFLICT (id) DO UPDATE SET failing_since = excluded.failing_since
                """, [.text(id), .date(at), .date(since)])
        }
    }

    private static func subscriberRow(_ row: Row) throws -> SubscriberStatus {
        guard let state = SubscriberState(rawValue: row.text(1)) else {
            throw StoreError(code: .corruptData, message: "subscriber \(row.text(0)) has unknown state")
        }
        return SubscriberStatus(id: row.text(0), state: state, reason: row.string(2),
                                changedAt: row.date(3) ?? Date(timeIntervalSince1970: 0), failingSince: row.date(4))
    }

    // MARK: - Helpers

    static func jsonArray(_ strings: [String]) -> String {
        JSONValue.array(strings.map { .string($0) }).serialized()
    }

    static func parseJSON(_ text: String, _ context: String) throws -> JSONValue {
        do {
            return try JSONValue.parse(text)
        } catch {
            throw StoreError(code: .corruptData, message: "\(context) is not valid JSON: \(error.description)")
        }
    }

    /// The longest prefix of `text` of at most `limit` UTF-8 bytes that ends on a character boundary.
    static func truncateUTF8(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        let bytes = Array(text.utf8.prefix(limit + 1))
        var end = limit
        // Do not cut inside a multi-byte scalar: back up over continuation bytes (10xxxxxx).
        while end > 0, bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}
