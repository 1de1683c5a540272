// Held sweeps (docs/DESIGN.md §2 rule 17): a reconciliation sweep the mass-delete guard refused to apply. The row
// keeps what the sweep would have tombstoned until an operator applies it (`reconcile --apply-held`) or a later
// sweep that is not held replaces the verdict. One row per object: a newer held sweep replaces the older one.
public import Foundation

/// A sweep held by the mass-delete guard.
public struct HeldSweep: Sendable, Hashable {
    public var connection: String
    public var object: String
    /// When the held sweep started: records seen or written since then are not deleted when it is applied.
    public var sweepStarted: Date
    public var heldAt: Date
    public var wouldDelete: Int
    /// Live records of the object when the sweep was held.
    public var live: Int
    /// Ids the sweep's listing returned.
    public var listed: Int
    /// The operator asked for it to be applied; the poller applies it at the object's next cycle.
    public var applyRequested: Bool

    public init(connection: String, object: String, sweepStarted: Date, heldAt: Date, wouldDelete: Int, live: Int,
                listed: Int, applyRequested: Bool = false) {
        self.connection = connection
        self.object = object
        self.sweepStarted = sweepStarted
        self.heldAt = heldAt
        self.wouldDelete = wouldDelete
        self.live = live
        self.listed = listed
        self.applyRequested = applyRequested
    }
}

extension StateStore {
    /// Live records of an object and those of them the sweep that started at `sweep` has not seen (neither listed
    /// nor written since it started): what the guard weighs before a sweep tombstones anything. One read.
    public func sweepCounts(connection: String, object: String, sweep: Date) throws -> (live: Int, unseen: Int) {
        try database.read { db in
            try db.queryOne("""
                SELECT COUNT(*), COALESCE(SUM(CASE WHEN last_seen_sweep < ?3 AND updated_at < ?3 THEN 1 ELSE 0 END), 0) FROM snapshots
                WHERE connection = ?1 AND object = ?2 AND tombstoned = 0
                """, [.text(connection), .text(object), .date(sweep)]) { ($0.int(0), $0.int(1)) } ?? (0, 0)
        }
    }

    /// Holds the sweep described by `held` (its `wouldDelete` is recounted): stores the ids it would tombstone —
    /// the live ids it did not see — in the same transaction that counts them, replacing any older held sweep of
    /// the object and any pending apply request (that was for the older verdict).
    public func holdSweep(_ held: HeldSweep) throws {
        try fencedWrite(connection: held.connection, object: held.object) { db in
            try db.execute("""
                INSERT INTO held_sweeps (connection, object, sweep_started, held_at, would_delete, live, listed,
                                         record_ids, apply_requested)
                SELECT ?1, ?2, CAST(?3 AS BIGINT), CAST(?4 AS BIGINT), COUNT(*), CAST(?5 AS BIGINT),
                       CAST(?6 AS BIGINT), \(db.dialect.jsonArrayOfTexts("record_id")), 0 FROM (
                    SELECT record_id FROM snapshots
                    WHERE connection = ?1 AND object = ?2 AND tombstoned = 0 AND last_seen_sweep < ?3
                      AND updated_at < ?3
                    ORDER BY record_id) AS unseen
                WHERE true
                ON CONFLICT (connection, object) DO UPDATE SET
                    sweep_started = excluded.sweep_started, held_at = excluded.held_at,
                    would_delete = excluded.would_delete, live = excluded.live, listed = excluded.listed,
                    record_ids = excluded.record_ids, apply_requested = 0
                """, [
                    .text(held.connection), .text(held.object), .date(held.sweepStarted), .date(held.heldAt),
                    .integer(Int64(held.live)), .integer(Int64(held.listed)),
                ])
        }
    }

    /// The held sweep of an object, nil when none.
    public func heldSweep(connection: String, object: String) throws -> HeldSweep? {
        try database.read { db in
            try db.queryOne("SELECT \(HeldSweepRow.columns.sql) FROM held_sweeps WHERE connection = ? AND object = ?",
                            [.text(connection), .text(object)]) { HeldSweepRow($0).held }
        }
    }

    /// Every held sweep, by connection and object (few rows: at most one per configured object).
    public func heldSweeps() throws -> [HeldSweep] {
        try database.read { db in
            try db.queryAll(
                "SELECT \(HeldSweepRow.columns.sql) FROM held_sweeps ORDER BY connection, object LIMIT 100000"
            ) { HeldSweepRow($0).held }
        }
    }

    /// The ids the held sweep of an object would tombstone, in id order (empty when none is held).
    public func heldSweepIDs(connection: String, object: String) throws -> [String] {
        try database.read { db in
            try db.queryAll("""
                SELECT j.value FROM held_sweeps h, \(db.dialect.jsonArrayTable("h.record_ids", alias: "j"))
                WHERE h.connection = ? AND h.object = ? ORDER BY j.value
                """, [.text(connection), .text(object)]) { $0.text(0) }
        }
    }

    /// Of `ids`, those still live and neither listed by a sweep nor written by a page since `sweep` started: a
    /// record that came back after a held sweep must not be deleted when the operator applies it.
    public func stillUnseenLiveIDs(connection: String, object: String, since sweep: Date, among ids: [String]) throws
        -> [String]
    {
        guard !ids.isEmpty else { return [] }
        return try database.read { db in
            try db.queryAll("""
                SELECT record_id FROM snapshots
                WHERE connection = ? AND object = ? AND record_id IN (\(db.dialect.textsOfJSONArray()))
                  AND tombstoned = 0 AND last_seen_sweep < ? AND updated_at < ?
                ORDER BY record_id
                """, [.text(connection), .text(object), .text(Self.jsonArray(ids)), .date(sweep), .date(sweep)]) {
                $0.text(0)
            }
        }
    }

    /// `reconcile --apply-held` beside a running daemon: marks the held sweep for the daemon to apply at the
    /// object's next cycle. Returns false when the object has no held sweep.
    public func requestHeldSweepApply(connection: String, object: String) throws -> Bool {
        try database.write { db in
            try db.execute("UPDATE held_sweeps SET apply_requested = 1 WHERE connection = ? AND object = ?",
                           [.text(connection), .text(object)]) == 1
        }
    }

    /// Removes the held sweep of an object (applied, or superseded by a sweep that was not held).
    @discardableResult
    public func clearHeldSweep(connection: String, object: String) throws -> Bool {
        try database.write { db in
            try db.execute("DELETE FROM held_sweeps WHERE connection = ? AND object = ?",
                           [.text(connection), .text(object)]) == 1
        }
    }
}

/// A row of `held_sweeps`, without its id list (read on its own by ``StateStore/heldSweepIDs(connection:object:)``).
struct HeldSweepRow {
    enum Column: String, ColumnList {
        case connection, object, sweepStarted = "sweep_started", heldAt = "held_at", wouldDelete = "would_delete"
        case live, listed, applyRequested = "apply_requested"
    }
    static let columns = Columns<Column>()

    let held: HeldSweep

    init(_ row: any Row) {
        let column = Self.columns.reader(row)
        held = HeldSweep(connection: column.text(.connection), object: column.text(.object),
                         sweepStarted: column.date(.sweepStarted) ?? Date(timeIntervalSince1970: 0),
                         heldAt: column.date(.heldAt) ?? Date(timeIntervalSince1970: 0),
                         wouldDelete: column.int(.wouldDelete), live: column.int(.live), listed: column.int(.listed),
                         applyRequested: column.bool(.applyRequested))
    }
}
