// What the store's SQL runs on, as three protocols, so ONE implementation of every table's logic (the other files
// of this module) serves both backends: SQLite (`Database`, Database.swift) and PostgreSQL (the `PostgresStore`
// module, which depends on this one — the store knows no PostgreSQL library).
//
// The SQL the tables write is the common subset of both engines: `?` / `?N` placeholders (the PostgreSQL driver
// numbers them), `INSERT … ON CONFLICT … DO NOTHING | DO UPDATE`, `RETURNING`, INTEGER milliseconds for every
// time, 0/1 for booleans, and `CAST(? AS BIGINT)` wherever a parameter's type cannot be inferred from a column
// (PostgreSQL infers untyped parameters from context). The few places the engines differ ask the `SQLDialect`.
public import Foundation

/// The current row of a query, read by column position. Only valid inside the query's callback.
public protocol Row {
    func isNull(_ column: Int32) -> Bool
    func int64(_ column: Int32) -> Int64
    func double(_ column: Int32) -> Double
    /// The column as text, nil for SQL NULL.
    func string(_ column: Int32) -> String?
    func data(_ column: Int32) -> Data?
}

extension Row {
    public func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }
    public func int(_ column: Int32) -> Int { Int(truncatingIfNeeded: int64(column)) }
    public func bool(_ column: Int32) -> Bool { int64(column) != 0 }
    /// The column as text, `""` for NULL.
    public func text(_ column: Int32) -> String { string(column) ?? "" }
    /// An INTEGER Unix-milliseconds column as a Date, nil for NULL.
    public func date(_ column: Int32) -> Date? { optionalInt64(column).map(Millis.date) }
}

/// One connection, inside a transaction the ``SQLDatabase`` opened. Not `Sendable`: valid only in the closure
/// it is handed to.
public protocol SQLConnection: AnyObject {
    /// Which engine's SQL this connection speaks (the few places they differ).
    var dialect: SQLDialect { get }
    /// Runs one statement to completion and returns the number of rows it changed.
    @discardableResult
    func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int
    /// Runs a script of several statements without arguments (migrations, maintenance).
    func executeScript(_ sql: String) throws
    /// Runs a query and calls `body` for each row.
    func query(_ sql: String, _ arguments: [SQLValue], _ body: (any Row) throws -> Void) throws
}

extension SQLConnection {
    @discardableResult
    public func execute(_ sql: String) throws -> Int { try execute(sql, []) }

    /// Runs a query and maps its first row, if any (the SQL says LIMIT 1 or aggregates).
    public func queryOne<T>(_ sql: String, _ arguments: [SQLValue] = [], _ map: (any Row) throws -> T) throws -> T? {
        var result: T?
        try query(sql, arguments) { row in
            if result == nil { result = try map(row) }
        }
        return result
    }

    /// Runs a query and maps every row into an array. Use only with a LIMIT: the store never loads whole tables.
    public func queryAll<T>(_ sql: String, _ arguments: [SQLValue] = [], _ map: (any Row) throws -> T) throws -> [T] {
        var result: [T] = []
        try query(sql, arguments) { result.append(try map($0)) }
        return result
    }
}

/// Where the two engines' SQL differs. Each case is one engine; the SQL fragments are written here once.
public enum SQLDialect: Sendable {
    case sqlite, postgres

    /// A subquery yielding the strings of a JSON array parameter: `x IN (<this>)`. One parameter for a list of any
    /// length, so statements stay cacheable (SQLite `json_each`, PostgreSQL `json_array_elements_text`).
    public func textsOfJSONArray(_ placeholder: String = "?") -> String {
        switch self {
        case .sqlite: "SELECT value FROM json_each(\(placeholder))"
        case .postgres: "SELECT value FROM json_array_elements_text(CAST(\(placeholder) AS json))"
        }
    }

