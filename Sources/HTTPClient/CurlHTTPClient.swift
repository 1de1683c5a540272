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
    let userAgent: String
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
}
