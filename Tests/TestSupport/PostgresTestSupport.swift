// Databases for PostgreSQL tests: one server per test run, a fresh database per test.
//
// Scripts/test starts one throwaway server for the whole run (Scripts/pg-throwaway) and exports its socket
// directory and port in DELTAHOOK_TEST_PG_SOCKET_DIR / DELTAHOOK_TEST_PG_PORT; tests then only create databases
// on it. Without those variables (e.g. `swift test --filter …` by hand) the first test that asks starts a
// PostgresServer for this test process, kept in a lock-protected holder and stopped by an atexit handler when
// the process exits normally; if the process crashes instead, the server's watcher (see PostgresServer) stops it.
import Foundation
import Glibc

/// Fresh databases on the test run's PostgreSQL server.
public enum PostgresTestSupport {
    /// Set by Scripts/test: the directory of the shared server's Unix socket.
    public static let socketDirectoryVariable = "DELTAHOOK_TEST_PG_SOCKET_DIR"
    /// Set by Scripts/test: the shared server's port.
    public static let portVariable = "DELTAHOOK_TEST_PG_PORT"

    /// Nil when PostgreSQL tests can run here, else why not; for `.enabled(if: PostgresTestSupport.isAvailable)`.
    public static var unavailableReason: String? {
        if ProcessInfo.processInfo.environment[socketDirectoryVariable] != nil {
            if case .failure(let error) = PostgresTools.locate() { return error.description }
            return nil
        }
        return PostgresServer.unavailableReason
    }

    /// True when PostgreSQL tests can run here.
    public static var isAvailable: Bool { unavailableReason == nil }

    /// Creates `database` on the run's shared server and returns its libpq URL; nil when PostgreSQL is unavailable
    /// (after printing the reason once). Throws when PostgreSQL is there but the server or createdb fails.
    public static func sharedServerURL(database: String) throws -> String? {
        let environment = ProcessInfo.processInfo.environment
        if let socketDirectory = environment[socketDirectoryVariable], !socketDirectory.isEmpty {
            guard let portText = environment[portVariable], let port = Int(portText) else {
                throw PostgresServerError("\(socketDirectoryVariable) is set but \(portVariable) is not a port number")
            }
            let tools: PostgresTools
            switch PostgresTools.locate() {
            case .success(let found): tools = found
            case .failure(let error):
                Holder.shared.noteSkipped(error.description)
                return nil
            }
            try PostgresServer.createDatabase(database, socketDirectory: socketDirectory, port: port, tools: tools)
            return PostgresServer.url(database: database, socketDirectory: socketDirectory, port: port)
        }
        guard let server = try Holder.shared.server() else { return nil }
        return try server.createDatabase(database)
    }

    /// A new database named after `prefix` (lowercased, other characters become `_`) plus a random suffix, on
    /// the run's shared server; nil when PostgreSQL is unavailable (after printing
    /// "PostgreSQL tests skipped: <reason>" once to stderr).
    public static func freshDatabaseURL(prefix: String) throws -> String? {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_")
        let cleaned = String(prefix.lowercased().map { allowed.contains($0) ? $0 : "_" }.prefix(40))
        let suffix = UUID().uuidString.lowercased().filter { $0 != "-" }.prefix(10)
        return try sharedServerURL(database: "dh_\(cleaned)_\(suffix)")
    }

    /// Stops this process's own shared server, if it started one (the atexit handler; tests need not call it).
    public static func stopSharedServer() { Holder.shared.stop() }

    /// The per-process server and the print-once flag, behind one lock.
    private final class Holder: @unchecked Sendable {
        static let shared = Holder()

        private enum State {
            case notStarted
            case running(PostgresServer)
            case unavailable
            case failed(PostgresServerError)
            case stopped
        }

        private let lock = NSLock()
        private var state = State.notStarted
        private var printedSkip = false

        /// The running server, starting it on first use; nil when PostgreSQL is unavailable.
        func server() throws -> PostgresServer? {
            lock.lock()
            defer { lock.unlock() }
            switch state {
            case .running(let server): return server
            case .unavailable, .stopped: return nil
            case .failed(let error): throw error
            case .notStarted: break
            }
            if let reason = PostgresServer.unavailableReason {
                state = .unavailable
                printSkipLocked(reason)
                return nil
            }
            do {
                let server = try PostgresServer.start()
                state = .running(server)
                // A C function pointer cannot capture: it reaches the server through the static holder.
                atexit { PostgresTestSupport.stopSharedServer() }
                return server
            } catch {
                let failure = error as? PostgresServerError ?? PostgresServerError("\(error)")
                state = .failed(failure)
                throw failure
            }
        }

        func noteSkipped(_ reason: String) {
            lock.lock()
            defer { lock.unlock() }
            printSkipLocked(reason)
        }

        func stop() {
            lock.lock()
            let current = state
            state = .stopped
            lock.unlock()
            if case .running(let server) = current { server.stop() }
        }

        private func printSkipLocked(_ reason: String) {
            guard !printedSkip else { return }
            printedSkip = true
            FileHandle.standardError.write(Data("PostgreSQL tests skipped: \(reason)\n".utf8))
        }
    }
}
