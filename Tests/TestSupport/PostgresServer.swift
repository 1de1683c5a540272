// A throwaway PostgreSQL server for tests, driven only through PostgreSQL's own binaries (initdb, pg_ctl,
// createdb, pg_isready): TestSupport must not depend on PostgresStore, the code under test.
//
// Each server lives in a fresh directory under /tmp (short, because a Unix socket path is limited to 107 bytes,
// and reachable by the `postgres` user when we are root): data/ for the cluster, server.log, and the socket
// itself. It listens on that Unix socket only (listen_addresses=''), so tests never open a TCP port; the port
// number only names the socket, and is random in 20000..<40000 so two servers on one machine do not collide.
// fsync=off: a test cluster is thrown away, durability buys nothing and costs seconds.
//
// Lifetime: `stop()` (idempotent, also run by deinit) stops the server and removes the directory. pg_ctl starts
// postgres in its own session, so the server would outlive a test process that crashes before stop(); a small
// watcher shell (started with the server, killed by stop()) polls the test process and, once it is gone,
// stops the server with `pg_ctl -m immediate` and removes the directory.
import Foundation
import Glibc

/// One throwaway PostgreSQL cluster on a Unix socket.
public final class PostgresServer: @unchecked Sendable {
    /// The superuser created by initdb (`-U`), trusted on the socket (`-A trust`).
    public static let user = "deltahook"

    /// The directory holding the socket (and the cluster): libpq's `host` for this server.
    public let socketDirectory: String
    /// The port naming the socket file (`.s.PGSQL.<port>`).
    public let port: Int
    private let tools: PostgresTools
    private let dataDirectory: String
    private let logFile: String
    private let lock = NSLock()
    private var stopped = false
    /// The crash guard's pid (see startWatcher), killed and reaped by stop().
    private var watcher: pid_t?

    /// Nil when a server can be started here, else why not (no binaries, or root without a `postgres` user).
    public static var unavailableReason: String? {
        switch PostgresTools.locate() {
        case .success: return nil
        case .failure(let error): return error.description
        }
    }

    private init(tools: PostgresTools, base: String, port: Int) {
        self.tools = tools
        socketDirectory = base
        dataDirectory = base + "/data"
        logFile = base + "/server.log"
        self.port = port
    }

    deinit { stop() }

    /// initdb into a fresh directory and start the server (retrying other ports); throws with the log's tail.
    public static func start() throws -> PostgresServer {
        let tools = try PostgresTools.locate().get()
        var template = Array("/tmp/dh-pg-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw PostgresServerError("mkdtemp failed: errno \(errno)")
        }
        let base = String(cString: created)
        if let owner = tools.owner, chown(base, owner.uid, owner.gid) != 0 {
            try? FileManager.default.removeItem(atPath: base)
            throw PostgresServerError("chown \(base) to the postgres user failed: errno \(errno)")
        }
        var lastError = PostgresServerError("not started")
        for _ in 0..<3 {
            let server = PostgresServer(tools: tools, base: base, port: Int.random(in: 20000..<40000))
            do {
                try server.initializeAndStart()
                return server
            } catch {
                lastError = error as? PostgresServerError ?? PostgresServerError("\(error)")
                // Keep the directory for the next attempt (stopping a never-started server is harmless).
                server.stopServerProcess()
                server.markStopped()
            }
        }
        try? FileManager.default.removeItem(atPath: base)
        throw lastError
    }

    /// Creates database `name` (letters, digits, `_`) and returns its libpq URL on this server's socket.
    public func createDatabase(_ name: String) throws -> String {
        try Self.createDatabase(name, socketDirectory: socketDirectory, port: port, tools: tools)
        return Self.url(database: name, socketDirectory: socketDirectory, port: port)
    }

    /// `postgresql:///NAME?host=SOCKETDIR&port=PORT&user=deltahook`.
    public func url(database: String) -> String {
        Self.url(database: database, socketDirectory: socketDirectory, port: port)
    }

