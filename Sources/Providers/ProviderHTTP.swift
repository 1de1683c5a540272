// Shared HTTP plumbing for provider adapters: send a request, map transport failures and error statuses to
// ProviderError (which the engine turns into scheduling decisions), parse JSON bodies with a JSON-path
// context, and remember consecutive header-less 429s for exponential backoff with jitter (docs/DESIGN.md §2 rule 9).
public import Config
public import Core
public import HTTPClient
public import Foundation
public import Logging
import Synchronization

/// A parsed provider response.
public struct ProviderResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    /// The body as JSON; a syntax error becomes `ProviderError.malformed` naming `context` and line/column.
    public func json(context: String) throws -> JSONValue {
        do {
            return try JSONValue.parse(body)
        } catch {
            throw ProviderError.malformed(path: "$", message: "\(context): \(error.description)")
        }
    }
}

/// Backoff for rate limits that come without `Retry-After` (ServiceNow without a rate-limit rule, GitHub
/// secondary limits without headers, NetSuite's concurrency 429): exponential from `base`, capped, with
/// ±20 % jitter; reset on success. One instance per connection, because limits are per account.
public final class RateLimitBackoff: Sendable {
    private let failures = Mutex(0)
    public let base: Duration
    public let cap: Duration

    public init(base: Duration = .seconds(2), cap: Duration = .seconds(300)) {
        self.base = base
        self.cap = cap
    }

    /// The wait for the next consecutive header-less 429.
    public func nextWait() -> Duration {
        let n = failures.withLock { count -> Int in
            count += 1
            return count
        }
        var seconds = base.seconds
        for _ in 1..<min(n, 16) { seconds *= 2 }
        seconds = min(seconds, cap.seconds)
        seconds *= Double.random(in: 0.8...1.2)
        return Duration.clampedSeconds(seconds, limit: cap + cap / 5) ?? cap
    }

    public func reset() { failures.withLock { $0 = 0 } }
}

/// Sends provider requests through the shared transport and classifies failures.
public struct ProviderHTTP: Sendable {
    public let transport: any HTTPTransport
    /// Names the connection in every error ("acme-snow").
    public let connection: String
    public let userAgent: String
    public let timeout: Duration
    /// The connection's `limits`: `max_response_bytes` caps every response, `max_provider_wait` every wait.
    public let limits: ConnectionLimits
    /// Bounds `Retry-After`, reset times and header-less backoff to `[0, max_provider_wait]` (docs/DESIGN.md §2 rule 12).
    public let waits: ProviderWaitPolicy
    /// Origins requests may go to: the connection's `base_url` (and so its token URL, which lives there for every
    /// provider). Empty only in unit tests that build a ProviderHTTP by hand. A request elsewhere is refused
    /// before anything is sent, so credentials cannot leave the origin even if a link check were missed
    /// (docs/DESIGN.md §2 rule 13).
    public let allowedOrigins: [ProviderOrigin]
    /// The process's scrubber (the logger's), where authenticators register every token they mint so no error
    /// body echoing one reaches a log, `status` or the store (docs/DESIGN.md §1). nil without a logger (unit tests).
    public var scrubber: SecretScrubber? { waits.logger?.scrubber }

    public init(transport: any HTTPTransport, connection: String, userAgent: String = "deltahook/1",
                timeout: Duration = .seconds(60), limits: ConnectionLimits = .defaults,
                allowedOrigins: [ProviderOrigin] = [], logger: Logger? = nil) {
        self.transport = transport
        self.connection = connection
        self.userAgent = userAgent
        self.timeout = timeout
        self.limits = limits
        self.allowedOrigins = allowedOrigins
        waits = ProviderWaitPolicy(connection: connection, maxWait: limits.maxProviderWait, logger: logger)
    }

    /// The same connection's HTTP settings with another user agent or timeout (GitHub, NetSuite set their own).
    public func with(userAgent: String? = nil, timeout: Duration? = nil) -> ProviderHTTP {
        ProviderHTTP(transport: transport, connection: connection, userAgent: userAgent ?? self.userAgent,
                     timeout: timeout ?? self.timeout, limits: limits, allowedOrigins: allowedOrigins,
                     logger: waits.logger)
    }

