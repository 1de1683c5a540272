// sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET (sd_notify(3), "Notes"). Used for READY=1,
// STATUS=, WATCHDOG=1, RELOADING=1 + MONOTONIC_USEC, STOPPING=1 (docs/DESIGN.md §8).
#if canImport(Glibc)
import Glibc
#endif
import Core

/// Talks to the service manager. Does nothing when the process is not supervised by systemd.
public struct SystemdNotifier: Sendable {
    /// `$NOTIFY_SOCKET`: a path (`/run/systemd/notify`) or an abstract name (`@…`).
    public let socketPath: String?
    /// Half of `$WATCHDOG_USEC` when a watchdog is expected for this process (sd_watchdog_enabled(3)).
    public let watchdogInterval: Duration?

    public init(environment: [String: String]) {
        let path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        socketPath = path
        var interval: Duration? = nil
        if let usecText = environment["WATCHDOG_USEC"], let usec = Int64(usecText), usec > 0 {
            let pidMatches = environment["WATCHDOG_PID"].map { $0 == String(getpid()) } ?? true
            if pidMatches { interval = .microseconds(usec / 2) }
        }
        watchdogInterval = interval
    }

    public var isSupervised: Bool { socketPath != nil }

    /// Sends one state string ("READY=1\nSTATUS=…"). Failures are ignored, as sd_notify(3) recommends.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        guard let socketPath, let first = socketPath.utf8.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "@"),
              let address = UnixSocketAddress(socketPath),
              let socket = try? UnixDatagramSocket() else { return false }
        // Never block the caller (the watchdog loop) on a full receive queue: a lost datagram is better than
        // a daemon stuck in sendto.
        return (try? socket.send(Array(state.utf8), to: address, wait: false)) != nil
    }

    public func ready(status: String) { notify("READY=1\nSTATUS=\(Self.oneLine(status))") }
    public func status(_ text: String) { notify("STATUS=\(Self.oneLine(text))") }
    public func watchdog() { notify("WATCHDOG=1") }
    public func stopping(status: String) { notify("STOPPING=1\nSTATUS=\(Self.oneLine(status))") }

    /// RELOADING=1 with the CLOCK_MONOTONIC timestamp systemd ≥ 253 expects (252 ignores it).
    public func reloading() {
        notify("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())")
    }

    /// CLOCK_MONOTONIC in microseconds. Swift's ContinuousClock is CLOCK_BOOTTIME on Linux, so it is not
    /// the clock systemd compares against.
    public static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }

    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
