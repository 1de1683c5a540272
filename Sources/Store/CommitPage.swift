// The page commit (docs/DESIGN.md §2 rule 1): one write transaction per page for its snapshots, events,
// delivery rows, quarantine rows and cursor, so the cursor never runs ahead of durable data (ARCHITECTURE.md
// invariant 1). The tables' reads live in Snapshots.swift, Events.swift, Deliveries.swift and Cursors.swift.
public import Foundation
import Core

extension StateStore {
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
        return try fencedWrite(connection: commit.connection, object: commit.object) { db in
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
                try db.execute(Self.upsertSnapshotSQL(db.dialect), [
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
                let inserted = try db.queryOne(Self.insertEventSQL, Self.eventArguments(
                    event, recordText: outgoing.recordText, rawText: outgoing.rawText)) { $0.int64(0) }
                if let seq = inserted {
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
    static func upsertSnapshotSQL(_ dialect: SQLDialect) -> String { """
        INSERT INTO snapshots (connection, object, record_id, content_hash, record, raw, source_ts, tombstoned,
                               tombstoned_at, last_seen_sweep, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (connection, object, record_id) DO UPDATE SET
            content_hash = excluded.content_hash, record = excluded.record, raw = excluded.raw,
            source_ts = excluded.source_ts, tombstoned = excluded.tombstoned, tombstoned_at = excluded.tombstoned_at,
            last_seen_sweep = \(dialect.greatest("snapshots.last_seen_sweep", "excluded.last_seen_sweep")),
            updated_at = excluded.updated_at
        """ }

    static let insertEventSQL = """
        INSERT INTO events (event_id, type, model, kind, connection, provider, object, record_id, occurred_at,
                            detected_at, record, changes, raw, changed_fields)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING seq
        """

    static let insertDeliverySQL = """
        INSERT INTO deliveries (event_seq, subscriber, record_key, state, attempts, next_attempt_at, created_at,
                                updated_at)
        VALUES (?, ?, ?, 'pending', 0, ?, ?, ?)
        ON CONFLICT (event_seq, subscriber) DO NOTHING
        """

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
}
