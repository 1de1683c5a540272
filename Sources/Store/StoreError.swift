// StoreError: every failure of the state store, with enough context to act on it.
//
// Errors name the SQL text, the SQLite message and the extended result code, but NEVER the bound values:
// those carry provider payloads and may carry secrets, and these errors end up in journald (the same rule
// GRDB follows with `publicStatementArguments = false`).

/// A state-store failure. `description` is safe to log: it never contains bound values.
public struct StoreError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure this is.
    public enum Code: Sendable, Equatable {
        /// SQLite returned an error; `primary` is `extended & 0xFF`.
        /// Related SQLite documentation: <https://www.sqlite.org/rescode.html>
        case sqlite(primary: Int32, extended: Int32)
        /// The file's `user_version` is newer than this binary's schema.
        case schemaTooNew(found: Int, known: Int)
        /// A read-only open found a schema older than this binary's (or none at all).
        case schemaTooOld(found: Int, known: Int)
        /// A write was attempted on a connection opened read-only.
        case readOnly
        /// A stored value could not be decoded (e.g. JSON text that does not parse).
        case corruptData
        /// Something the caller named does not exist (e.g. an event id).
        case notFound
        /// The poller lock file could not be opened or locked (`errno` from open/flock).
        case lockFile(errno: Int32)
        /// The state directory or a store file could not be created or made private (`errno` from mkdir/chmod).
        case privateFiles(errno: Int32)
        /// PostgreSQL refused a statement or the connection; `sqlState` is its five-character SQLSTATE.
        /// Related PostgreSQL documentation: "Appendix A. PostgreSQL Error Codes".
        case postgres(sqlState: String)
        /// This node no longer holds the poll lease of the object it was writing (another node took it over after
        /// it expired): the write was refused, nothing of it is stored (fencing, docs/DESIGN.md §2 rule 19).
        case leaseLost
    }

    public var code: Code
    /// Human-readable message (SQLite's `sqlite3_errmsg`, or ours). Never contains bound values.
    public var message: String
    /// The SQL text that failed, when a statement failed.
    public var sql: String?
    /// The database file, when known.
    public var path: String?
    /// What an operator can do about it, when there is something.
    public var hint: String?

    public init(code: Code, message: String, sql: String? = nil, path: String? = nil, hint: String? = nil) {
        self.code = code
        self.message = message
        self.sql = sql
        self.path = path
        self.hint = hint
    }

    public var description: String {
        var text = "state store: \(message)"
        if case .sqlite(_, let extended) = code { text += " (SQLite code \(extended))" }
        if case .postgres(let state) = code { text += " (SQLSTATE \(state))" }
        if let path { text += path.hasPrefix("/") ? " [file \(path)]" : " [database \(path)]" }
        if let sql { text += " [SQL: \(sql)]" }
        if let hint { text += "; \(hint)" }
        return text
    }

    /// Primary SQLite result code, if this is a SQLite error.
    public var sqlitePrimaryCode: Int32? {
        if case .sqlite(let primary, _) = code { return primary }
        return nil
    }

    /// True for SQLITE_CONSTRAINT and its extended codes (UNIQUE, CHECK, FOREIGNKEY, NOTNULL, …), and for
    /// PostgreSQL's class 23 (integrity constraint violation).
    public var isConstraintViolation: Bool {
        if case .postgres(let state) = code { return state.hasPrefix("23") }
        return sqlitePrimaryCode == 19
    }

    /// True for SQLITE_BUSY / SQLITE_LOCKED: another connection held the lock past the busy timeout.
    public var isBusy: Bool { sqlitePrimaryCode == 5 || sqlitePrimaryCode == 6 }
}
