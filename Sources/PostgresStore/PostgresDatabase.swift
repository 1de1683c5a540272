// PostgresDatabase: the store's `SQLDatabase` on PostgreSQL — a small pool of libpq connections, transactions
// that behave like SQLite's single writer, and the retries a shared server needs.
//
// - Writes run READ COMMITTED, and the table code never relies on a write transaction running alone: every
//   write that races another node is a single conditional statement — an upsert (`ON CONFLICT`), a
//   compare-and-set on a lease token (`UPDATE … WHERE token = ?`), a claim with `FOR UPDATE SKIP LOCKED` — which
//   PostgreSQL re-checks against the newest row version after waiting for its lock. (SERIALIZABLE was tried
//   first: with two or three nodes inserting into the same indexes, its predicate locks failed page commits of
//   *different* objects with 40001 often enough to stall them; Scripts/bench-cluster showed it.) A deadlock
//   (40P01) or serialization failure (40001) is still retried here from the start (the store's write bodies
//   compute only from what they read, so re-running them is safe). Related PostgreSQL documentation: "13.2.1
//   Read Committed Isolation Level" (UPDATE re-evaluates its WHERE on the updated row version).
// - Reads run REPEATABLE READ, READ ONLY: several queries see one snapshot, as in a SQLite read transaction.
// - A connection that broke (the server restarted, a network blip) is reset and the transaction retried, for a
//   bounded time; then the error goes to the caller, who retries at its next cycle. A transaction whose COMMIT was
//   sent when the connection broke may have committed: retrying it is safe for the store's writes (event ids are
//   unique, snapshot and delivery writes are upserts), at worst an attempt row is logged twice.
// - The pool opens connections lazily, up to `poolSize`; a caller waits for a free one. The daemon uses the store
//   from one serial queue plus the heartbeat, so two or three connections are busy at most.
import Foundation
public import Store
import Synchronization

public final class PostgresDatabase: SQLDatabase {
    /// The redacted URL, for messages.
    public let location: String
    public var dialect: SQLDialect { .postgres }
    private let url: String
    private let pool: ConnectionPool
    private let translations = TranslationCache()
    private let readOnly: Bool

    /// How often a transaction is retried after a serialization failure, and for how long after connection
    /// failures (the server restarting takes a few seconds).
    static let serializationRetries = 20
    static let reconnectWindow: Duration = .seconds(20)

    /// Opens the pool's first connection (so a wrong URL fails here, with a clear message).
    public init(url: String, poolSize: Int = 4, readOnly: Bool = false) throws {
        self.url = url
        self.location = PGConnection.redact(url: url)
        self.readOnly = readOnly
        pool = ConnectionPool(size: max(1, poolSize))
        pool.adopt(try Self.connect(url: url, location: location))
    }

