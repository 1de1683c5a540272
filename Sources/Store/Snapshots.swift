// The `snapshots` table: the last diffed state of every record (hash, normalized and raw JSON, tombstone), read
// by the differ and the reconciliation sweep. Written only by the page commit (CommitPage.swift) and by
// `markSeen`; held sweeps and watermark repair read it too (HeldSweeps.swift, Watermarks.swift).
public import Foundation
public import Core

extension StateStore {
    /// Hash, source time and tombstone flag of the given ids (those that exist), keyed by record id: enough for
    /// the differ to skip unchanged re-reads without parsing stored JSON.
    public func snapshotHeads(connection: String, object: String, ids: [String]) throws -> [String: SnapshotHead] {
        guard !ids.isEmpty else { return [:] }
        return try database.read { db in
            var result = [String: SnapshotHead](minimumCapacity: ids.count)
            try db.query("""
                SELECT \(SnapshotHeadRow.columns.sql) FROM snapshots
                WHERE connection = ? AND object = ? AND record_id IN (\(db.dialect.textsOfJSONArray()))
                """, [.text(connection), .text(object), .text(Self.jsonArray(ids))]) { row in
                let head = SnapshotHeadRow(row).head
                result[head.recordID] = head
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
                SELECT \(SnapshotRow.columns.sql)
                FROM snapshots
                WHERE connection = ? AND object = ? AND record_id IN (\(db.dialect.textsOfJSONArray()))
                """, [.text(connection), .text(object), .text(Self.jsonArray(ids))]) { row in
                let snapshot = try SnapshotRow(row, context: "snapshot \(connection)/\(object)").snapshot
                result[snapshot.recordID] = snapshot
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
        let columns = withRaw ? SnapshotBodyRow.withRaw : SnapshotBodyRow.recordOnly
        return try database.read { db in
            var result = [String: SnapshotBody](minimumCapacity: ids.count)
            try db.query("""
                SELECT \(columns.sql) FROM snapshots
                WHERE connection = ? AND object = ? AND record_id IN (\(db.dialect.textsOfJSONArray()))
                """, [.text(connection), .text(object), .text(Self.jsonArray(ids))]) { row in
                let column = columns.reader(row)
                let id = column.text(.recordID)
                let context = "snapshot \(connection)/\(object)/\(id)"
                let record = try Self.parseJSON(column.text(.record), "\(context) record")
                let raw = try withRaw ? Self.parseJSON(column.text(.raw), "\(context) raw") : JSONValue.null
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

    /// Marks ids as seen by the reconciliation sweep that started at `sweep` (docs/DESIGN.md §2 rule 6). Snapshots written
    /// by ``commitPage(_:)`` count as seen at their write time (`updated_at`), so records created or changed during
    /// a sweep are not mistaken for deletions.
    public func markSeen(connection: String, object: String, ids: [String], sweep: Date) throws {
        guard !ids.isEmpty else { return }
        try fencedWrite(connection: connection, object: object) { db in
            try db.execute("""
                UPDATE snapshots SET last_seen_sweep = \(db.dialect.greatest("last_seen_sweep", "?"))
                WHERE connection = ? AND object = ? AND record_id IN (\(db.dialect.textsOfJSONArray()))
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
}

/// The head of a `snapshots` row: enough to tell an unchanged re-read without parsing JSON.
struct SnapshotHeadRow {
    enum Column: String, ColumnList {
        case recordID = "record_id", contentHash = "content_hash", sourceTimestamp = "source_ts", tombstoned
    }
    static let columns = Columns<Column>()

    let head: SnapshotHead

    init(_ row: any Row) {
        let column = Self.columns.reader(row)
        head = SnapshotHead(recordID: column.text(.recordID), contentHash: column.text(.contentHash),
                            sourceTimestamp: column.date(.sourceTimestamp), tombstoned: column.bool(.tombstoned))
    }
}

/// A whole `snapshots` row, its JSON parsed.
struct SnapshotRow {
    enum Column: String, ColumnList {
        case recordID = "record_id", contentHash = "content_hash", record, raw, sourceTimestamp = "source_ts"
        case tombstoned, tombstonedAt = "tombstoned_at", updatedAt = "updated_at"
    }
    static let columns = Columns<Column>()

    let snapshot: Snapshot

    /// `context` names the object (`snapshot connection/object`) in corrupt-data errors.
    init(_ row: any Row, context: String) throws {
        let column = Self.columns.reader(row)
        let id = column.text(.recordID)
        let context = "\(context)/\(id)"
        snapshot = Snapshot(
            recordID: id, contentHash: column.text(.contentHash),
            record: try StateStore.parseJSON(column.text(.record), "\(context) record"),
            raw: try StateStore.parseJSON(column.text(.raw), "\(context) raw"),
            sourceTimestamp: column.date(.sourceTimestamp), tombstoned: column.bool(.tombstoned),
            tombstonedAt: column.date(.tombstonedAt),
            updatedAt: column.date(.updatedAt) ?? Date(timeIntervalSince1970: 0))
    }
}

/// The bodies of a `snapshots` row: the normalized record, and the raw one only when a caller needs it.
enum SnapshotBodyRow {
    enum Column: String, ColumnList {
        case recordID = "record_id", record, raw
    }
    static let withRaw = Columns<Column>()
    static let recordOnly = Columns<Column>([.recordID, .record])
}
