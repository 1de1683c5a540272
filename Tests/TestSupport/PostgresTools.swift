// Finding PostgreSQL's server binaries and running them synchronously, as an unprivileged user when we are root.
//
// initdb and postgres refuse to run as root (a server compromised through SQL would own the machine), so as root
// every server-side command runs as the `postgres` system user that Debian's `postgresql` package creates, via
// runuser (util-linux) or, failing that, setpriv. Client tools (createdb, pg_isready) run as ourselves.
import Foundation
import Glibc

/// Why PostgreSQL cannot be used, or a command that failed.
public struct PostgresServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The located binaries and how to run server-side commands.
struct PostgresTools: Sendable {
    /// The directory holding initdb, pg_ctl, createdb and pg_isready.
    let binDirectory: String
    /// Prepended to server-side commands: `[]`, or runuser/setpriv switching to the `postgres` user.
    let runAs: [String]
    /// Who must own the server's directories (the `postgres` user when we are root).
    let owner: (uid: uid_t, gid: gid_t)?

    func path(_ tool: String) -> String { binDirectory + "/" + tool }

    /// Finds the tools: the highest version under /usr/lib/postgresql/<version>/bin (Debian's layout, which also
    /// matches the `postgres` system user), else PATH without /usr/local/bin (a shim there may be a wrapper of a
    /// different installation). As root also requires the `postgres` user and runuser or setpriv.
    static func locate() -> Result<PostgresTools, PostgresServerError> {
        guard let binDirectory = findBinDirectory() else {
            return .failure(PostgresServerError(
                "no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or PATH"))
        }
        guard geteuid() == 0 else { return .success(PostgresTools(binDirectory: binDirectory, runAs: [], owner: nil)) }
        guard let entry = getpwnam("postgres") else {
            return .failure(PostgresServerError("running as root and there is no `postgres` user to run the server as"))
        }
        let uid = entry.pointee.pw_uid, gid = entry.pointee.pw_gid
        let fileManager = FileManager.default
        if let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
            .first(where: { fileManager.isExecutableFile(atPath: $0) }) {
            return .success(PostgresTools(binDirectory: binDirectory, runAs: [runuser, "-u", "postgres", "--"],
                                          owner: (uid, gid)))
        }
        if let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first(where: { fileManager.isExecutableFile(atPath: $0) }) {
            return .success(PostgresTools(binDirectory: binDirectory,
                                          runAs: [setpriv, "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--"],
                                          owner: (uid, gid)))
        }
        return .failure(PostgresServerError("running as root and neither runuser nor setpriv is installed"))
    }

    private static func findBinDirectory() -> String? {
        let fileManager = FileManager.default
        let required = ["initdb", "pg_ctl", "createdb", "pg_isready"]
        func complete(_ directory: String) -> Bool {
            required.allSatisfy { fileManager.isExecutableFile(atPath: directory + "/" + $0) }
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? fileManager.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { name in Double(name).map { (name, $0) } }
            .sorted { $0.1 > $1.1 }
        for (name, _) in versions where complete("\(root)/\(name)/bin") { return "\(root)/\(name)/bin" }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init)
        where directory != "/usr/local/bin" && complete(directory) {
            return directory
        }
        return nil
    }

    /// Runs a server-side command (initdb, pg_ctl) as the server's user, in `directory`.
    func runServerCommand(_ tool: String, _ arguments: [String], in directory: String,
                          timeout: TimeInterval = 120) throws -> (status: Int32, output: String) {
        let command = runAs + [path(tool)] + arguments
        return try SyncCommand.run(command, in: directory, timeout: timeout)
    }

    /// Runs a client tool (createdb, pg_isready) as ourselves.
    func runClientCommand(_ tool: String, _ arguments: [String],
                          timeout: TimeInterval = 60) throws -> (status: Int32, output: String) {
        try SyncCommand.run([path(tool)] + arguments, in: nil, timeout: timeout)
    }
}

/// Blocking process runs with a hard timeout, through posix_spawn and waitpid rather than Foundation's Process:
/// pg_ctl leaves a daemon (postgres) behind that inherits the spawned command's descriptors, and Process
/// notices a child's exit by a descriptor the child holds, so it would wait for the daemon, i.e. forever. Here
/// the child gets only stdin (/dev/null) and stdout/stderr (an output file, not a pipe); every other descriptor
/// of the test process is closed in the child (posix_spawn_file_actions_addclosefrom_np), so nothing of the
/// test runner (e.g. its event-stream pipe) leaks into a server that outlives the command.
enum SyncCommand {
    static func run(_ command: [String], in directory: String?,
                    timeout: TimeInterval) throws -> (status: Int32, output: String) {
        let outputPath = NSTemporaryDirectory() + "/deltahook-pgcmd-\(UUID().uuidString.prefix(8)).out"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let pid = try spawn(command, in: directory, outputPath: outputPath)
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var finished = false
        while Date() < deadline {
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid { finished = true; break }
            if waited < 0, errno != EINTR { throw PostgresServerError("waitpid failed: errno \(errno)") }
            usleep(10_000)
        }
        if !finished {
            kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
            throw PostgresServerError("\(command.joined(separator: " ")) timed out after \(Int(timeout)) s")
        }
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // The wait status: low 7 bits are the terminating signal (0 when it exited), the next byte the exit code.
        let exitCode = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return (exitCode, text)
    }

    /// Starts `command` with stdin from /dev/null and stdout+stderr appended to `outputPath` (or /dev/null), in
    /// `directory`, with ``cleanEnvironment()``; returns its pid, which the caller must reap with waitpid.
    static func spawn(_ command: [String], in directory: String?, outputPath: String?) throws -> pid_t {
        guard let executable = command.first else { throw PostgresServerError("empty command") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let closeFrom = GlibcSpawnExtensions.addCloseFrom { _ = closeFrom(&actions, 3) }
        if let directory, let changeDirectory = GlibcSpawnExtensions.addChdir { _ = changeDirectory(&actions, directory) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with no blocked signals and default dispositions, whatever the test runner set.
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let arguments = command.map { strdup($0) }
        let environment = cleanEnvironment().map { strdup("\($0.key)=\($0.value)") }
        defer {
            arguments.forEach { free($0) }
            environment.forEach { free($0) }
        }
        guard !arguments.contains(where: { $0 == nil }), !environment.contains(where: { $0 == nil }) else {
            throw PostgresServerError("out of memory")
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, arguments + [nil], environment + [nil])
        guard result == 0 else {
            throw PostgresServerError("cannot run \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// Our environment without PG* variables (PGHOST, PGPORT, PGUSER, …), which would point the tools at
    /// another server than the one named on their command line.
    static func cleanEnvironment() -> [String: String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PG") }
    }
}

/// glibc's posix_spawn extensions (addclosefrom_np since 2.34, addchdir_np since 2.29) are not in Swift's Glibc
/// module, so they are looked up at run time; without them the child keeps our descriptors or our directory.
private enum GlibcSpawnExtensions {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }
    static let addChdir: AddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: AddChdir.self) }
}