    /// Restarts the server (`pg_ctl restart -m fast`: open sessions are terminated, as in a real failover) and
    /// waits until it accepts connections again.
    public func restart() throws {
        let result = try tools.runServerCommand(
            "pg_ctl", ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "-m", "fast", "restart"], in: socketDirectory)
        guard result.status == 0 else { throw failure("pg_ctl restart failed", result.output) }
        try waitUntilReady()
    }

    /// Stops the server (`pg_ctl stop -m fast`, then `-m immediate` if that fails) and removes its directory.
    /// Idempotent; also called from deinit.
    public func stop() {
        lock.lock()
        let alreadyStopped = stopped
        stopped = true
        let watcher = self.watcher
        self.watcher = nil
        lock.unlock()
        guard !alreadyStopped else { return }
        stopServerProcess()
        if let watcher {
            kill(watcher, SIGKILL)
            _ = waitpid(watcher, nil, 0)
        }
        try? FileManager.default.removeItem(atPath: socketDirectory)
    }

    // MARK: - Shared with PostgresTestSupport

    static func url(database: String, socketDirectory: String, port: Int) -> String {
        "postgresql:///\(database)?host=\(socketDirectory)&port=\(port)&user=\(user)"
    }

    static func createDatabase(_ name: String, socketDirectory: String, port: Int, tools: PostgresTools) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_")
        guard !name.isEmpty, name.count <= 63, name.allSatisfy({ allowed.contains($0) }) else {
            throw PostgresServerError("database name \(name) must be 1–63 of [a-z0-9_]")
        }
        let result = try tools.runClientCommand(
            "createdb", ["-h", socketDirectory, "-p", String(port), "-U", user, name])
        guard result.status == 0 else {
            throw PostgresServerError("createdb \(name) failed: \(result.output)")
        }
    }

    // MARK: - Private

    private func markStopped() {
        lock.lock()
        stopped = true
        lock.unlock()
    }

    private func initializeAndStart() throws {
        if !FileManager.default.fileExists(atPath: dataDirectory + "/PG_VERSION") {
            // --locale=C: a deterministic cluster that does not depend on which locales the machine has.
            let result = try tools.runServerCommand(
                "initdb", ["-D", dataDirectory, "-A", "trust", "-U", Self.user, "--no-sync", "-E", "UTF8",
                           "--locale=C"], in: socketDirectory)
            guard result.status == 0 else { throw PostgresServerError("initdb failed: \(result.output)") }
        }
        let options = "-c listen_addresses='' -k \(socketDirectory) -p \(port) -c fsync=off -c max_connections=100"
        let result = try tools.runServerCommand(
            "pg_ctl", ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "-o", options, "start"], in: socketDirectory)
        guard result.status == 0 else { throw failure("pg_ctl start failed", result.output) }
        try waitUntilReady()
        startWatcher()
    }

    /// pg_ctl -w already waits for the "ready" state; pg_isready confirms the socket accepts connections.
    private func waitUntilReady() throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let result = try tools.runClientCommand("pg_isready", ["-h", socketDirectory, "-p", String(port), "-t", "2"])
            if result.status == 0 { return }
            usleep(100_000)
        }
        throw failure("the server did not accept connections within 30 s", "")
    }

    private func stopServerProcess() {
        guard FileManager.default.fileExists(atPath: dataDirectory + "/postmaster.pid") else { return }
        for mode in ["fast", "immediate"] {
            let result = try? tools.runServerCommand(
                "pg_ctl", ["-D", dataDirectory, "-w", "-t", "30", "-m", mode, "stop"], in: socketDirectory)
            if result?.status == 0 { return }
        }
    }

    /// The crash guard described at the top of the file. It ignores SIGINT/SIGHUP/SIGTERM (so a Ctrl-C that
    /// kills the test run still lets it clean up) and is killed with SIGKILL by stop().
    private func startWatcher() {
        let script = """
            pid=$1; base=$2; data=$3; shift 3
            trap '' INT HUP TERM
            while kill -0 "$pid" 2>/dev/null; do sleep 1; done
            "$@" -D "$data" -m immediate -w -t 20 stop >/dev/null 2>&1
            rm -rf "$base"
            """
        let command = ["/bin/sh", "-c", script, "sh", String(getpid()), socketDirectory, dataDirectory]
            + tools.runAs + [tools.path("pg_ctl")]
        guard let pid = try? SyncCommand.spawn(command, in: "/", outputPath: nil) else { return }
        lock.lock()
        watcher = pid
        lock.unlock()
    }

    /// An error with the last 20 lines of the server log.
    private func failure(_ what: String, _ output: String) -> PostgresServerError {
        let log = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "(no log at \(logFile))"
        let tail = log.split(separator: "\n", omittingEmptySubsequences: false).suffix(20).joined(separator: "\n")
        return PostgresServerError("\(what): \(output.trimmingCharacters(in: .whitespacesAndNewlines))\n"
                                   + "last lines of \(logFile):\n\(tail)")
    }
}
