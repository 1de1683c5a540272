// PGConnection: one libpq connection (through CPostgres) with cached prepared statements.
//
// Choices, each after the libpq documentation:
// - Parameters are sent untyped (no paramTypes, libpq — "Command Execution Functions", PQprepare: "If paramTypes
//   is NULL, or any particular element in the array is zero, the server assigns a data type to the parameter
//   symbol in the same way it would do for an untyped literal string") and in text format, so the server infers
//   each `$n`'s type from context and the store can pass every value as a string.
// - Results are requested in text format; PGResult copies them out before PQclear.
// - Each distinct SQL text is prepared once per session under a generated name (`dh_1`, `dh_2`, …) and run with
//   PQexecPrepared afterwards: the store issues a small fixed set of statements, so parsing and planning them
//   once saves work on every call. Names are never reused within a connection, so a statement the cache forgot
//   can never be confused with a new one. The cache is bounded (DEALLOCATE ALL past 500 statements).
// - Notices (e.g. "relation already exists, skipping") go to a no-op receiver (libpq — "Notice Processing"):
//   libpq's default prints them to stderr, which is the daemon's log stream.
// - Not thread-safe, like the PGconn underneath (libpq — "Behavior in Threaded Programs": one connection must
//   not be used by two threads at once); the caller serializes use with its own lock or queue.
import CPostgres
import Foundation

/// One connection to PostgreSQL. Not Sendable: use it from one thread at a time (the caller's lock or queue).
public final class PGConnection {
    private let handle: OpaquePointer
    /// SQL text → prepared statement name, for this session only (cleared by ``reset()``).
    private var statements: [String: String] = [:]
    private var nextStatementNumber = 1
    /// Secrets to scrub from libpq messages (the parsed password values), never printed.
    private let secrets: [String]

    /// How many prepared statements one session keeps before `DEALLOCATE ALL`.
    public static let statementCacheLimit = 500

    /// Connects to `url`, a libpq connection URI (`postgresql://user@host:port/db?…`) or keyword/value string
    /// (`host=… dbname=…`). `connect_timeout` defaults to 5 seconds and `application_name` to `applicationName`
    /// (the URL's own values win); `client_encoding` is always UTF8, because Swift strings are UTF-8.
    /// Throws a ``PGError`` naming host, port, database and user, with any password redacted.
    /// - Parameter settings: server parameters for the session (`-c name=value` in libpq's `options`), set at
    ///   connect and kept by ``reset()``; the URL's own `options` wins.
    public init(url: String, applicationName: String = "deltahook", settings: [(name: String, value: String)] = []) throws {
        let redacted = Self.redact(url: url)
        let (options, problem) = Self.parseOptions(url)
        let secrets = ["password", "sslpassword"].compactMap { options[$0] } + Self.hiddenValues(in: url)
        if let problem {
            throw PGError(message: "invalid PostgreSQL connection string \(redacted): "
                          + Self.scrub(problem, secrets: secrets), connectionBad: true)
        }
        let target = Self.describeTarget(options)
        // PQconnectdbParams processes the arrays in order and a later keyword wins, including over the fields of
        // an expanded connection string (libpq — "Connection Control Functions", PQconnectdbParams, expand_dbname):
        // entries before `dbname` are defaults the URL may override, entries after it are forced.
        let sessionOptions = settings.map { "-c \($0.name)=\($0.value)" }.joined(separator: " ")
        let keywords = ["connect_timeout", "application_name", "options", "dbname", "client_encoding"]
        let values = ["5", applicationName, sessionOptions, url, "UTF8"]
        let connection = try Self.withCStringArray(keywords) { keywordPointers in
            try Self.withCStringArray(values) { valuePointers in PQconnectdbParams(keywordPointers, valuePointers, 1) }
        }
        guard let connection else {
            throw PGError(message: "could not connect to PostgreSQL at \(target) (\(redacted)): out of memory",
                          connectionBad: true)
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let reason = Self.scrub(String(cString: PQerrorMessage(connection)), secrets: secrets)
            PQfinish(connection)
            throw PGError(message: "could not connect to PostgreSQL at \(target) (\(redacted)): \(reason)",
                          connectionBad: true)
        }
        handle = connection
        self.secrets = secrets
        // The receiver survives PQreset: it belongs to the PGconn object, not to the socket.
        PQsetNoticeReceiver(connection, { _, _ in }, nil)
    }

    deinit { PQfinish(handle) }

    /// True while libpq considers the connection usable (PQstatus == CONNECTION_OK). A server restart is only
    /// noticed by the next command, which then fails with ``PGError/isConnectionFailure``.
    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// Reconnects with the same parameters (PQreset, libpq — "Connection Control Functions") and forgets the
    /// prepared statements, which died with the old session. Check ``isHealthy`` afterwards.
    public func reset() {
        statements.removeAll()
        PQreset(handle)
    }

