// Database: a small typed wrapper over one SQLite connection (libsqlite3 through CSQLite).
//
// The choices follow the habits of GRDB, a mature Swift SQLite library:
// - the connection is opened with SQLITE_OPEN_NOMUTEX and every use is serialized by one lock, so SQLite's
//   own per-call mutex is redundant;
// - extended result codes, WAL + synchronous=NORMAL, a busy timeout, foreign keys on;
// - statements are cached by SQL text (SQLITE_PREPARE_PERSISTENT) and evicted when they fail, because a
//   failed statement cannot always be reset to a clean state;
// - write transactions start with BEGIN IMMEDIATE (a DEFERRED transaction that upgrades to a writer after
//   reading gets an SQLITE_BUSY that the busy timeout cannot cure), and rollback happens only if
//   sqlite3_get_autocommit says a transaction is still open (SQLite rolls back by itself on some errors);
// - errors carry the SQL text and SQLite's message but never bound values.
public import Foundation
import CSQLite

/// A value bound to, or read from, an SQL statement.
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case double(Double)
    case text(String)
    case blob(Data)

    /// `.text` or `.null`.
    public static func text(_ value: String?) -> SQLValue { value.map { .text($0) } ?? .null }
    /// `.integer` or `.null`.
    public static func integer(_ value: Int64?) -> SQLValue { value.map { .integer($0) } ?? .null }
    /// `.integer(0|1)`.
    public static func bool(_ value: Bool) -> SQLValue { .integer(value ? 1 : 0) }
    /// A time as INTEGER Unix milliseconds (the store's only time representation), or `.null`.
    public static func date(_ value: Date?) -> SQLValue { value.map { .integer(Millis.from($0)) } ?? .null }
}

extension SQLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(nilLiteral: ()) { self = .null }
}

/// Times are stored as INTEGER Unix milliseconds.
enum Millis {
    /// Clamping, never trapping (docs/DESIGN.md §2 rule 12): adapters bound source times to 1970–9999, but a
    /// Date that escaped them (NaN, ±∞, far beyond Int64 milliseconds) must not crash the daemon.
    static func from(_ date: Date) -> Int64 {
        let millis = (date.timeIntervalSince1970 * 1000).rounded()
        guard !millis.isNaN else { return 0 }
        return Int64(exactly: millis) ?? (millis < 0 ? Int64.min : Int64.max)
    }
    static func date(_ millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }
}

/// One SQLite database connection, safe to share between threads and tasks.
///
/// `Database` is `@unchecked Sendable` because the raw `sqlite3*` handle (opened with SQLITE_OPEN_NOMUTEX)
/// and the statement cache are only ever touched while `lock` is held: ``write(_:)`` and ``read(_:)`` take
/// the lock for the whole closure, and the ``SQLConnection`` handed to the closure is not `Sendable`, so it
/// cannot escape to another thread. Calls block the calling thread (SQLite is a blocking C library); async
/// callers should hop off the cooperative pool (see ``StateStore/perform(_:)``).
///
/// - Warning: Not reentrant: do not call `write`/`read` on the same `Database` from inside a closure.
public final class Database: @unchecked Sendable {
    /// How the file is opened.
    public enum Mode: Sendable, Equatable {
        /// The daemon: creates the file, WAL mode, applies migrations.
        case readWrite
        /// The CLI beside a running daemon: a WAL reader that never takes a write lock.
        case readOnly
    }

    public let path: String
    public let mode: Mode
    private let lock = NSLock()
    private let connection: SQLiteConnection

