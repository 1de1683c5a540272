// Value types shared by every user of the HTTP client (providers, delivery, tests with fakes).
import Core

/// Per-request knobs. Defaults suit provider polling; delivery sets `captureLimit` and `pinnedAddress`.
public struct HTTPRequestOptions: Sendable, Equatable {
    /// Time allowed to establish TCP (+TLS) before `.connect`/`.timeout`.
    public var connectTimeout: Duration
    /// Hard cap on the decoded response body; beyond it the transfer is aborted with `.tooLarge`
    /// (decoded size, so a gzip bomb is stopped too).
    public var maxResponseBytes: Int
    /// Keep only the first N body bytes (delivery keeps ~4 KB for debugging); the rest is read and
    /// discarded so the connection stays reusable. `nil` keeps everything up to `maxResponseBytes`.
    public var captureLimit: Int?
    /// PEM CA bundle to trust instead of the system store (self-signed test servers, private CAs).
    public var caFile: String?
    /// Connect to this vetted IP literal instead of resolving the URL's host (SSRF guard: DNS cannot
    /// change between the check and the connect). TLS SNI and verification still use the URL's host.
    public var pinnedAddress: String?
    /// Advertise gzip/deflate and let curl decode transparently.
    public var acceptCompressed: Bool

    public init(connectTimeout: Duration = .seconds(10), maxResponseBytes: Int = 8 << 20,
                captureLimit: Int? = nil, caFile: String? = nil, pinnedAddress: String? = nil,
                acceptCompressed: Bool = true) {
        self.connectTimeout = connectTimeout
        self.maxResponseBytes = maxResponseBytes
        self.captureLimit = captureLimit
        self.caFile = caFile
        self.pinnedAddress = pinnedAddress
        self.acceptCompressed = acceptCompressed
    }
}

/// One HTTP request. Headers keep their order and may repeat.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Total time allowed for the whole exchange (connect + send + receive).
    public var timeout: Duration
    public var options: HTTPRequestOptions

    public init(method: String = "GET", url: String, headers: [(name: String, value: String)] = [],
                body: [UInt8] = [], timeout: Duration = .seconds(30), options: HTTPRequestOptions = .init()) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.options = options
    }
}

/// Ordered response headers with case-insensitive lookup (HTTP field names are case-insensitive,
/// RFC 9110 §5.1) and access to repeated fields.
public struct HTTPHeaders: Sendable, Sequence {
    public private(set) var entries: [(name: String, value: String)]

    public init(_ entries: [(name: String, value: String)] = []) { self.entries = entries }

    /// First value of the field, or nil.
    public subscript(name: String) -> String? {
        for entry in entries where entry.name.caseInsensitiveEquals(name) { return entry.value }
        return nil
    }

    /// Every value of the field, in order (e.g. several `Set-Cookie` or `Link` lines).
    public func values(_ name: String) -> [String] {
        entries.filter { $0.name.caseInsensitiveEquals(name) }.map(\.value)
    }

    public mutating func append(name: String, value: String) { entries.append((name, value)) }

    public var count: Int { entries.count }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { entries.makeIterator() }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    /// Decoded body (possibly cut at `captureLimit`, see `bodyTruncated`).
    public var body: [UInt8]
    /// True when `captureLimit` cut the stored body short.
    public var bodyTruncated: Bool
    /// Wall time of the exchange as measured by curl.
    public var totalTime: Duration

    public init(status: Int, headers: HTTPHeaders = .init(), body: [UInt8] = [], bodyTruncated: Bool = false,
                totalTime: Duration = .zero) {
        self.status = status
        self.headers = headers
        self.body = body
        self.bodyTruncated = bodyTruncated
        self.totalTime = totalTime
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// A failed exchange. `target` is scheme://host[:port]/path only: query strings and userinfo can
/// carry secrets and are never kept.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        case dns, connect, tls, timeout, tooLarge, invalidURL, refusedAddress
        /// The peer closed or reset the connection before a complete response (retryable).
        case connectionClosed
        /// Header names/values with CR/LF or other request-building problems.
        case invalidRequest
        /// The client was shut down before the request finished.
        case shutdown
        case other
    }

    public var kind: Kind
    public var target: String
    public var message: String
    /// The libcurl result code when the error came from curl.
    public var curlCode: Int?

    public init(kind: Kind, target: String, message: String, curlCode: Int? = nil) {
        self.kind = kind
        self.target = URLRedaction.redact(target)
        self.message = message
        self.curlCode = curlCode
    }

    public var description: String {
        var text = "HTTP \(kind.rawValue) error for \(target): \(message)"
        if let curlCode { text += " (curl \(curlCode))" }
        return text
    }
}

/// What providers and delivery depend on, so their tests can substitute a fake transport.
public protocol HTTPTransport: Sendable {
    func send(_ request: HTTPRequest) async throws -> HTTPResponse
}

extension String {
    func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = utf8, b = other.utf8
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where x != y {
            let lx = (x >= 65 && x <= 90) ? x + 32 : x
            let ly = (y >= 65 && y <= 90) ? y + 32 : y
            if lx != ly { return false }
        }
        return true
    }
}
