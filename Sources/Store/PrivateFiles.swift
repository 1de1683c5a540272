// Private files (docs/DESIGN.md §1, "Secrets and file modes"): the store holds raw records, event bodies and a
// sealed OAuth refresh token, so the state directory is 0700 and the SQLite file with its `-wal` and `-shm` 0600
// — also when deltahook runs from a shell (`poll-once`, `run`) without the unit's `UMask=0077`. The CLI sets
// `umask(077)` at start as well; this is the guard for files that already exist with looser modes.
#if canImport(Glibc)
import Glibc
#endif

public enum PrivateFiles {
    /// The mode of the state directory.
    static let directoryMode: mode_t = 0o700
    /// The mode of `deltahook.sqlite`, `-wal` and `-shm`.
    static let fileMode: mode_t = 0o600
    /// The SQLite file's companions that hold the same data.
    public static let storeSuffixes = ["", "-wal", "-shm"]

    /// Creates `directory` (and its parents) 0700, or tightens an existing one that is group- or world-accessible,
    /// and tightens store files already in it. Returns one warning text per mode it had to tighten, so the caller
    /// can log it: a looser mode means the data was readable by others until now.
    /// - Throws: ``StoreError`` `.privateFiles` naming the path and the failed call.
    @discardableResult
    public static func prepareStateDirectory(_ directory: String) throws -> [String] {
        var warnings: [String] = []
        var info = stat()
        if stat(directory, &info) != 0 {
            try createDirectories(directory)
        } else {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw StoreError(code: .privateFiles(errno: ENOTDIR), message: "the state directory is not a directory",
                                 path: directory, hint: "point state_directory at a directory (or a path to create)")
            }
            if let warning = try tighten(directory, mode: info.st_mode, to: directoryMode) { warnings.append(warning) }
        }
        warnings += try tightenStoreFiles(directory + "/" + StateStore.fileName)
        return warnings
    }

    /// Tightens `deltahook.sqlite`, `-wal` and `-shm` (those that exist) to 0600; returns a warning per file changed.
    @discardableResult
    public static func tightenStoreFiles(_ storePath: String) throws -> [String] {
        var warnings: [String] = []
        for suffix in storeSuffixes {
            let path = storePath + suffix
            var info = stat()
            guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if let warning = try tighten(path, mode: info.st_mode, to: fileMode) { warnings.append(warning) }
        }
        return warnings
    }

    /// The mode bits as `0755`.
    static func octal(_ mode: mode_t) -> String { "0" + String(mode & 0o777, radix: 8) }

    private static func tighten(_ path: String, mode: mode_t, to wanted: mode_t) throws -> String? {
        // Only bits beyond `wanted` are a problem; an owner-only narrower mode (0500) is the operator's choice.
        guard mode & 0o777 & ~wanted != 0 else { return nil }
        guard chmod(path, mode & 0o777 & wanted) == 0 else {
            let code = errno
            throw StoreError(code: .privateFiles(errno: code),
                             message: "cannot make it private (chmod \(octal(wanted))): \(String(cString: strerror(code)))",
                             path: path, hint: "run as the user that owns the state directory, or fix its mode by hand")
        }
        return "\(path) was \(octal(mode)); tightened to \(octal(mode & 0o777 & wanted))"
    }

    private static func createDirectories(_ directory: String) throws {
        var prefix = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, directoryMode) != 0, errno != EEXIST {
                let code = errno
                throw StoreError(code: .privateFiles(errno: code),
                                 message: "cannot create the state directory: \(String(cString: strerror(code)))",
                                 path: prefix, hint: "create it (mode 0700) as the daemon's user, or fix state_directory")
            }
        }
        // mkdir applies the umask; the directory itself must be exactly 0700 whatever the umask was.
        guard chmod(directory, directoryMode) == 0 else {
            let code = errno
            throw StoreError(code: .privateFiles(errno: code),
                             message: "cannot make the state directory 0700: \(String(cString: strerror(code)))",
                             path: directory)
        }
    }
}