    /// Opens (or, in `.readWrite`, creates) the database at `path`.
    ///
    /// Related SQLite documentation: <https://www.sqlite.org/c3ref/open.html>, <https://www.sqlite.org/wal.html>
    public init(path: String, mode: Mode = .readWrite, busyTimeout: Duration = .seconds(5)) throws {
        self.path = path
        self.mode = mode
        var flags = SQLITE_OPEN_NOMUTEX
        flags |= mode == .readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            let extended = handle.map { sqlite3_extended_errcode($0) } ?? rc
            sqlite3_close(handle)
            throw StoreError(
                code: .sqlite(primary: rc & 0xFF, extended: extended), message: "cannot open database: \(message)",
                path: path,
                hint: mode == .readOnly
                    ? "check that the daemon's state_directory is the one given and that it has run once"
                    : "check that the state directory exists and is writable by the daemon's user")
        }
        sqlite3_extended_result_codes(handle, 1)
        let millis = busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000
        sqlite3_busy_timeout(handle, Int32(clamping: millis))
        connection = SQLiteConnection(handle: handle, path: path)
        do {
            switch mode {
            case .readWrite:
                // https://www.sqlite.org/pragma.html#pragma_synchronous: "Many applications choose NORMAL when in
                // WAL mode" — a power loss may lose the last commits, never corrupt the file.
                // Before WAL: on a new file auto_vacuum can only be chosen before its first page is written, and
                // switching to WAL writes it. On an existing file this only tells a later VACUUM which mode to
                // adopt (Schema.enableIncrementalVacuum). Freed pages are returned with `PRAGMA incremental_vacuum`
                // after retention prunes (docs/DESIGN.md §6 `retention`).
                try connection.executeScript("PRAGMA auto_vacuum = INCREMENTAL")
                let journal = try connection.queryOne("PRAGMA journal_mode = WAL") { $0.string(0) } ?? nil
                guard journal?.lowercased() == "wal" else {
                    throw StoreError(code: .sqlite(primary: 1, extended: 1),
                                     message: "could not switch the database to WAL mode (got \(journal ?? "nothing"))",
                                     path: path, hint: "the state directory must be on a local file system")
                }
                try connection.executeScript("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            case .readOnly:
                try connection.executeScript("PRAGMA query_only = ON; PRAGMA foreign_keys = ON;")
            }
        } catch {
            connection.close()
            throw error
        }
    }

