// The shared HTTP client: one libcurl multi handle per event-loop thread.
//
// Why this shape: delivery sends thousands of small POSTs per second to a few receivers, and
// providers poll slowly. A multi handle gives keep-alive across requests (its connection cache is
// shared by every easy handle added to it), and driving it from ONE dedicated thread keeps
// blocking `curl_multi_poll` off Swift's cooperative pool. Requests arrive through a locked inbox,
// `curl_multi_wakeup` interrupts the poll, and results go back through checked continuations.
import CCurl
import Dispatch
import Foundation
import Synchronization

/// libcurl documents `curl_global_init` as not thread-safe; a global `let` is initialised exactly
/// once, atomically, on first use.
private let curlGlobalInitCode: UInt32 = curl_global_init(Int(CURL_GLOBAL_ALL)).rawValue

public final class CurlHTTPClient: HTTPTransport, Sendable {
    public struct Configuration: Sendable {
        /// Idle connections kept open per loop (CURLMOPT_MAXCONNECTS).
        public var maxCachedConnections: Int
        /// Parallel connections per host; 0 = unlimited. Extra requests wait inside curl.
        public var maxConnectionsPerHost: Int
        /// Number of event-loop threads. One is enough for ~10k+ req/s; more only on many cores.
        public var loopThreads: Int
        /// Default `User-Agent` (GitHub rejects requests without one); a request header overrides it.
        public var userAgent: String

        public init(maxCachedConnections: Int = 256, maxConnectionsPerHost: Int = 0, loopThreads: Int = 1,
                    userAgent: String = "deltahook/1") {
            self.maxCachedConnections = maxCachedConnections
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.loopThreads = loopThreads
            self.userAgent = userAgent
        }
    }

    private let loops: [CurlLoop]
    private let nextID = Atomic<UInt64>(1)

    public init(configuration: Configuration = .init()) throws {
        guard curlGlobalInitCode == CURLE_OK.rawValue else {
            throw HTTPClientError(kind: .other, target: "", message: "curl_global_init failed",
                                  curlCode: Int(curlGlobalInitCode))
        }
        var loops: [CurlLoop] = []
        for index in 0..<max(1, configuration.loopThreads) {
            let loop = try CurlLoop(configuration: configuration, index: index)
            loops.append(loop)
        }
        self.loops = loops
        for loop in loops { loop.start() }
    }

    deinit {
        for loop in loops { loop.requestStop() }
    }

    /// Sends one request. Never follows redirects: a 3xx comes back as a response.
    /// Throws `HTTPClientError` for transport failures and `CancellationError` when the task is
    /// cancelled (the transfer is removed from curl at once).
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let loop = loops[Int(id % UInt64(loops.count))]
        let transfer = Transfer(id: id, request: request)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPResponse, any Error>) in
                if transfer.attach(continuation) { loop.submit(transfer) }
            }
        } onCancel: {
            if transfer.cancelBeforeStart() == false { loop.cancel(transfer.id) }
        }
    }

    /// Stops the loop threads; in-flight and later requests fail with `.shutdown`. Safe to call twice.
    public func shutdown() {
        for loop in loops { loop.requestStop() }
        for loop in loops { loop.join() }
    }
}

// MARK: - One request's life inside curl

/// Mutable per-transfer state. Fields below `state` are touched only by the loop thread (and by the
/// curl callbacks it runs), which is why the class is `@unchecked Sendable`.
final class Transfer: @unchecked Sendable {
    enum State {
        case new
        case cancelledEarly
        case running(CheckedContinuation<HTTPResponse, any Error>)
        case finished
    }

    let id: UInt64
    let request: HTTPRequest
    private let state = Mutex<State>(.new)

    var handle: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var connectTo: UnsafeMutablePointer<curl_slist>?
    var bodyBuffer: UnsafeMutableRawBufferPointer?
    var errorBuffer: UnsafeMutablePointer<CChar>?
    var body: [UInt8] = []
    var receivedBytes = 0
    var truncated = false
    var exceededLimit = false
    var headers: [(name: String, value: String)] = []

    init(id: UInt64, request: HTTPRequest) {
        self.id = id
        self.request = request
    }

    /// Returns false (and fails the continuation) if the task was cancelled before submission.
    func attach(_ continuation: CheckedContinuation<HTTPResponse, any Error>) -> Bool {
        let cancelled = state.withLock { state -> Bool in
            if case .cancelledEarly = state { state = .finished; return true }
            state = .running(continuation)
            return false
        }
        if cancelled { continuation.resume(throwing: CancellationError()) }
        return !cancelled
    }

