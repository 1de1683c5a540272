// The `cursors` table: per (connection, object, partition) the watermark, the resume state of an unfinished
// scan, the delete-feed position and the last reconciliation. Page cursors are written by the page commit.
public import Foundation

extension StateStore {
    /// The cursor of (connection, object, partition), nil before the first commit.
    public func cursor(connection: String, object: String, partition: String = "") throws -> CursorState? {
        try database.read { db in
            try db.queryOne("""
                SELECT \(CursorRow.columns.sql)
                FROM cursors WHERE connection = ? AND object = ? AND partition = ?
                """, [.text(connection), .text(object), .text(partition)]) { CursorRow($0).cursor }
        }
    }

    /// All partitions' cursors of one object (few rows: partitions are bounded by configuration).
    public func cursors(connection: String, object: String) throws -> [CursorState] {
        try database.read { db in
            try db.queryAll("""
                SELECT \(CursorRow.columns.sql)
                FROM cursors WHERE connection = ? AND object = ? ORDER BY partition LIMIT 10000
                """, [.text(connection), .text(object)]) { CursorRow($0).cursor }
        }
    }

    /// Writes a cursor on its own (e.g. `last_reconcile_at` after a sweep, a delete-feed position). Page cursors
    /// go through ``commitPage(_:)`` with their page.
    public func setCursor(_ cursor: CursorState, now: Date) throws {
        try fencedWrite(connection: cursor.connection, object: cursor.object) { db in
            try Self.writeCursor(cursor, now: Millis.from(now), db)
        }
    }

    static func writeCursor(_ cursor: CursorState, now: Int64, _ db: any SQLConnection) throws {
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

}

/// A row of `cursors`.
struct CursorRow {
    enum Column: String, ColumnList {
        case connection, object, partition, watermark, resumeState = "resume_state", deleteFeedCursor = "delete_cursor"
        case lastReconcileAt = "last_reconcile_at", updatedAt = "updated_at"
    }
    static let columns = Columns<Column>()

    let cursor: CursorState

    init(_ row: any Row) {
        let column = Self.columns.reader(row)
        cursor = CursorState(connection: column.text(.connection), object: column.text(.object),
                             partition: column.text(.partition), watermark: column.date(.watermark),
                             resumeState: column.string(.resumeState),
                             deleteFeedCursor: column.string(.deleteFeedCursor),
                             lastReconcileAt: column.date(.lastReconcileAt), updatedAt: column.date(.updatedAt))
    }
}
