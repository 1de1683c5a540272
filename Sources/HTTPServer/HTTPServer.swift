// A small blocking-socket HTTP/1.1 server for loopback use: test emulators, the daemon's
// /metrics + /healthz listener and `deltahook demo`.
//
// Why threads and blocking sockets: a thread per connection with a synchronous handler serves a
// keep-alive client with one recv + one send per request and no executor hops, which is what the
// delivery benchmark needs from its receiver. Async handlers are bridged with one Task per request.
import Dispatch
import Foundation
import Glibc
import Synchronization

public final class HTTPServer: Sendable {
    /// How requests are handled. `.sync` runs on the connection thread (fastest: receivers, metrics);
    /// `.async` runs in a Task while the connection thread waits.
    public enum Handler: Sendable {
        case sync(@Sendable (HTTPServerRequest) -> HTTPServerResponse)
        case async(@Sendable (HTTPServerRequest) async -> HTTPServerResponse)
    }

    public struct Limits: Sendable {
        public var maxHeaderBytes: Int
        public var maxBodyBytes: Int
        public var maxConnections: Int
        /// A keep-alive connection idle this long is closed.
        public var idleTimeout: Duration

        public init(maxHeaderBytes: Int = 64 << 10, maxBodyBytes: Int = 16 << 20, maxConnections: Int = 512,
                    idleTimeout: Duration = .seconds(30)) {
            self.maxHeaderBytes = maxHeaderBytes
            self.maxBodyBytes = maxBodyBytes
            self.maxConnections = maxConnections
            self.idleTimeout = idleTimeout
        }
    }

    public let host: String
    /// The bound port (the real one when 0 was asked for).
    public let port: UInt16
    public let limits: Limits

    private let handler: Handler
    private let listenFD: Int32
    private let registry = Mutex(Registry())
    private let accepted = Atomic<Int>(0)
    private let served = Atomic<Int>(0)
    private let acceptExited = DispatchSemaphore(value: 0)
    private let connectionsDone = DispatchGroup()

    private struct Registry {
        var stopping = false
        var stopped = false
        var open: Set<Int32> = []
    }

    /// Binds `host:port` (IP literal or "localhost"; port 0 picks a free one) and starts serving.
    public init(host: String = "127.0.0.1", port: UInt16 = 0, limits: Limits = .init(), handling handler: Handler) throws {
        self.host = host
        self.limits = limits
        self.handler = handler
        (listenFD, self.port) = try Self.bind(host: host, port: port)
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "deltahook-http-accept"
        thread.start()
    }

    /// Convenience for an async handler.
    public convenience init(host: String = "127.0.0.1", port: UInt16 = 0, limits: Limits = .init(),
                            handler: @escaping @Sendable (HTTPServerRequest) async -> HTTPServerResponse) throws {
        try self.init(host: host, port: port, limits: limits, handling: .async(handler))
    }

    /// "http://host:port" (IPv6 literals bracketed).
    public var baseURL: String { host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)" }

    /// TCP connections accepted so far (keep-alive tests compare this with the request count).
    public var acceptedConnections: Int { accepted.load(ordering: .relaxed) }
    /// Requests answered so far (including those whose connection a handler took over).
    public var servedRequests: Int { served.load(ordering: .relaxed) }
    public var openConnections: Int { registry.withLock { $0.open.count } }

    /// Closes the listener and every connection, then waits for the threads (async handlers still
    /// running are cancelled; waits at most ~5 s for them). Safe to call more than once. The server's
    /// threads keep it alive until this is called, so every server must be stopped. Do not call it
    /// from inside a handler (it would wait for its own thread for those 5 s).
    public func stop() {
        let first = registry.withLock { registry -> Bool in
            guard !registry.stopping else { return false }
            registry.stopping = true
            for fd in registry.open { shutdown(fd, Int32(SHUT_RDWR)) }
            return true
        }
        guard first else { return }
        shutdown(listenFD, Int32(SHUT_RDWR)) // wakes accept() on Linux
        acceptExited.wait()
        close(listenFD)
        _ = connectionsDone.wait(timeout: .now() + .seconds(5))
        registry.withLock { $0.stopped = true }
    }

    private var isStopping: Bool { registry.withLock { $0.stopping } }

    // MARK: Accepting

    private static func bind(host: String, port: UInt16) throws -> (Int32, UInt16) {
        let address = host == "localhost" ? "127.0.0.1" : host
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        let family: Int32
        if inet_pton(AF_INET, address, &v4.sin_addr) == 1 {
            family = AF_INET
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
        } else if inet_pton(AF_INET6, address, &v6.sin6_addr) == 1 {
            family = AF_INET6
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
        } else {
            throw HTTPServerError(message: "cannot listen on \(host): not an IP literal (use 127.0.0.1 or ::1)")
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HTTPServerError(message: "socket(): \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound: Int32 = family == AF_INET
            ? withUnsafePointer(to: &v4) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            : withUnsafePointer(to: &v6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        guard bound == 0, listen(fd, 1024) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw HTTPServerError(message: "cannot listen on \(host):\(port): \(reason)")
        }
        var actual = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            getsockname(fd, $0, &length) } }
        // sin_port and sin6_port sit at the same offset.
        return (fd, UInt16(bigEndian: actual.sin6_port))
    }

    private func acceptLoop() {
        defer { acceptExited.signal() }
        var connectionNumber = 0
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if isStopping { return }
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS {
                    usleep(10_000)
                    continue
                }
                return
            }
            let admitted = registry.withLock { registry -> Bool in
                guard !registry.stopping, registry.open.count < limits.maxConnections else { return false }
                registry.open.insert(fd)
                return true
            }
            guard admitted else {
                close(fd)
                if isStopping { return }
                continue
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            connectionNumber += 1
            accepted.add(1, ordering: .relaxed)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let (seconds, attos) = limits.idleTimeout.components
            var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int(attos / 1_000_000_000_000))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            connectionsDone.enter()
            let number = connectionNumber
            let thread = Thread { [self] in
                var connection = ServerConnection(fd: fd, number: number, server: self)
                connection.run()
                registry.withLock { _ = $0.open.remove(fd) }
                close(fd)
                connectionsDone.leave()
            }
            thread.name = "deltahook-http-conn"
            thread.stackSize = 1 << 20 // handlers may parse deeply nested JSON
            thread.start()
        }
    }

    // MARK: Used by connections

    var stopping: Bool { isStopping }

    func respond(to request: HTTPServerRequest) -> HTTPServerResponse? {
        switch handler {
        case .sync(let handle):
            return handle(request)
        case .async(let handle):
            let box = Mutex<HTTPServerResponse?>(nil)
            let done = DispatchSemaphore(value: 0)
            let task = Task.detached {
                let response = await handle(request)
                box.withLock { $0 = response }
                done.signal()
            }
            while done.wait(timeout: .now() + .milliseconds(100)) == .timedOut {
                if isStopping {
                    task.cancel()
                    return nil
                }
            }
            return box.withLock { $0 }
        }
    }

    func countServed() { served.add(1, ordering: .relaxed) }
}