    /// Sends `request` with the User-Agent set and the response capped at `max_response_bytes`. Transport
    /// failures become `.transport`, an over-cap body `.responseTooLarge` (the engine halves the page size,
    /// docs/DESIGN.md §2 rule 18); cancellation passes through untouched so shutdown stops at once.
    public func send(method: String = "GET", url: String, headers: [(name: String, value: String)] = [],
                     body: [UInt8] = []) async throws -> ProviderResponse {
        if !allowedOrigins.isEmpty, !ProviderOrigin.isAllowed(url, allowed: allowedOrigins) {
            throw ProviderError.configuration(message: "\(connection): refusing to send a request to "
                + "\(URLRedaction.redact(url)): only base_url's origin (\(allowedOrigins.map(\.description).joined(separator: ", "))) "
                + "receives this connection's credentials")
        }
        var allHeaders = headers
        if !allHeaders.contains(where: { $0.name.lowercased() == "user-agent" }) {
            allHeaders.append((name: "User-Agent", value: userAgent))
        }
        let options = HTTPRequestOptions(maxResponseBytes: limits.maxResponseBytes)
        let request = HTTPRequest(method: method, url: url, headers: allHeaders, body: body, timeout: timeout,
                                  options: options)
        do {
            let response = try await transport.send(request)
            return ProviderResponse(status: response.status, headers: response.headers, body: response.body)
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as HTTPClientError {
            if error.kind == .tooLarge {
                throw ProviderError.responseTooLarge(limit: limits.maxResponseBytes,
                                                     message: "\(connection): \(error.description)")
            }
            throw ProviderError.transport(message: "\(connection): \(error.description)")
        }
    }

    /// The `Retry-After` header as a wait in `[0, max_provider_wait]`, when present, positive and parseable
    /// (seconds or a future HTTP-date); clamping is logged (docs/DESIGN.md §2 rule 12).
    public func retryAfter(_ headers: HTTPHeaders, now: Date = Date()) -> Duration? {
        waits.retryAfter(headers, now: now)
    }

    /// A short, single-line excerpt of an error body for logs and `status` (never a whole page).
    public static func excerpt(_ body: [UInt8], limit: Int = 300) -> String {
        let text = String(decoding: body.prefix(limit), as: UTF8.self)
        let line = text.map { $0 == "\n" || $0 == "\r" ? " " : $0 }
        return String(line) + (body.count > limit ? "…" : "")
    }
}

extension JSONValue {
    /// Follows a dot path (`result`, `data.items`) through objects.
    public func value(atPath path: [String]) -> JSONValue? {
        var current: JSONValue? = self
        for key in path { current = current?[key] }
        return current
    }
}

/// Reads typed fields from a provider record, naming the JSON path on failure.
public struct FieldReader: Sendable {
    public let record: JSONValue
    /// JSON path of `record` within the response (`$.result[3]`), used in errors.
    public let path: String

    public init(_ record: JSONValue, path: String) {
        self.record = record
        self.path = path
    }

    /// A required non-empty string field (numbers are accepted and printed, as ids sometimes are).
    public func requiredString(_ key: String) throws -> String {
        switch record[key] {
        case .string(let s) where !s.isEmpty: return s
        case .integer(let i): return String(i)
        case .none, .null?: throw ProviderError.malformed(path: "\(path).\(key)", message: "missing required field")
        case .some(let other):
            throw ProviderError.malformed(path: "\(path).\(key)", message: "expected a non-empty string, found \(other.typeName)")
        }
    }

    /// A string field, or nil when absent, null or "".
    public func optionalString(_ key: String) -> String? {
        switch record[key] {
        case .string(let s) where !s.isEmpty: return s
        case .integer(let i): return String(i)
        default: return nil
        }
    }

    /// A required timestamp parsed by `parse`, with the expected format named in the error.
    public func requiredTimestamp(_ key: String, format: String, _ parse: (String) -> Date?) throws -> Date {
        let text = try requiredString(key)
        guard let date = parse(text) else {
            throw ProviderError.malformed(path: "\(path).\(key)", message: "\"\(text)\" is not a \(format) timestamp")
        }
        return date
    }
}
