// One request's life inside curl: the per-transfer state the event loop (CurlHTTPClient.swift) drives.
import CCurl
import Foundation
import Synchronization

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
