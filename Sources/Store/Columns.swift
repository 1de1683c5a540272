// Rows decoded by name. Each table's row type (`EventRow`, `DeliveryRow`, `CursorRow`, … next to the table's
// methods) lists its columns once, as an enum whose raw values are the SQL expressions and whose declaration
// order is the SELECT order; it builds its SELECT list from that enum and reads each column by case, never by a
// number. A joined SELECT puts one list after another and starts the second reader at the first list's `count`.

import Foundation

/// The columns of one row type: the raw value is the SQL expression (`e.seq`, `record_id`), the declaration order
/// the position in the result row.
protocol ColumnList: RawRepresentable<String>, CaseIterable, Hashable, Sendable where AllCases == [Self] {}

/// A column list's SQL text and each column's position, derived once from the list.
struct Columns<Column: ColumnList>: Sendable {
    /// `a, b, c`: the list for a SELECT.
    let sql: String
    /// How many columns: where the next list starts in a joined SELECT.
    let count: Int32
    private let positions: [Column: Int32]

    /// All of `Column`'s cases, or some of them, in this order, for a query that needs fewer (read only those).
    init(_ list: [Column] = Column.allCases) {
        sql = list.map(\.rawValue).joined(separator: ", ")
        count = Int32(list.count)
        positions = Dictionary(uniqueKeysWithValues: zip(list, Int32(0)...))
    }

    /// Position of `column` in the result row when the list starts at `offset`.
    func position(_ column: Column, after offset: Int32) -> Int32 {
        guard let position = positions[column] else {
            preconditionFailure("column \(column.rawValue) is not in the SELECT list")
        }
        return offset + position
    }

    /// Reads `row` by column name, the list starting at `offset`.
    func reader(_ row: any Row, at offset: Int32 = 0) -> ColumnReader<Column> {
        ColumnReader(row: row, offset: offset, columns: self)
    }
}

/// One result row read through a ``Columns`` list: `reader.text(.recordID)` instead of `row.text(7)`.
struct ColumnReader<Column: ColumnList> {
    let row: any Row
    let offset: Int32
    let columns: Columns<Column>

    private func at(_ column: Column) -> Int32 { columns.position(column, after: offset) }

    func isNull(_ column: Column) -> Bool { row.isNull(at(column)) }
    func int64(_ column: Column) -> Int64 { row.int64(at(column)) }
    func optionalInt64(_ column: Column) -> Int64? { row.optionalInt64(at(column)) }
    func int(_ column: Column) -> Int { row.int(at(column)) }
    func bool(_ column: Column) -> Bool { row.bool(at(column)) }
    func string(_ column: Column) -> String? { row.string(at(column)) }
    func text(_ column: Column) -> String { row.text(at(column)) }
    func date(_ column: Column) -> Date? { row.date(at(column)) }
}
