// One poller per state directory. Two processes that poll the same objects into the same store (a second
// `deltahook run`, or `poll-once` beside the daemon) would interleave cursor writes; event ids keep that from
// duplicating deliveries, but cycles would re-read and fight over resume positions. An advisory lock on
// `deltahook.lock` beside the store says who polls. The kernel drops it when the process dies (even kill -9),
// so a crash never leaves a stale lock. Readers (`status`, `events`, …) never take it.
#if canImport(Glibc)
import Glibc
#endif

public final class PollerLock: Sendable {
    public static let fileName = "deltahook.lock"
    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Takes the lock of `directory` without waiting. Returns nil when another process holds it.
    /// - Throws: ``StoreError`` when the lock file cannot be opened (a permission problem, a missing directory).
    public static func acquire(directory: String) throws -> PollerLock? {
        let path = directory + "/" + fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            throw StoreError(code: .lockFile(errno: code), message: "cannot open the poller lock: \(String(cString: strerror(code)))",
                             path: path, hint: "run as the user that owns the state directory")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK { return nil }
            throw StoreError(code: .lockFile(errno: code), message: "cannot lock: \(String(cString: strerror(code)))",
                             path: path)
        }
        return PollerLock(descriptor: fd)
    }

    deinit { close(descriptor) }
}