    deinit { connection.close() }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`. If `body` throws (or COMMIT fails) the transaction is
    /// rolled back — when SQLite has not already done so — and the error is rethrown: nothing is left behind.
    ///
    /// Related SQLite documentation: <https://www.sqlite.org/lang_transaction.html>
    @discardableResult
    public func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        guard mode == .readWrite else {
            throw StoreError(code: .readOnly, message: "this connection is read-only", path: path)
        }
        return try transaction("BEGIN IMMEDIATE", body)
    }

    /// Runs `body` inside a deferred (read) transaction, so several queries see one consistent snapshot.
    /// In WAL mode a reader never blocks the writer and is never blocked by it.
    @discardableResult
    public func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try transaction("BEGIN DEFERRED", body)
    }

    /// `begin`, `body`, COMMIT; on any error a rollback (when SQLite has not already rolled back). Lock held.
    private func transaction<T>(_ begin: String, _ body: (any SQLConnection) throws -> T) throws -> T {
        try connection.execute(begin)
        do {
            let result = try body(connection)
            try connection.execute("COMMIT")
            return result
        } catch {
            connection.rollbackIfNeeded()
            throw error
        }
    }

    /// Runs `body` outside any transaction (for PRAGMAs such as `wal_checkpoint` that cannot run inside one).
    public func withConnection<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(connection)
    }
}

/// The connection handed to ``Database/write(_:)`` and ``Database/read(_:)`` closures.
/// Not `Sendable`: it is only valid inside the closure, on the thread that holds the database lock.
public final class SQLiteConnection: SQLConnection {
    private var handle: OpaquePointer?
    private let path: String
    /// Prepared statements keyed by SQL text.
    private var cache: [String: OpaquePointer] = [:]

    fileprivate init(handle: OpaquePointer, path: String) {
        self.handle = handle
        self.path = path
    }

    fileprivate func close() {
        for statement in cache.values { sqlite3_finalize(statement) }
        cache.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    public var dialect: SQLDialect { .sqlite }

    /// Whether a transaction is open (`sqlite3_get_autocommit` is 0).
    public var isInsideTransaction: Bool { handle.map { sqlite3_get_autocommit($0) == 0 } ?? false }

    /// Rows changed by the last INSERT/UPDATE/DELETE.
    public var changes: Int { handle.map { Int(sqlite3_changes($0)) } ?? 0 }

    /// Rowid of the last successful INSERT.
    public var lastInsertRowID: Int64 { handle.map { sqlite3_last_insert_rowid($0) } ?? 0 }

    fileprivate func rollbackIfNeeded() {
        guard isInsideTransaction, let handle else { return }
        sqlite3_exec(handle, "ROLLBACK", nil, nil, nil)
    }

    /// Runs one statement to completion and returns the number of rows it changed.
    @discardableResult
    public func execute(_ sql: String, _ arguments: [SQLValue] = []) throws -> Int {
        try withStatement(sql, arguments) { statement in
            while try step(statement, sql) {}
        }
        return changes
    }

    /// Runs a script of several statements without caching (migrations, PRAGMAs). Takes no arguments.
    public func executeScript(_ sql: String) throws {
        guard let handle else { throw closedError(sql) }
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(errorMessage)
            throw StoreError(code: .sqlite(primary: rc & 0xFF, extended: sqlite3_extended_errcode(handle)),
                             message: message, sql: sql, path: path)
        }
    }

    /// Runs a query and calls `body` for each row. The ``Row`` is only valid during the call.
    public func query(_ sql: String, _ arguments: [SQLValue] = [], _ body: (any Row) throws -> Void) throws {
        try withStatement(sql, arguments) { statement in
            while try step(statement, sql) {
                try body(SQLiteRow(statement: statement))
            }
        }
    }

    // MARK: - Statements

    private func withStatement(_ sql: String, _ arguments: [SQLValue], _ body: (OpaquePointer) throws -> Void) throws {
        guard let handle else { throw closedError(sql) }
        var statement: OpaquePointer
        var cached = true
        if let existing = cache[sql], sqlite3_stmt_busy(existing) == 0 {
            statement = existing
        } else {
            // Not cached yet, or the cached one is in use by an enclosing query: prepare one.
            cached = cache[sql] == nil
            var prepared: OpaquePointer?
            let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &prepared, nil)
            guard rc == SQLITE_OK, let prepared else {
                sqlite3_finalize(prepared)
                throw error(rc, sql)
            }
            statement = prepared
            if cached { cache[sql] = prepared }
        }
        defer {
            if cached {
                sqlite3_reset(statement)
                sqlite3_clear_bindings(statement)
            } else {
                sqlite3_finalize(statement)
            }
        }
        do {
            try bind(arguments, to: statement, sql)
            try body(statement)
        } catch let failure as StoreError {
            if cached, case .sqlite = failure.code {
                // "Failed statements can not be reused, because sqlite3_reset won't be able to restore the
                // statement to its initial state" (GRDB). Finalize after the deferred reset.
                cache[sql] = nil
                cached = false
            }
            throw failure
        }
    }

    private func bind(_ arguments: [SQLValue], to statement: OpaquePointer, _ sql: String) throws {
        let expected = Int(sqlite3_bind_parameter_count(statement))
        guard expected == arguments.count else {
            throw StoreError(code: .sqlite(primary: SQLITE_RANGE, extended: SQLITE_RANGE),
                             message: "statement expects \(expected) arguments, got \(arguments.count)",
                             sql: sql, path: path)
        }
        for (offset, value) in arguments.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(statement, index)
            case .integer(let int): rc = sqlite3_bind_int64(statement, index, int)
            case .double(let double): rc = sqlite3_bind_double(statement, index, double)
            case .text(let text):
                var text = text
                rc = text.withUTF8 { buffer in
                    buffer.withMemoryRebound(to: CChar.self) { chars in
                        // An empty buffer may have no base address, and a nil pointer would bind NULL.
                        guard let base = chars.baseAddress, !chars.isEmpty else {
                            return sqlite3_bind_text(statement, index, "", 0, deltahook_sqlite_transient())
                        }
                        return sqlite3_bind_text(statement, index, base, Int32(chars.count), deltahook_sqlite_transient())
                    }
                }
            case .blob(let data):
                if data.isEmpty {
                    rc = sqlite3_bind_zeroblob(statement, index, 0)
                } else {
                    rc = data.withUnsafeBytes {
                        sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), deltahook_sqlite_transient())
                    }
                }
            }
            if rc != SQLITE_OK { throw error(rc, sql) }
        }
    }

    /// Steps once: true when a row is available, false when done.
    private func step(_ statement: OpaquePointer, _ sql: String) throws -> Bool {
        switch sqlite3_step(statement) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let rc: throw error(rc, sql)
        }
    }

    private func error(_ rc: Int32, _ sql: String) -> StoreError {
        guard let handle else { return closedError(sql) }
        // sqlite3_errmsg names constraints and columns, never bound values.
        let extended = sqlite3_extended_errcode(handle)
        return StoreError(code: .sqlite(primary: rc & 0xFF, extended: extended == 0 ? rc : extended),
                          message: String(cString: sqlite3_errmsg(handle)), sql: sql, path: path)
    }

    private func closedError(_ sql: String) -> StoreError {
        StoreError(code: .sqlite(primary: SQLITE_MISUSE, extended: SQLITE_MISUSE), message: "database is closed",
                   sql: sql, path: path)
    }
}

@available(*, unavailable)
extension SQLiteConnection: Sendable {}

/// The current row of a query. Only valid inside the ``SQLConnection/query(_:_:_:)`` callback.
public struct SQLiteRow: Row {
    fileprivate let statement: OpaquePointer

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement, column) == SQLITE_NULL }
    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }
    public func double(_ column: Int32) -> Double { sqlite3_column_double(statement, column) }

    /// The column as text, or nil for SQL NULL (never crashes on NULL, unlike `String(cString:)`).
    public func string(_ column: Int32) -> String? {
        guard let bytes = sqlite3_column_text(statement, column) else { return nil }
        let count = Int(sqlite3_column_bytes(statement, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    public func data(_ column: Int32) -> Data? {
        if isNull(column) { return nil }
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let bytes = sqlite3_column_blob(statement, column) else { return Data() }
        return Data(bytes: bytes, count: count)
    }

}

@available(*, unavailable)
extension SQLiteRow: Sendable {}

// MARK: - The SQLite backend of the store

extension Database: SQLDatabase {
    public var dialect: SQLDialect { .sqlite }
    public var location: String { path }

    /// Checkpoints the WAL into the database file and truncates it (on shutdown or after pruning).
    /// Related SQLite documentation: <https://www.sqlite.org/pragma.html#pragma_wal_checkpoint>
    public func checkpoint() throws {
        try withConnection { try $0.executeScript("PRAGMA wal_checkpoint(TRUNCATE)") }
    }

    /// Returns free pages to the file system (`PRAGMA incremental_vacuum`, a no-op unless the file is
    /// `auto_vacuum = INCREMENTAL`) and checkpoints the WAL, truncating it: in WAL mode the main file shrinks
    /// only when the checkpoint copies the vacuumed pages back.
    /// Related SQLite documentation: <https://www.sqlite.org/pragma.html#pragma_incremental_vacuum>
    public func reclaimSpace() throws {
        try withConnection { try $0.executeScript("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);") }
    }

    /// A full VACUUM: rewrites the file without free pages and switches a file created before schema v3 to
    /// `auto_vacuum = INCREMENTAL`, so later prunes shrink it. Needs as much free disk as the file's size and
    /// holds the write lock while it runs (the daemon's commits wait, up to the busy timeout).
    public func vacuum() throws {
        try withConnection { try $0.executeScript("PRAGMA auto_vacuum = INCREMENTAL; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);") }
    }

    /// The file's size, its WAL's size and its free pages: three PRAGMAs and two stat calls.
    public func storageFigures() throws -> StorageFigures {
        func size(_ file: String) -> Int64 {
            ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? NSNumber)?.int64Value ?? 0
        }
        return try read { db in
            let pageSize = try db.queryOne("PRAGMA page_size") { $0.int64(0) } ?? 4096
            let free = try db.queryOne("PRAGMA freelist_count") { $0.int64(0) } ?? 0
            let mode = try db.queryOne("PRAGMA auto_vacuum") { $0.int(0) } ?? 0
            return StorageFigures(location: path, fileBytes: size(path), walBytes: size(path + "-wal"),
                                  freeBytes: free.multipliedReportingOverflow(by: pageSize).partialValue,
                                  autoVacuum: ["none", "full", "incremental"][min(max(mode, 0), 2)])
        }
    }
}
