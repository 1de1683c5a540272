// The `cursors` table: per (connection, object, partition) the watermark, the resume state of an unfinished
// scan, the delete-feed position and the last reconciliation. Page cursors are written by the page commit.
public import Foundation

extension StateStore {
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

    static func writeCursor(_ cursor: CursorState, now: Int64, _ db: SQLConnection) throws {
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

    static func cursorRow(_ row: Row) -> CursorState {
        CursorState(connection: row.text(0), object: row.text(1), partition: row.text(2), watermark: row.date(3),
                    resumeState: row.string(4), deleteFeedCursor: row.string(5), lastReconcileAt: row.date(6),
                    updatedAt: row.date(7))
    }
}