    /// Returns true when cancellation was fully handled here (not yet submitted, or already done).
    func cancelBeforeStart() -> Bool {
        state.withLock { state -> Bool in
            switch state {
            case .new: state = .cancelledEarly; return true
            case .cancelledEarly, .finished: return true
            case .running: return false
            }
        }
    }

    /// Resumes the caller exactly once.
    func finish(_ result: Result<HTTPResponse, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<HTTPResponse, any Error>? in
            if case .running(let continuation) = state { state = .finished; return continuation }
            return nil
        }
        continuation?.resume(with: result)
    }

    func receive(_ bytes: UnsafeRawBufferPointer) -> Int {
        receivedBytes += bytes.count
        if receivedBytes > request.options.maxResponseBytes {
            exceededLimit = true
            return 0 // makes curl abort with CURLE_WRITE_ERROR
        }
        if let cap = request.options.captureLimit {
            let room = max(0, cap - body.count)
            if room < bytes.count { truncated = true }
            body.append(contentsOf: bytes.prefix(room))
        } else {
            body.append(contentsOf: bytes)
        }
        return bytes.count
    }

    func receiveHeaderLine(_ bytes: UnsafeRawBufferPointer) {
        var end = bytes.count
        while end > 0, bytes[end - 1] == 0x0A || bytes[end - 1] == 0x0D { end -= 1 }
        guard end > 0 else { return }
        let line = UnsafeRawBufferPointer(rebasing: bytes[0..<end])
        if line.starts(with: "HTTP/".utf8) {
            headers.removeAll(keepingCapacity: true) // a new response (after 100 Continue) starts over
            return
        }
        guard let colon = line.firstIndex(of: 0x3A) else { return }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<colon]), as: UTF8.self)
        var start = colon + 1
        while start < end, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
        var valueEnd = end
        while valueEnd > start, line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        let value = String(decoding: UnsafeRawBufferPointer(rebasing: line[start..<valueEnd]), as: UTF8.self)
        headers.append((name, value))
    }

    /// Frees per-request C memory. Call only after the easy handle was reset or cleaned up.
    func releaseResources() {
        if let headerList { curl_slist_free_all(headerList) }
        if let connectTo { curl_slist_free_all(connectTo) }
        bodyBuffer?.deallocate()
        errorBuffer?.deallocate()
        headerList = nil
        connectTo = nil
        bodyBuffer = nil
        errorBuffer = nil
        handle = nil
    }
}

// MARK: - The event loop

final class CurlLoop: @unchecked Sendable {
    private struct Inbox {
        var adds: [Transfer] = []
        var cancels: [UInt64] = []
        var stopping = false
        var stopped = false
    }

    private let multi: UnsafeMutableRawPointer
    private let inbox = Mutex(Inbox())
    private let exited = DispatchSemaphore(value: 0)
    private let joined = Mutex(false)
    private let userAgent: String
    private let index: Int

    // Loop-thread only.
    private var active: [UInt64: Transfer] = [:]
    private var byHandle: [UnsafeMutableRawPointer: Transfer] = [:]
    private var pool: [UnsafeMutableRawPointer] = []
    private let poolLimit = 128