    @discardableResult
    public func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        guard !readOnly else {
            throw StoreError(code: .readOnly, message: "this store was opened read-only", path: location)
        }
        return try transaction("BEGIN ISOLATION LEVEL READ COMMITTED", body)
    }

    @discardableResult
    public func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", body)
    }

    /// Runs `body` on a pooled connection outside any transaction (migrations take an advisory lock this way).
    public func withConnection<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try withPooledConnection { try body($0) }
    }

    // MARK: Maintenance: PostgreSQL's autovacuum returns space on its own.

    public func checkpoint() throws {}
    public func reclaimSpace() throws {}

    /// `prune --vacuum`: a plain VACUUM (ANALYZE) of the store's tables; it never blocks the daemons' writes.
    public func vacuum() throws {
        try withPooledConnection { try $0.executeScript("VACUUM (ANALYZE)") }
    }

    public func storageFigures() throws -> StorageFigures {
        try read { db in
            let bytes = try db.queryOne("SELECT pg_database_size(current_database())") { $0.int64(0) } ?? 0
            return StorageFigures(location: location, fileBytes: bytes, walBytes: 0, freeBytes: 0,
                                  autoVacuum: "postgresql autovacuum")
        }
    }

    // MARK: Transactions

    private func transaction<T>(_ begin: String, _ body: (any SQLConnection) throws -> T) throws -> T {
        var serializationFailures = 0
        let reconnectDeadline = ContinuousClock.now + Self.reconnectWindow
        while true {
            do {
                return try withPooledConnection { db in
                    try db.executeScript(begin)
                    do {
                        let result = try body(db)
                        try db.executeScript("COMMIT")
                        return result
                    } catch {
                        if db.connection.isHealthy { try? db.connection.executeScript("ROLLBACK") }
                        throw error
                    }
                }
            } catch let error as StoreError where Self.isSerializationFailure(error) {
                serializationFailures += 1
                guard serializationFailures <= Self.serializationRetries else { throw error }
                Self.pause(milliseconds: min(200, 2 * serializationFailures) + Int.random(in: 0...5))
            } catch let error as StoreError where Self.isConnectionFailure(error) {
                guard ContinuousClock.now < reconnectDeadline else { throw error }
                Self.pause(milliseconds: 250 + Int.random(in: 0...250))
            }
        }
    }

    /// Takes a connection from the pool (opening one when the pool has room), resets it first when it broke,
    /// and puts it back afterwards — or drops it when it is still broken.
    private func withPooledConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        let connection = try pool.checkOut { try Self.connect(url: url, location: location) }
        if !connection.isHealthy { connection.reset() }
        guard connection.isHealthy else {
            pool.discard()
            throw StoreError(code: .postgres(sqlState: "08006"), message: "lost the connection to PostgreSQL",
                             path: location, hint: "check that the server is running and reachable")
        }
        defer {
            if connection.isHealthy { pool.checkIn(connection) } else { pool.discard() }
        }
        return try body(PostgresConnection(connection: connection, location: location, translations: translations))
    }

    /// Every session's guard against a node that stops mid-transaction (SIGSTOP, a VM pause, a partition): its
    /// open transaction holds row locks — the lease row a page commit renews, the delivery rows a claim locked —
    /// and every other node would wait on them for as long as it sleeps. The server ends a session idle inside a
    /// transaction for 5 s (the store never pauses between its statements; only a stopped or starved process
    /// does), which rolls its transaction back and frees the locks; a woken node finds its connection gone,
    /// reconnects, retries, and is fenced. `lock_timeout` bounds any other wait, so one stuck lock cannot hang a
    /// node's store queue for ever. Related PostgreSQL documentation: "20.11.1 Statement Behavior"
    /// (`idle_in_transaction_session_timeout`, `lock_timeout`).
    static let sessionSettings: [(name: String, value: String)] = [
        ("idle_in_transaction_session_timeout", "5000"), ("lock_timeout", "15000"),
    ]

    private static func connect(url: String, location: String) throws -> PGConnection {
        do {
            return try PGConnection(url: url, settings: sessionSettings)
        } catch let error as PGError {
            throw storeError(error, location: location)
        }
    }

    private static func pause(milliseconds: Int) {
        usleep(useconds_t(max(0, milliseconds) * 1000))
    }

    // MARK: Errors

    /// A libpq error as the store's error: the SQLSTATE, the primary message (it names constraints, columns and
    /// types), the store's own SQL text, the redacted URL and a hint for the common cases. Never the DETAIL field:
    /// PostgreSQL puts row values there ("Failing row contains (…)", "Key (id)=(…) already exists"), and bound
    /// values carry provider data and secrets into journald.
    static func storeError(_ error: PGError, location: String, sql: String? = nil) -> StoreError {
        let message = error.message
        var hint = error.hint
        if error.isConnectionFailure {
            hint = hint ?? "check that PostgreSQL is running and that store.url is right"
        } else if error.sqlState == "42501" {
            hint = hint ?? "grant the deltahook role CREATE and USAGE on the database's schema"
        }
        return StoreError(code: .postgres(sqlState: error.sqlState ?? (error.connectionBad ? "08006" : "XX000")),
                          message: message, sql: sql ?? error.statement, path: location, hint: hint)
    }

    static func isSerializationFailure(_ error: StoreError) -> Bool {
        if case .postgres(let state) = error.code { return state == "40001" || state == "40P01" }
        return false
    }

    static func isConnectionFailure(_ error: StoreError) -> Bool {
        guard case .postgres(let state) = error.code else { return false }
        return state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state)
    }
}

/// At most `size` connections; idle ones are kept for reuse. `PGConnection` is not Sendable: a connection is
/// used by the one thread that checked it out, and the lock only guards the idle list (hence `@unchecked`).
final class ConnectionPool: @unchecked Sendable {
    private let lock = NSCondition()
    private var idle: [PGConnection] = []
    private var open = 0
    private let size: Int

    init(size: Int) { self.size = size }

    /// An idle connection, or a new one while fewer than `size` are open, or waits for one to be checked in.
    func checkOut(connect: () throws -> PGConnection) throws -> PGConnection {
        lock.lock()
        while idle.isEmpty && open >= size { lock.wait() }
        if let connection = idle.popLast() {
            lock.unlock()
            return connection
        }
        open += 1
        lock.unlock()
        do {
            return try connect()
        } catch {
            discard()
            throw error
        }
    }

    /// Counts a connection opened outside ``checkOut(connect:)`` (the first, opened by init) and makes it idle.
    func adopt(_ connection: PGConnection) {
        lock.lock()
        open += 1
        lock.unlock()
        checkIn(connection)
    }

    /// Returns a checked-out connection to the idle list.
    func checkIn(_ connection: PGConnection) {
        lock.lock()
        idle.append(connection)
        lock.signal()
        lock.unlock()
    }

    /// A checked-out connection is gone (broken or failed to open): its place is free again.
    func discard() {
        lock.lock()
        open = max(0, open - 1)
        lock.signal()
        lock.unlock()
    }
}