    /// Runs one statement with `$1…$n` bound to `parameters` (nil is SQL NULL), sent untyped in text format.
    /// The statement is prepared on first use of its SQL text and reused afterwards.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?]) throws -> PGResult {
        let name = try preparedName(for: sql)
        var copies: [UnsafeMutablePointer<CChar>?] = []
        copies.reserveCapacity(parameters.count)
        defer { copies.forEach { free($0) } }
        for (index, parameter) in parameters.enumerated() {
            guard let parameter else { copies.append(nil); continue }
            // A C string ends at the first NUL; PostgreSQL text cannot hold NUL either, so refuse, not truncate.
            guard !parameter.utf8.contains(0) else {
                throw PGError(sqlState: "22021", message: "parameter $\(index + 1) contains a NUL byte", statement: sql)
            }
            guard let copy = strdup(parameter) else { throw PGError(message: "out of memory", statement: sql) }
            copies.append(copy)
        }
        let pointers = copies.map { $0.map { UnsafePointer($0) } }
        let result = pointers.withUnsafeBufferPointer { buffer in
            PQexecPrepared(handle, name, Int32(parameters.count), buffer.baseAddress, nil, nil, 0)
        }
        do {
            return try consume(result, statement: sql)
        } catch let error as PGError {
            // 26000 invalid_sql_statement_name: the server no longer has it (e.g. someone ran DEALLOCATE).
            // 0A000 "cached plan must not change result type": a table changed under a `SELECT *`. Both are cured
            // by preparing again on the next call.
            if error.sqlState == "26000" || error.sqlState == "0A000" { statements[sql] = nil }
            throw error
        }
    }

    /// Runs `sql` as a simple query (PQexec): any number of `;`-separated statements without parameters, e.g.
    /// DDL or `BEGIN`/`COMMIT`. PQexec stops at the first failing statement and reports it.
    public func executeScript(_ sql: String) throws {
        _ = try consume(PQexec(handle, sql), statement: sql)
    }

    // MARK: - Private

    /// The prepared statement name for `sql`, preparing it (PQprepare with nParams 0 and no types) when new.
    private func preparedName(for sql: String) throws -> String {
        if let name = statements[sql] { return name }
        if statements.count >= Self.statementCacheLimit { try deallocateAll() }
        let name = "dh_\(nextStatementNumber)"
        nextStatementNumber += 1
        _ = try consume(PQprepare(handle, name, sql, 0, nil), statement: sql)
        statements[sql] = name
        return name
    }

    /// Drops every prepared statement of the session. Prepared statements are not transactional, so this is
    /// safe inside an open transaction; in a failed one the server refuses every command (25P02), so it waits.
    private func deallocateAll() throws {
        guard PQtransactionStatus(handle) != PQTRANS_INERROR else { return }
        _ = try consume(PQexec(handle, "DEALLOCATE ALL"), statement: "DEALLOCATE ALL")
        statements.removeAll()
    }

    /// Turns a PGresult into a PGResult or a PGError, and always clears it (libpq — "Main Functions": "Every
    /// command result should be freed via PQclear when it is no longer needed, to avoid memory leaks").
    private func consume(_ result: OpaquePointer?, statement: String) throws -> PGResult {
        guard let result else {
            // A nil result means libpq could not even send the command (out of memory, connection gone).
            throw PGError(message: Self.scrub(String(cString: PQerrorMessage(handle)), secrets: secrets),
                          statement: statement, connectionBad: PQstatus(handle) == CONNECTION_BAD)
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            throw error(from: result, status: status, statement: statement)
        }
        return PGResult(copying: result)
    }

    /// The error fields of a failed result (libpq — "Main Functions", PQresultErrorField).
    private func error(from result: OpaquePointer, status: ExecStatusType, statement: String) -> PGError {
        func field(_ code: Character) -> String? {
            guard let ascii = code.asciiValue, let value = PQresultErrorField(result, Int32(ascii)) else { return nil }
            return String(cString: value)
        }
        // The PG_DIAG_* codes are single-character macros: 'C' SQLSTATE, 'M' primary message, 'D' detail, 'H' hint.
        var message = field("M") ?? ""
        if message.isEmpty, let whole = PQresultErrorMessage(result) { message = String(cString: whole) }
        if message.isEmpty { message = "unexpected result status " + String(cString: PQresStatus(status)) }
        return PGError(sqlState: field("C"), message: Self.scrub(message, secrets: secrets), detail: field("D"),
                       hint: field("H"), statement: statement, connectionBad: PQstatus(handle) == CONNECTION_BAD)
    }

    /// `host=… port=… dbname=… user=…` from parsed options, for messages (never the password).
    private static func describeTarget(_ options: [String: String]) -> String {
        let host = options["host"] ?? options["hostaddr"] ?? "(default socket)"
        var parts = ["host=\(host)"]
        if let port = options["port"] { parts.append("port=\(port)") }
        if let dbname = options["dbname"] { parts.append("dbname=\(dbname)") }
        if let user = options["user"] { parts.append("user=\(user)") }
        return parts.joined(separator: " ")
    }

    /// Calls `body` with a NULL-terminated array of C strings that live for the call.
    private static func withCStringArray<R>(_ strings: [String],
                                            _ body: (UnsafePointer<UnsafePointer<CChar>?>) throws -> R) throws -> R {
        var copies: [UnsafeMutablePointer<CChar>] = []
        defer { copies.forEach { free($0) } }
        for string in strings {
            guard let copy = strdup(string) else { throw PGError(message: "out of memory", connectionBad: true) }
            copies.append(copy)
        }
        let pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) } + [nil]
        return try pointers.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { throw PGError(message: "out of memory", connectionBad: true) }
            return try body(base)
        }
    }
}