    init(configuration: CurlHTTPClient.Configuration, index: Int) throws {
        guard let multi = curl_multi_init() else {
            throw HTTPClientError(kind: .other, target: "", message: "curl_multi_init failed")
        }
        self.multi = multi
        self.userAgent = configuration.userAgent
        self.index = index
        _ = deltahook_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, configuration.maxCachedConnections)
        _ = deltahook_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, configuration.maxConnectionsPerHost)
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "deltahook-curl-\(index)"
        thread.start()
    }

    func submit(_ transfer: Transfer) {
        let rejected = inbox.withLock { inbox -> Bool in
            if inbox.stopping || inbox.stopped { return true }
            let wasIdle = inbox.adds.isEmpty && inbox.cancels.isEmpty
            inbox.adds.append(transfer)
            // Only the first item since the last drain needs a wakeup; called under the lock so the
            // multi handle cannot be cleaned up in between.
            if wasIdle { curl_multi_wakeup(multi) }
            return false
        }
        if rejected {
            transfer.finish(.failure(HTTPClientError(kind: .shutdown, target: transfer.request.url,
                                                     message: "HTTP client was shut down")))
        }
    }

    func cancel(_ id: UInt64) {
        inbox.withLock { inbox in
            guard !inbox.stopped else { return }
            let wasIdle = inbox.adds.isEmpty && inbox.cancels.isEmpty
            inbox.cancels.append(id)
            if wasIdle { curl_multi_wakeup(multi) }
        }
    }

    func requestStop() {
        inbox.withLock { inbox in
            guard !inbox.stopping, !inbox.stopped else { return }
            inbox.stopping = true
            curl_multi_wakeup(multi)
        }
    }

    func join() {
        let first = joined.withLock { joined -> Bool in
            defer { joined = true }
            return !joined
        }
        if first { exited.wait() }
    }

    private func run() {
        while true {
            let (adds, cancels, stopping) = inbox.withLock { inbox in
                defer { inbox.adds.removeAll(keepingCapacity: true); inbox.cancels.removeAll(keepingCapacity: true) }
                return (inbox.adds, inbox.cancels, inbox.stopping)
            }
            for transfer in adds { begin(transfer) }
            for id in cancels {
                guard let transfer = active[id] else { continue }
                detachAndRecycle(transfer)
                transfer.finish(.failure(CancellationError()))
            }
            if stopping { break }
            var running: Int32 = 0
            _ = curl_multi_perform(multi, &running)
            drainCompletions()
            var ready: Int32 = 0
            // curl shortens this to its own next timer; submissions interrupt it via curl_multi_wakeup,
            // so an idle client wakes only every 10 s.
            _ = curl_multi_poll(multi, nil, 0, 10_000, &ready)
        }
        let leftovers = inbox.withLock { inbox -> [Transfer] in
            inbox.stopped = true
            defer { inbox.adds.removeAll() }
            return inbox.adds
        }
        let shutdownError = { (t: Transfer) in
            HTTPClientError(kind: .shutdown, target: t.request.url, message: "HTTP client was shut down")
        }
        for transfer in leftovers { transfer.finish(.failure(shutdownError(transfer))) }
        for transfer in Array(active.values) {
            detachAndRecycle(transfer)
            transfer.finish(.failure(shutdownError(transfer)))
        }
        for handle in pool { curl_easy_cleanup(handle) }
        pool.removeAll()
        curl_multi_cleanup(multi)
        exited.signal()
    }

    private func begin(_ transfer: Transfer) {
        guard let handle = pool.popLast() ?? curl_easy_init() else {
            transfer.finish(.failure(HTTPClientError(kind: .other, target: transfer.request.url,
                                                     message: "curl_easy_init failed")))
            return
        }
        transfer.handle = handle
        do {
            try configure(handle, for: transfer)
        } catch {
            curl_easy_reset(handle)
            transfer.releaseResources()
            recycle(handle)
            transfer.finish(.failure(error))
            return
        }
        let code = curl_multi_add_handle(multi, handle)
        guard code == CURLM_OK else {
            curl_easy_reset(handle)
            transfer.releaseResources()
            recycle(handle)
            transfer.finish(.failure(HTTPClientError(kind: .other, target: transfer.request.url,
                                                     message: String(cString: curl_multi_strerror(code)))))
            return
        }
        active[transfer.id] = transfer
        byHandle[handle] = transfer
    }

    private func drainCompletions() {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle,
                  let transfer = byHandle[handle] else { continue }
            let code = message.pointee.data.result
            let result = outcome(of: transfer, handle: handle, code: code)
            detachAndRecycle(transfer)
            transfer.finish(result)
        }
    }

    private func outcome(of transfer: Transfer, handle: UnsafeMutableRawPointer, code: CURLcode)
        -> Result<HTTPResponse, any Error> {
        guard code == CURLE_OK else {
            var detail = ""
            if let buffer = transfer.errorBuffer, buffer.pointee != 0 { detail = String(cString: buffer) }
            if detail.isEmpty { detail = String(cString: curl_easy_strerror(code)) }
            // UNSUPPORTED_PROTOCOL after a connection was made means a non-HTTP answer (curl calls it
            // "HTTP/0.9 when not allowed"), not a bad URL.
            var ip: UnsafeMutablePointer<CChar>?
            _ = deltahook_curl_getinfo_string(handle, CURLINFO_PRIMARY_IP, &ip)
            let connected = ip.map { $0.pointee != 0 } ?? false
            return .failure(Self.mapError(code, transfer: transfer, detail: detail, connected: connected))
        }
        var status = 0
        _ = deltahook_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        var micros: curl_off_t = 0
        _ = deltahook_curl_getinfo_off(handle, CURLINFO_TOTAL_TIME_T, &micros)
        return .success(HTTPResponse(status: status, headers: HTTPHeaders(transfer.headers), body: transfer.body,
                                     bodyTruncated: transfer.truncated, totalTime: .microseconds(micros)))
    }

    static func mapError(_ code: CURLcode, transfer: Transfer, detail: String, connected: Bool) -> HTTPClientError {
        let kind: HTTPClientError.Kind
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = .dns
        case CURLE_COULDNT_CONNECT: kind = .connect
        case CURLE_OPERATION_TIMEDOUT: kind = .timeout
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE, CURLE_USE_SSL_FAILED, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED,
             CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
             CURLE_SSL_CRL_BADFILE, CURLE_SSL_SHUTDOWN_FAILED:
            kind = .tls
        case CURLE_UNSUPPORTED_PROTOCOL where connected: kind = .other
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: kind = .invalidURL
        case CURLE_FILESIZE_EXCEEDED: kind = .tooLarge
        case CURLE_WRITE_ERROR where transfer.exceededLimit: kind = .tooLarge
        case CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE: kind = .connectionClosed
        default: kind = .other
        }
        var message = detail
        if kind == .tooLarge {
            // Name the setting an operator can change: providers pass the connection's `max_response_bytes`.
            message = "response larger than \(transfer.request.options.maxResponseBytes) bytes (\(detail)); " +
                "if this is expected, lower the object's page_size or raise the connection's max_response_bytes"
        }
        return HTTPClientError(kind: kind, target: transfer.request.url, message: message,
                               curlCode: Int(code.rawValue))
    }

    private func detachAndRecycle(_ transfer: Transfer) {
        guard let handle = transfer.handle else { return }
        curl_multi_remove_handle(multi, handle)
        active[transfer.id] = nil
        byHandle[handle] = nil
        curl_easy_reset(handle) // drops pointers into the transfer's buffers before they are freed
        transfer.releaseResources()
        recycle(handle)
    }

    private func recycle(_ handle: UnsafeMutableRawPointer) {
        if pool.count < poolLimit { pool.append(handle) } else { curl_easy_cleanup(handle) }
    }

    // MARK: Option setup

    private func configure(_ handle: UnsafeMutableRawPointer, for transfer: Transfer) throws {
        let request = transfer.request
        let target = request.url
        func check(_ code: CURLcode, _ what: String) throws {
            guard code == CURLE_OK else {
                let kind: HTTPClientError.Kind = code == CURLE_URL_MALFORMAT ? .invalidURL : .invalidRequest
                throw HTTPClientError(kind: kind, target: target,
                                      message: "\(what): \(String(cString: curl_easy_strerror(code)))",
                                      curlCode: Int(code.rawValue))
            }
        }
        func setString(_ option: CURLoption, _ value: String, _ what: String) throws {
            try check(value.withCString { deltahook_curl_setopt_string(handle, option, $0) }, what)
        }
        func setLong(_ option: CURLoption, _ value: Int) {
            _ = deltahook_curl_setopt_long(handle, option, value)
        }

        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        transfer.errorBuffer = errorBuffer
        _ = deltahook_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))

        guard request.url.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw HTTPClientError(kind: .invalidURL, target: target, message: "URL contains spaces or control characters")
        }
        try setString(CURLOPT_URL, request.url, "URL rejected")
        try setString(CURLOPT_PROTOCOLS_STR, "http,https", "protocol restriction")
        setLong(CURLOPT_NOSIGNAL, 1)
        setLong(CURLOPT_FOLLOWLOCATION, 0) // docs/DESIGN.md §5: never follow redirects
        setLong(CURLOPT_TIMEOUT_MS, Self.milliseconds(request.timeout))
        setLong(CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(request.options.connectTimeout))
        _ = deltahook_curl_setopt_off(handle, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(request.options.maxResponseBytes))
        try setString(CURLOPT_USERAGENT, userAgent, "user agent")
        if request.options.acceptCompressed { try setString(CURLOPT_ACCEPT_ENCODING, "", "accept-encoding") }
        if let caFile = request.options.caFile { try setString(CURLOPT_CAINFO, caFile, "CA file") }

        if let pinned = request.options.pinnedAddress {
            guard !pinned.isEmpty, pinned.utf8.allSatisfy({ $0 == 0x3A || $0 == 0x2E || Self.isHexDigit($0) }) else {
                throw HTTPClientError(kind: .invalidRequest, target: target,
                                      message: "pinned address must be an IP literal")
            }
            // "::ADDR:" = any host, any port of this request connects to ADDR on the URL's port.
            // CONNECT_TO is per handle (unlike CURLOPT_RESOLVE, which would poison the shared DNS
            // cache) and curl only reuses a connection made with the same connect-to target.
            let literal = pinned.contains(":") ? "[\(pinned)]" : pinned
            transfer.connectTo = curl_slist_append(nil, "::\(literal):")
            _ = deltahook_curl_setopt_slist(handle, CURLOPT_CONNECT_TO, transfer.connectTo)
        }

        // Method and body.
        let method = request.method.uppercased()
        guard !method.isEmpty, method.utf8.allSatisfy({ Self.isTokenByte($0) }) else {
            throw HTTPClientError(kind: .invalidRequest, target: target, message: "invalid method \(request.method)")
        }
        var sendsBody = !request.body.isEmpty || method == "POST" || method == "PUT" || method == "PATCH"
        switch method {
        case "GET" where request.body.isEmpty:
            setLong(CURLOPT_HTTPGET, 1)
            sendsBody = false
        case "HEAD":
            setLong(CURLOPT_NOBODY, 1)
            sendsBody = false
        case "POST":
            setLong(CURLOPT_POST, 1)
        default:
            try setString(CURLOPT_CUSTOMREQUEST, method, "method")
        }
        if sendsBody {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, request.body.count), alignment: 1)
            buffer.copyBytes(from: request.body)
            transfer.bodyBuffer = buffer
            setLong(CURLOPT_POST, 1)
            if method != "POST" { try setString(CURLOPT_CUSTOMREQUEST, method, "method") }
            _ = deltahook_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count))
            _ = deltahook_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, buffer.baseAddress)
        }

        // Headers, in order. CR/LF/NUL would allow header injection.
        var list: UnsafeMutablePointer<curl_slist>?
        var hasContentType = false, hasExpect = false
        for (name, value) in request.headers {
            guard !name.isEmpty, name.utf8.allSatisfy({ Self.isTokenByte($0) }),
                  value.utf8.allSatisfy({ $0 != 0x0D && $0 != 0x0A && $0 != 0 }) else {
                if let list { curl_slist_free_all(list) }
                throw HTTPClientError(kind: .invalidRequest, target: target,
                                      message: "invalid header field \(name.utf8.allSatisfy { Self.isTokenByte($0) } ? name : "(bad name)")")
            }
            if name.caseInsensitiveEquals("Content-Type") { hasContentType = true }
            if name.caseInsensitiveEquals("Expect") { hasExpect = true }
            // "Name;" is curl's syntax for sending a header with an empty value.
            let line = value.isEmpty ? "\(name);" : "\(name): \(value)"
            list = curl_slist_append(list, line)
        }
        // curl would add a form Content-Type to POST bodies and Expect: 100-continue to large ones
        // (a wasted round trip); an empty "Name:" removes a curl-generated header.
        if sendsBody && !hasContentType { list = curl_slist_append(list, "Content-Type:") }
        if sendsBody && !hasExpect { list = curl_slist_append(list, "Expect:") }
        transfer.headerList = list
        if let list { _ = deltahook_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, list) }

        // Callbacks get the transfer back through an unretained pointer; `active` keeps it alive.
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        _ = deltahook_curl_setopt_callback(handle, CURLOPT_WRITEFUNCTION) { data, size, count, user in
            guard let user else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            return transfer.receive(UnsafeRawBufferPointer(start: data, count: size * count))
        }
        _ = deltahook_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
        _ = deltahook_curl_setopt_callback(handle, CURLOPT_HEADERFUNCTION) { data, size, count, user in
            guard let user else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }
        _ = deltahook_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context)
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        let ms = seconds.multipliedReportingOverflow(by: 1000)
        guard !ms.overflow else { return Int.max }
        // curl treats 0 as "no timeout": never let a tiny duration turn into that.
        return max(1, Int(ms.partialValue + attoseconds / 1_000_000_000_000_000))
    }

    static func isHexDigit(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)
    }

    /// RFC 9110 token characters (method and field names).
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }
}
