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
                var connection = Connection(fd: fd, number: number, server: self)
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

    fileprivate var stopping: Bool { isStopping }

    fileprivate func respond(to request: HTTPServerRequest) -> HTTPServerResponse? {
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

    fileprivate func countServed() { served.add(1, ordering: .relaxed) }
}

// MARK: - One connection

private struct Connection {
    let fd: Int32
    let number: Int
    let server: HTTPServer
    var buffer: [UInt8] = []
    var start = 0
    /// recv() target, so reading costs one copy of what arrived and nothing more.
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)

    init(fd: Int32, number: Int, server: HTTPServer) {
        self.fd = fd
        self.number = number
        self.server = server
    }

    enum ParseFailure: Error { case closed, badRequest(String), tooLarge(Int, String) }

    mutating func run() {
        defer { scratch.deallocate() }
        buffer.reserveCapacity(16 << 10)
        while !server.stopping {
            let request: HTTPServerRequest
            do {
                guard let next = try readRequest() else { return }
                request = next
            } catch ParseFailure.badRequest(let why) {
                sendSimple(400, why)
                return
            } catch ParseFailure.tooLarge(let status, let why) {
                sendSimple(status, why)
                return
            } catch {
                return
            }
            guard let response = server.respond(to: request) else { return }
            if let delay = response.delay, !sleepInterruptibly(delay) { return }
            server.countServed()
            if let takeover = response.takeover {
                takeover(HTTPServerConnection(fd: fd), request)
                return
            }
            let closeAfter = wantsClose(request) || response.headers.contains {
                asciiCaseInsensitiveEquals($0.name, "Connection") && $0.value.lowercased().contains("close")
            }
            guard write(serializeResponse(response, for: request, close: closeAfter)) else { return }
            if closeAfter { return }
        }
    }

    func wantsClose(_ request: HTTPServerRequest) -> Bool {
        let connection = request.headers["Connection"]?.lowercased() ?? ""
        if request.version == "HTTP/1.0" { return !connection.contains("keep-alive") }
        return connection.contains("close")
    }

    func sendSimple(_ status: Int, _ text: String) {
        let response = HTTPServerResponse.text(text + "\n", status: status)
        let request = HTTPServerRequest(method: "GET", target: "", path: "", rawQuery: "", query: [],
                                        headers: .init(), body: [])
        _ = write(serializeResponse(response, for: request, close: true))
    }

    func sleepInterruptibly(_ duration: Duration) -> Bool {
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            if server.stopping { return false }
            let left = deadline - ContinuousClock.now
            let slice = min(left, .milliseconds(20))
            let (s, a) = slice.components
            if s > 0 || a > 0 { usleep(UInt32(s * 1_000_000 + a / 1_000_000_000_000)) }
        }
        return !server.stopping
    }

    func write(_ bytes: [UInt8]) -> Bool { HTTPServerConnection(fd: fd).write(bytes) }

    /// Reads more bytes into the buffer; false on EOF, error or idle timeout.
    mutating func fill() -> Bool {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 32 << 10 {
            buffer.removeFirst(start)
            start = 0
        }
        while true {
            let n = recv(fd, scratch.baseAddress, scratch.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
            return true
        }
    }

    func find(_ pattern: [UInt8], from: Int) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        var i = max(from, start)
        let last = buffer.count - pattern.count
        while i <= last {
            if buffer[i] == pattern[0] {
                var match = true
                for k in 1..<pattern.count where buffer[i + k] != pattern[k] { match = false; break }
                if match { return i }
            }
            i += 1
        }
        return nil
    }

    /// Reads one request; nil when the peer closed cleanly between requests.
    mutating func readRequest() throws(ParseFailure) -> HTTPServerRequest? {
        let crlfcrlf: [UInt8] = [13, 10, 13, 10]
        // Offsets relative to `start`: fill() may compact the buffer and move it.
        var scanned = 0
        var headerEnd: Int
        while true {
            if let found = find(crlfcrlf, from: start + scanned) { headerEnd = found; break }
            scanned = max(0, buffer.count - start - 3)
            if buffer.count - start > server.limits.maxHeaderBytes {
                throw .tooLarge(431, "request header larger than \(server.limits.maxHeaderBytes) bytes")
            }
            if !fill() {
                if buffer.count == start { return nil }
                throw .closed
            }
        }
        if headerEnd - start > server.limits.maxHeaderBytes {
            throw .tooLarge(431, "request header larger than \(server.limits.maxHeaderBytes) bytes")
        }
        let head = String(decoding: buffer[start..<headerEnd], as: UTF8.self)
        start = headerEnd + 4
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw .badRequest("empty request") }
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else {
            throw .badRequest("malformed request line")
        }
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(lines.count)
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex,
                  line.first?.isWhitespace != true else { throw .badRequest("malformed header line") }
            let name = String(line[..<colon])
            let value = Self.trimmedFieldValue(line[line.index(after: colon)...])
            fields.append((name, value))
        }
        let headers = HTTPServerHeaders(fields)
        let method = String(requestLine[0])
        let target = String(requestLine[1])
        let version = String(requestLine[2])

        // Body: chunked wins over Content-Length only if both are absent ambiguity; both = 400 (RFC 9112 §6.3).
        let transferEncoding = headers["Transfer-Encoding"]?.lowercased()
        let contentLength = headers["Content-Length"]
        var body: [UInt8] = []
        if let transferEncoding, transferEncoding.contains("chunked") {
            guard contentLength == nil else { throw .badRequest("both Transfer-Encoding and Content-Length") }
            sendContinueIfExpected(headers)
            body = try readChunked()
        } else if let contentLength {
            guard let length = Int(contentLength), length >= 0 else { throw .badRequest("bad Content-Length") }
            guard length <= server.limits.maxBodyBytes else {
                throw .tooLarge(413, "request body larger than \(server.limits.maxBodyBytes) bytes")
            }
            if buffer.count - start < length { sendContinueIfExpected(headers) }
            while buffer.count - start < length {
                if !fill() { throw .closed }
            }
            body = Array(buffer[start..<(start + length)])
            start += length
        }

        let path: Substring, rawQuery: Substring
        if let q = target.firstIndex(of: "?") {
            path = target[..<q]
            rawQuery = target[target.index(after: q)...]
        } else {
            path = target[...]
            rawQuery = ""
        }
        return HTTPServerRequest(method: method, target: target, path: percentDecode(path, plusAsSpace: false),
                                 rawQuery: String(rawQuery), query: parseQuery(rawQuery), headers: headers,
                                 body: body, connection: .init(version: version, number: number))
    }

    /// A field value without surrounding whitespace, as `trimmingCharacters(in: .whitespaces)` gives it. The
    /// usual optional whitespace (SP, HTAB) is trimmed on the UTF-8 bytes; only a value that then starts or ends
    /// with a non-ASCII scalar (which may be a Unicode space `.whitespaces` trims) goes through Foundation. The
    /// Foundation call on every header line was 6 % of the delivery benchmark's CPU, whose receiver is this
    /// server (issue 17).
    static func trimmedFieldValue(_ text: Substring) -> String {
        let utf8 = text.utf8
        var lower = utf8.startIndex
        var upper = utf8.endIndex
        while lower < upper, utf8[lower] == 0x20 || utf8[lower] == 0x09 { lower = utf8.index(after: lower) }
        while lower < upper {
            let last = utf8.index(before: upper)
            guard utf8[last] == 0x20 || utf8[last] == 0x09 else { break }
            upper = last
        }
        // Only ASCII bytes were skipped, so both ends sit on scalar boundaries.
        let core = String(Substring(utf8[lower..<upper]))
        guard lower < upper, utf8[lower] >= 0x80 || utf8[utf8.index(before: upper)] >= 0x80 else { return core }
        return core.trimmingCharacters(in: .whitespaces)
    }

    func sendContinueIfExpected(_ headers: HTTPServerHeaders) {
        if headers["Expect"]?.lowercased() == "100-continue" {
            _ = write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
    }

    mutating func readLine() throws(ParseFailure) -> String {
        var scanned = 0
        while true {
            if let end = find([13, 10], from: start + scanned) {
                let line = String(decoding: buffer[start..<end], as: UTF8.self)
                start = end + 2
                return line
            }
            scanned = max(0, buffer.count - start - 1)
            if buffer.count - start > 8 << 10 { throw .badRequest("chunk line too long") }
            if !fill() { throw .closed }
        }
    }

    mutating func readChunked() throws(ParseFailure) -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let line = try readLine()
            let sizeText = line.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard let size = Int(sizeText, radix: 16), size >= 0 else { throw .badRequest("bad chunk size") }
            if size == 0 {
                while try !readLine().isEmpty {} // trailers
                return body
            }
            guard body.count + size <= server.limits.maxBodyBytes else {
                throw .tooLarge(413, "request body larger than \(server.limits.maxBodyBytes) bytes")
            }
            while buffer.count - start < size + 2 {
                if !fill() { throw .closed }
            }
            body += buffer[start..<(start + size)]
            guard buffer[start + size] == 13, buffer[start + size + 1] == 10 else { throw .badRequest("bad chunk end") }
            start += size + 2
        }
    }
}