    /// The same for a JSON array of integers.
    public func integersOfJSONArray(_ placeholder: String = "?") -> String {
        switch self {
        case .sqlite: "SELECT value FROM json_each(\(placeholder))"
        case .postgres: "SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(\(placeholder) AS json))"
        }
    }

    /// A JSON array column as a table with one `value` column, for a FROM list: `FROM t, <this>`.
    public func jsonArrayTable(_ expression: String, alias: String) -> String {
        switch self {
        case .sqlite: "json_each(\(expression)) \(alias)"
        case .postgres: "json_array_elements_text(CAST(\(expression) AS json)) AS \(alias)(value)"
        }
    }

    /// The database server's clock in Unix milliseconds. Leases and heartbeats are timed by it, never by a
    /// node's clock, so nodes whose clocks drift apart still agree on who holds what.
    public var nowMillis: String {
        switch self {
        case .sqlite: "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
        case .postgres: "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
        }
    }

    /// An aggregate: the values of `column` over the group as JSON array text, in `column` order (`[]` when none).
    public func jsonArrayOfTexts(_ column: String) -> String {
        switch self {
        case .sqlite: "json_group_array(\(column))"
        case .postgres: "COALESCE(CAST(json_agg(\(column) ORDER BY \(column)) AS TEXT), '[]')"
        }
    }

    /// The larger of two values (SQLite's two-argument `MAX`, PostgreSQL's `GREATEST`).
    public func greatest(_ a: String, _ b: String) -> String {
        switch self {
        case .sqlite: "MAX(\(a), \(b))"
        case .postgres: "GREATEST(\(a), \(b))"
        }
    }

    /// ` INDEXED BY name` where SQLite's planner needs the hint; PostgreSQL's planner takes no hints.
    public func indexedBy(_ index: String) -> String {
        switch self {
        case .sqlite: " INDEXED BY \(index)"
        case .postgres: ""
        }
    }

    /// Appended to a SELECT that claims rows of the table aliased `alias`: with several daemons on one PostgreSQL,
    /// a row another node is claiming is skipped instead of waited for. SQLite has one writer at a time and
    /// needs nothing.
    public func skippingLockedRows(of alias: String) -> String {
        switch self {
        case .sqlite: ""
        case .postgres: "FOR UPDATE OF \(alias) SKIP LOCKED"
        }
    }
}

/// Size figures of a backend, for `prune` and `status`.
public struct StorageFigures: Sendable {
    public var location: String
    public var fileBytes: Int64
    public var walBytes: Int64
    public var freeBytes: Int64
    public var autoVacuum: String
    public init(location: String, fileBytes: Int64, walBytes: Int64, freeBytes: Int64, autoVacuum: String) {
        self.location = location
        self.fileBytes = fileBytes
        self.walBytes = walBytes
        self.freeBytes = freeBytes
        self.autoVacuum = autoVacuum
    }
}

/// One database the store runs on: transactions, and the maintenance each engine does its own way.
///
/// `write` makes its body atomic. SQLite runs one writer at a time; the PostgreSQL backend runs writes READ
/// COMMITTED beside other nodes' writes, so the table code writes every statement that races another node as
/// one conditional statement (an upsert, a compare-and-set on a token, a claim that skips locked rows), and a body
/// may be re-run after a deadlock: it must not have effects outside the database.
public protocol SQLDatabase: Sendable {
    var dialect: SQLDialect { get }
    /// The file path or the redacted URL, for messages.
    var location: String { get }
    @discardableResult
    func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T
    @discardableResult
    func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T
    /// Makes committed data durable in its final place (SQLite: WAL checkpoint; PostgreSQL: nothing to do).
    func checkpoint() throws
    /// Returns freed space after a prune (SQLite: incremental vacuum; PostgreSQL: its autovacuum does it).
    func reclaimSpace() throws
    /// A full rewrite without free space (`prune --vacuum`).
    func vacuum() throws
    func storageFigures() throws -> StorageFigures
}
