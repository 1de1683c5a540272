// Request/response values of the loopback HTTP/1.1 server (emulators, metrics listener, demo).

/// Request header fields in arrival order, looked up case-insensitively (RFC 9110 §5.1).
public struct HTTPServerHeaders: Sendable, Sequence {
    public private(set) var entries: [(name: String, value: String)]

    public init(_ entries: [(name: String, value: String)] = []) { self.entries = entries }

    public subscript(name: String) -> String? {
        for entry in entries where asciiCaseInsensitiveEquals(entry.name, name) { return entry.value }
        return nil
    }

    public func values(_ name: String) -> [String] {
        entries.filter { asciiCaseInsensitiveEquals($0.name, name) }.map(\.value)
    }

    public var count: Int { entries.count }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { entries.makeIterator() }
}

public struct HTTPServerRequest: Sendable {
    public var method: String
    /// The request-target exactly as sent (path plus `?query`).
    public var target: String
    /// Percent-decoded path without the query.
    public var path: String
    /// The undecoded query string without `?` ("" when absent) — for emulators that echo it.
    public var rawQuery: String
    /// Query items in order, percent-decoded, `+` read as a space (form encoding).
    public var query: [(name: String, value: String)]
    public var headers: HTTPServerHeaders
    public var body: [UInt8]
    /// "HTTP/1.1" or "HTTP/1.0".
    public var version: String
    /// Sequence number of the TCP connection this request came on (1-based), for keep-alive tests.
    public var connectionNumber: Int

    /// Where a request came from: the protocol version it was sent with and the connection it came on.
    public struct Connection: Sendable {
        public var version: String
        public var number: Int

        public init(version: String = "HTTP/1.1", number: Int = 0) {
            self.version = version
            self.number = number
        }
    }

    public init(method: String, target: String, path: String, rawQuery: String,
                query: [(name: String, value: String)], headers: HTTPServerHeaders, body: [UInt8],
                connection: Connection = Connection()) {
        self.method = method
        self.target = target
        self.path = path
        self.rawQuery = rawQuery
        self.query = query
        self.headers = headers
        self.body = body
        self.version = connection.version
        self.connectionNumber = connection.number
    }

    /// First value of a query parameter.
    public func queryValue(_ name: String) -> String? { query.first { $0.name == name }?.value }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

public struct HTTPServerResponse: Sendable {
    public var status: Int
    /// Content-Length and Transfer-Encoding are computed by the server and ignored here;
    /// `Connection: close` is honoured.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Wait this long before answering (slow-server tests); interrupted by `stop()`.
    public var delay: Duration?
    /// Instead of this answer, hand the connection to the closure (after `delay`); the server closes it afterwards.
    /// The server has no faults of its own: the emulators build theirs on this (`Emulators/ConnectionFault`).
    public var takeover: (@Sendable (HTTPServerConnection, HTTPServerRequest) -> Void)?

    public init(status: Int = 200, headers: [(name: String, value: String)] = [], body: [UInt8] = [],
                delay: Duration? = nil, takeover: (@Sendable (HTTPServerConnection, HTTPServerRequest) -> Void)? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.delay = delay
        self.takeover = takeover
    }

    public static func text(_ text: String, status: Int = 200) -> HTTPServerResponse {
        HTTPServerResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")],
                           body: Array(text.utf8))
    }

    public static func json(_ bytes: [UInt8], status: Int = 200,
                            headers: [(name: String, value: String)] = []) -> HTTPServerResponse {
        HTTPServerResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: bytes)
    }
}

func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    let x = a.utf8, y = b.utf8
    guard x.count == y.count else { return false }
    for (p, q) in zip(x, y) where p != q {
        let lp = (p >= 65 && p <= 90) ? p + 32 : p
        let lq = (q >= 65 && q <= 90) ? q + 32 : q
        if lp != lq { return false }
    }
    return true
}

/// Percent-decoding; malformed escapes are kept literally rather than rejected (lenient like most
/// servers). `plusAsSpace` for query components (application/x-www-form-urlencoded).
func percentDecode<S: StringProtocol>(_ text: S, plusAsSpace: Bool) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(text.utf8.count)
    let bytes = Array(text.utf8)
    var i = 0
    func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }
    while i < bytes.count {
        let b = bytes[i]
        if b == 0x25, i + 2 < bytes.count, let hi = hex(bytes[i + 1]), let lo = hex(bytes[i + 2]) {
            out.append(hi << 4 | lo)
            i += 3
        } else {
            out.append(plusAsSpace && b == 0x2B ? 0x20 : b)
            i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}

func parseQuery(_ raw: Substring) -> [(name: String, value: String)] {
    guard !raw.isEmpty else { return [] }
    return raw.split(separator: "&", omittingEmptySubsequences: true).map { item in
        if let eq = item.firstIndex(of: "=") {
            return (percentDecode(item[..<eq], plusAsSpace: true),
                    percentDecode(item[item.index(after: eq)...], plusAsSpace: true))
        }
        return (percentDecode(item, plusAsSpace: true), "")
    }
}

func reasonPhrase(_ status: Int) -> String {
    switch status {
    case 100: return "Continue"
    case 200: return "OK"
    case 201: return "Created"
    case 202: return "Accepted"
    case 204: return "No Content"
    case 301: return "Moved Permanently"
    case 302: return "Found"
    case 304: return "Not Modified"
    case 307: return "Temporary Redirect"
    case 308: return "Permanent Redirect"
    case 400: return "Bad Request"
    case 401: return "Unauthorized"
    case 403: return "Forbidden"
    case 404: return "Not Found"
    case 405: return "Method Not Allowed"
    case 408: return "Request Timeout"
    case 409: return "Conflict"
    case 410: return "Gone"
    case 413: return "Content Too Large"
    case 422: return "Unprocessable Content"
    case 429: return "Too Many Requests"
    case 431: return "Request Header Fields Too Large"
    case 500: return "Internal Server Error"
    case 501: return "Not Implemented"
    case 502: return "Bad Gateway"
    case 503: return "Service Unavailable"
    case 504: return "Gateway Timeout"
    default: return "Status \(status)"
    }
}

public struct HTTPServerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
