// Row types decode by column name (issue 13, item 2): every name a row type lists must be a column of its table
// in the schema this binary writes, and a joined SELECT starts the second list where the first ends.
import Foundation
import Testing
@testable import Store

@Suite struct RowColumnsTests {
    /// Every row type's column list, with the table an unaliased name belongs to.
    static let lists: [(name: String, sql: String, table: String)] = [
        ("EventRow", EventRow.columns.sql, "events"),
        ("EventSummaryRow", EventSummaryRow.columns.sql, "events"),
        ("DeliveryRow", DeliveryRow.columns.sql, "deliveries"),
        ("AttemptRow", AttemptRow.columns.sql, "attempts"),
        ("SnapshotHeadRow", SnapshotHeadRow.columns.sql, "snapshots"),
        ("SnapshotRow", SnapshotRow.columns.sql, "snapshots"),
        ("SnapshotBodyRow", SnapshotBodyRow.withRaw.sql, "snapshots"),
        ("CursorRow", CursorRow.columns.sql, "cursors"),
        ("PollStatusRow", PollStatusRow.columns.sql, "poll_status"),
        ("SubscriberRow", SubscriberRow.columns.sql, "subscribers"),
        ("HeldSweepRow", HeldSweepRow.columns.sql, "held_sweeps"),
        ("QuarantineRow", QuarantineRow.columns.sql, "quarantine"),
    ]

    @Test func everyListedColumnExistsInItsTable() throws {
        let dir = try TempDir()
        let store = try StateStore(path: dir.dbPath)
        let aliases = ["d": "deliveries", "e": "events"]
        for list in Self.lists {
            for expression in list.sql.split(separator: ", ").map(String.init) {
                let parts = expression.split(separator: ".").map(String.init)
                let table = parts.count == 2 ? aliases[parts[0]] ?? "?" : list.table
                let column = parts.last ?? ""
                let columns = try store.database.read { db in
                    try db.queryAll("SELECT name FROM pragma_table_info(?)", [.text(table)]) { $0.text(0) }
                }
                #expect(columns.contains(column), "\(list.name): \(expression) is not a column of \(table)")
            }
        }
    }

    @Test func positionsFollowTheListAndAJoinStartsAfterIt() {
        #expect(DeliveryRow.columns.count == Int32(DeliveryRow.Column.allCases.count))
        #expect(DeliveryRow.columns.position(.id, after: 0) == 0)
        #expect(DeliveryRow.columns.position(.leaseToken, after: 0) == DeliveryRow.columns.count - 1)
        #expect(EventRow.columns.position(.seq, after: DeliveryRow.columns.count) == DeliveryRow.columns.count)
        #expect(SnapshotBodyRow.recordOnly.sql == "record_id, record")
        #expect(SnapshotBodyRow.recordOnly.position(.record, after: 0) == 1)
    }
}
