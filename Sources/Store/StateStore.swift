// StateStore: deltahook's durable state — the typed repository the engine, the dispatcher, status and the
// CLI call. It knows nothing of providers, HTTP or delivery policy: callers decide what changed, whom an event
// is routed to and when to retry; the store makes those decisions durable and atomic.
//
// Memory stays flat: every listing is bounded by a limit and pages by keyset (seq, id), never by OFFSET, and no
// method materializes a whole table.
//
// This file holds the class, `init` and the serial queue (`perform`, `enqueue`); each table's methods and row
// type are an extension in the table's own file (ARCHITECTURE.md, "Store: where each table lives"), and the
// surface other modules may rely on is the `StateStoring` protocol (StateStoring.swift).
import Foundation
import Core
import Dispatch
import Synchronization

/// The result of one job on the store's queue, handed to whoever awaits it (before or after it is ready).
private final class QueuedOutcome<T: Sendable>: Sendable {
    private struct State {
        var result: Result<T, any Error>?
        var waiter: CheckedContinuation<T, any Error>?
    }
    private let state = Mutex(State())

    func resolve(_ result: Result<T, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<T, any Error>? in
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<T, any Error>? in
                if state.result == nil { state.waiter = continuation }
                return state.result
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// The state store over one SQLite file (``init(path:mode:)``) or another ``SQLDatabase`` (``init(backend:)``:
/// the PostgreSQL backend, whose module migrates its schema before handing the database over).
///
/// `Sendable`: it holds only an ``SQLDatabase`` (itself lock-guarded) and a serial queue. All methods are
/// synchronous and block the caller; from async code use ``perform(_:)`` to keep blocking database calls off
/// the cooperative pool.
public final class StateStore: Sendable {
    /// The conventional file name inside `state_directory`.
    public static let fileName = "deltahook.sqlite"
    /// Response bodies are kept up to this many UTF-8 bytes (docs/DESIGN.md §5: "a few KB").
    public static let responseExcerptLimit = 4096
    /// The schema version this binary writes.
    public static var schemaVersion: Int { Schema.currentVersion }

    /// The database. Internal: everything outside the module goes through the store's methods, so the same
    /// table logic serves every backend (tests reach it with `@testable import Store`).
    let database: any SQLDatabase
    private let queue: DispatchQueue
    /// This node's cluster membership and fencing tokens; nil until ``joinCluster(_:leaseTTL:objects:)``
    /// (Cluster.swift).
    let membership = Mutex<ClusterMembership?>(nil)
    /// Told after every committed page that inserted events (see ``observeCommittedEvents(_:)``).
    let eventsObserver = Mutex<(@Sendable (Int) -> Void)?>(nil)

    /// Registers the one observer told, after the transaction committed, how many new events a page commit
    /// inserted. The daemon wakes the dispatcher with it, so a delivery starts as soon as its row is durable,
    /// whichever engine path (delta scan, delete feed, sweep) committed it.
    public func observeCommittedEvents(_ observer: (@Sendable (Int) -> Void)?) {
        eventsObserver.withLock { $0 = observer }
    }

    /// Opens the store. `.readWrite` (the daemon) creates the file and applies migrations; `.readOnly` (the CLI
    /// beside a running daemon) opens it as a WAL reader and requires the current schema.
    ///
    /// - Throws: ``StoreError`` — `.schemaTooNew` when the file was written by a newer deltahook.
    public convenience init(path: String, mode: Database.Mode = .readWrite) throws {
        let sqlite = try Database(path: path, mode: mode)
        switch mode {
        case .readWrite:
            try Schema.migrate(sqlite)
            // SQLite creates the file under the process umask and gives -wal/-shm the file's mode: made 0600 here,
            // every later -wal/-shm is 0600 too (docs/DESIGN.md §1, private files).
            try PrivateFiles.tightenStoreFiles(path)
        case .readOnly: try Schema.checkReadable(sqlite)
        }
        self.init(backend: sqlite)
    }

    /// A store over a database whose schema is already current (the backend's module checked or migrated it).
    public init(backend: any SQLDatabase) {
        database = backend
        queue = DispatchQueue(label: "deltahook.store")
    }

    /// Sets SQLite's page cache of the store's connection (`PRAGMA cache_size = -kibibytes`): an experiment knob
    /// for `Scripts/bench`; the daemon keeps SQLite's default.
    public func setPageCache(kibibytes: Int) throws {
        guard let sqlite = database as? Database else { return }
        try sqlite.withConnection { try $0.executeScript("PRAGMA cache_size = -\(max(0, kibibytes))") }
    }

    /// Runs `body` on the store's own serial queue, so blocking SQLite calls never occupy a Swift concurrency
    /// thread (the same reason GRDB confines connections to a DispatchQueue).
    public func perform<T: Sendable>(_ body: @escaping @Sendable (StateStore) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body(self) }) }
        }
    }

    /// Puts `body` on the store's serial queue now — before anything enqueued after this call returns — and
    /// returns a task that delivers its result. Lets a caller order jobs (a read before a commit) and await
    /// them later, doing other work meanwhile.
    public func enqueue<T: Sendable>(_ body: @escaping @Sendable (StateStore) throws -> T) -> Task<T, any Error> {
        let outcome = QueuedOutcome<T>()
        queue.async { outcome.resolve(Result { try body(self) }) }
        return Task { try await outcome.value() }
    }
}
