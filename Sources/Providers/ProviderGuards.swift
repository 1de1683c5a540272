// Checks every adapter applies to a provider's answer before acting on it: provider answers are untrusted input
// (docs/DESIGN.md §2 rules 12, 13, 15 and 16). Written once here so ServiceNow, NetSuite, GitHub and REST cannot
// drift apart: bounded waits, same-origin links, id grammars, and per-record parsing of a records array.
public import Core
public import Foundation
public import HTTPClient
public import Logging

// MARK: - Provider waits (rule 12)

/// Turns a provider's wait hints (`Retry-After`, `x-ratelimit-reset`, a header-less 429 backoff) into a wait in
/// `[0, max_provider_wait]`. A wait beyond the cap is clamped and logged at warning; a negative, non-numeric,
/// zero or past hint counts as absent, so the caller falls back to its normal backoff (docs/DESIGN.md §2 rule 12).
/// The cap exists because a hostile `x-ratelimit-reset: 9223372036854775807` would otherwise stop the
/// connection for 292 billion years — or, before this type, trap the daemon in `Int64(Double)`.
public struct ProviderWaitPolicy: Sendable {
    public let connection: String
    /// The connection's `max_provider_wait` (default 1 h).
    public let maxWait: Duration
    /// Where clamped waits (and adapters' skipped feed rows) are reported; nil in unit tests.
    public let logger: Logger?

    public init(connection: String, maxWait: Duration, logger: Logger? = nil) {
        self.connection = connection
        self.maxWait = max(maxWait, .zero)
        self.logger = logger
    }

    /// Seconds still to wait per a `Retry-After` value (RFC 9110 §10.2.3: delay-seconds or an HTTP-date), or nil
    /// when the value is missing, empty, negative (`-5`, `-0`), non-numeric (`soon`, `1e999`), zero or in the past.
    /// A 20-digit delay is returned as the huge number it is; ``bounded(seconds:source:)`` clamps it.
    public static func retryAfterSeconds(_ value: String?, now: Date) -> Double? {
        guard let text = value?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        if isDigits(text) {
            guard let seconds = Double(text), seconds > 0 else { return nil }
            return seconds
        }
        guard let date = HTTPDate.parse(text) else { return nil }
        let delta = date.timeIntervalSince(now)
        return delta > 0 ? delta : nil
    }

    /// Seconds until an epoch-seconds reset time (GitHub `x-ratelimit-reset`, ServiceNow `X-RateLimit-Reset`), or
    /// nil when missing, not a non-negative integer, or not in the future.
    public static func secondsUntilEpoch(_ value: String?, now: Date) -> Double? {
        guard let text = value?.trimmingCharacters(in: .whitespaces), isDigits(text), let epoch = Double(text) else {
            return nil
        }
        let delta = epoch - now.timeIntervalSince1970
        return delta > 0 && delta.isFinite ? delta : nil
    }

    /// `seconds` as a wait in `[0, maxWait]`; `source` names the header in the warning logged when clamped.
    public func bounded(seconds: Double, source: String) -> Duration {
        let wait = Duration.clampedSeconds(seconds, limit: maxWait) ?? maxWait
        if !(seconds <= maxWait.seconds) {
            logger?.warning("provider wait clamped to max_provider_wait", [
                .connection: connection,
                "DETAIL": "\(source) asked for \(Self.describe(seconds)); waiting \(DurationText.format(maxWait)) "
                    + "(max_provider_wait) instead",
            ])
        }
        return wait
    }

    /// A header-less backoff wait (already bounded by its own cap) bounded by `maxWait` as well.
    public func bounded(_ wait: Duration, source: String) -> Duration {
        bounded(seconds: wait.seconds, source: source)
    }

    /// The `Retry-After` of `headers` as a bounded wait, nil when absent or unusable.
    public func retryAfter(_ headers: HTTPHeaders, now: Date = Date()) -> Duration? {
        Self.retryAfterSeconds(headers["retry-after"], now: now).map { bounded(seconds: $0, source: "Retry-After") }
    }

    /// An epoch reset header of `headers` as a bounded wait (plus `slack` seconds), nil when absent or unusable.
    public func untilEpoch(_ headers: HTTPHeaders, header: String, now: Date = Date(), slack: Double = 0) -> Duration? {
        Self.secondsUntilEpoch(headers[header], now: now).map { bounded(seconds: $0 + slack, source: header) }
    }

    static func isDigits(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    static func describe(_ seconds: Double) -> String {
        seconds < 1e12 ? "\(Int64(seconds.rounded(.up))) s" : "\(seconds) s"
    }
}

// MARK: - Same origin (rule 13)

/// Next-page links come from the provider's answer (a body field, a `Link` header). They are resolved against
/// the connection's `base_url` (RFC 3986 §5, relative links allowed) and must keep its scheme, host and port;
/// otherwise the page fails and no request is sent, because that request would carry the connection's
/// credentials to whoever the link names (docs/DESIGN.md §2 rule 13) — another host, or a cloud metadata
/// address such as 169.254.169.254.
public struct ProviderOrigin: Sendable, Hashable, CustomStringConvertible {
    public let scheme: String
    public let host: String
    public let port: Int

    /// The origin of an absolute http(s) URL, nil for anything else.
    public init?(_ url: URL) {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host?.lowercased(), !host.isEmpty else { return nil }
        self.scheme = scheme
        self.host = host
        port = url.port ?? (scheme == "https" ? 443 : 80)
    }

    public init?(_ text: String) {
        guard let url = URL(string: text) else { return nil }
        self.init(url)
    }

    /// `scheme://host:port` (the port always written, so nothing is left to a default).
    public var description: String {
        let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return "\(scheme)://\(bracketed):\(port)"
    }

    /// Resolves `link` against `base` and returns it as an absolute URL string on `base`'s origin, rebuilt from
    /// that origin and the link's path and query, so curl gets exactly the text we checked. Throws
    /// `ProviderError.malformed` naming the link when it leaves the origin, carries userinfo, or cannot be parsed.
    /// `context` names the connection and object; `field` says where the link came from.
    ///
    /// `relativeTo` is the URL of the response that carried the link (RFC 8288 §3.2 and RFC 3986 §5.1: a relative
    /// reference is relative to the document it came in); nil resolves against `base`. Either way the result must
    /// be on `base`'s origin.
    public static func resolve(link: String, against base: URL, relativeTo: URL? = nil, context: String,
                               field: String) throws -> String {
        func refuse(_ why: String) -> ProviderError {
            .malformed(path: field, message: "\(context): next-page link \"\(Self.clip(link))\" \(why); no request "
                       + "was sent to it (hint: the API must return links on base_url's scheme, host and port)")
        }
        guard let origin = ProviderOrigin(base) else {
            throw ProviderError.configuration(message: "\(context): base_url is not an absolute http(s) URL")
        }
        // Bytes curl and Foundation might read differently (backslashes, spaces, controls, non-ASCII) are refused
        // outright rather than normalized: the link is the provider's, not ours to repair.
        guard !link.isEmpty, link.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) else {
            throw refuse("contains spaces, backslashes, control or non-ASCII characters")
        }
        guard let resolved = URL(string: link, relativeTo: relativeTo ?? base)?.absoluteURL,
              let parts = URLComponents(url: resolved, resolvingAgainstBaseURL: true) else {
            throw refuse("is not a URL")
        }
        guard parts.user == nil, parts.password == nil else { throw refuse("carries userinfo") }
        guard let target = ProviderOrigin(resolved), target == origin else {
            let found = ProviderOrigin(resolved)?.description ?? (resolved.scheme.map { "\($0): URL" } ?? "no origin")
            throw refuse("points at \(found), not base_url's origin \(origin)")
        }
        var path = parts.percentEncodedPath
        if path.isEmpty { path = "/" }
        var text = "\(origin.scheme)://\(parts.percentEncodedHost ?? origin.host)"
        if let port = parts.port { text += ":\(port)" } else if let basePort = base.port { text += ":\(basePort)" }
        text += path
        if let query = parts.percentEncodedQuery { text += "?" + query }
        // Re-check the rebuilt text: it is what goes on the wire.
        guard let rebuilt = ProviderOrigin(text), rebuilt == origin else { throw refuse("does not survive rebuilding") }
        return text
    }

    /// Whether `url` (an absolute URL about to be requested) is on one of `allowed`.
    public static func isAllowed(_ url: String, allowed: [ProviderOrigin]) -> Bool {
        guard let origin = ProviderOrigin(url) else { return false }
        return allowed.contains(origin)
    }

    static func clip(_ text: String) -> String { text.count > 200 ? String(text.prefix(200)) + "…" : text }
}

// MARK: - Id grammars (rule 15)

/// Provider id grammars, checked before an id taken from a response reaches a query or a URL
/// (docs/DESIGN.md §2 rule 15). ServiceNow parses `sysparm_query` after URL decoding, so percent-encoding does not
/// protect an encoded query: a sys_id `abc^ORsys_id>0` put into `sys_id>…` would add an OR clause.
public enum ProviderIDs {
    /// A ServiceNow sys_id: exactly 32 lower-case hex digits (GlideRecord's GUID form).
    public static func isSysID(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// A decimal integer that fits Int64, optionally negative (NetSuite internal ids; some system records are
    /// negative), no sign `+`, no spaces, no leading zeros beyond "0".
    public static func isInteger(_ text: String) -> Bool {
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              digits.count == 1 || digits.first != "0", Int64(text) != nil else { return false }
        return true
    }

    /// A positive decimal integer that fits Int64 (GitHub ids and issue numbers).
    public static func isPositiveInteger(_ text: String) -> Bool {
        isInteger(text) && !text.hasPrefix("-") && text != "0"
    }
}

// MARK: - Per-record parsing (rule 16)

/// One element of a records array: parsed, or refused by the strict JSON parser.
public enum RecordElement: Sendable {
    case parsed(JSONValue)
    case unparseable(RejectedRecord)
}

/// Parses a page whose records sit in an array at `recordsPath`, so that one record the strict parser refuses
/// becomes a per-record reject instead of a page error (docs/DESIGN.md §2 rule 16).
///
/// Why not a lenient JSON parser: `JSONValue` has no form for `1e999` (beyond the double range; it would hash
/// like null) or for a string with invalid UTF-8, and inventing one would let such values reach snapshots and
/// events. Instead the strict parser runs on the whole body first (the fast, usual path). Only when it fails
/// does a structural scan (strings, escapes, brackets; no number or UTF-8 checks) find the byte range of each
/// array element; the envelope (the body with the array emptied) must then parse strictly and every element is
/// parsed strictly on its own. A truncated or non-JSON body fails the structural scan too and stays a page error
/// (retried), as rule 16 asks.
public enum RecordArrayParser {
    /// - Parameters:
    ///   - recordsPath: object keys from the top level to the array (empty: the body is the array).
    ///   - pathText: the array's JSON path for positions (`$.result`, `$`).
    ///   - idPath: where the record id sits inside an element, to name an unparseable record when possible.
    ///   - context: connection and object, for page errors.
    public static func parse(_ body: [UInt8], recordsPath: [String], pathText: String, idPath: [String],
                             context: String) throws -> (envelope: JSONValue, elements: [RecordElement]) {
        let strict = Result { () throws(JSONSyntaxError) -> JSONValue in try JSONValue.parse(body) }
        if case .success(let value) = strict {
            guard let array = value.value(atPath: recordsPath)?.arrayValue else {
                return (value, []) // the caller reports the missing array with its own words
            }
            return (value, array.map { .parsed($0) })
        }
        let strictError: String
        if case .failure(let error) = strict { strictError = error.description } else { strictError = "invalid JSON" }
        let pageError = ProviderError.malformed(path: "$", message: "\(context): \(strictError)")
        let scanner = StructureScanner(bytes: body)
        guard let arrayRange = try? scanner.locate(recordsPath), body[arrayRange.lowerBound] == UInt8(ascii: "["),
              let elementRanges = try? scanner.elements(ofArrayAt: arrayRange) else { throw pageError }
        var envelopeBytes = Array(body[..<arrayRange.lowerBound])
        envelopeBytes += Array("[]".utf8)
        envelopeBytes += body[arrayRange.upperBound...]
        guard let envelope = try? JSONValue.parse(envelopeBytes) else { throw pageError }
        var elements: [RecordElement] = []
        elements.reserveCapacity(elementRanges.count)
        for (index, range) in elementRanges.enumerated() {
            let bytes = Array(body[range])
            do {
                elements.append(.parsed(try JSONValue.parse(bytes)))
            } catch {
                let position = "\(pathText)[\(index)]"
                let id = (try? scanner.locate(idPath, within: range)).flatMap { idRange in
                    (try? JSONValue.parse(Array(body[idRange]))).flatMap { value -> String? in
                        switch value {
                        case .string(let s): s
                        case .integer(let i): String(i)
                        default: nil
                        }
                    }
                }
                let reason = "\(position): the record is not valid JSON on its own (\(error)); the rest of the page was read"
                elements.append(.unparseable(RejectedRecord(id: id, position: position, reason: reason,
                                                            rawExcerpt: String(decoding: bytes, as: UTF8.self))))
            }
        }
        return (envelope, elements)
    }
}

/// A structure-only JSON scanner: finds byte ranges of values by tracking strings, escapes and brackets. It does
/// not validate numbers, literals or UTF-8 (the strict parser does that per value afterwards).
struct StructureScanner {
    struct Failure: Error {}
    let bytes: [UInt8]
    static let maxDepth = 512

    /// The range of the value at `path` (object keys) inside `range` (the whole body by default).
    func locate(_ path: [String], within range: Range<Int>? = nil) throws -> Range<Int> {
        var current = try valueRange(startingAt: range?.lowerBound ?? 0, limit: range?.upperBound ?? bytes.count)
        for key in path {
            guard bytes[current.lowerBound] == UInt8(ascii: "{") else { throw Failure() }
            var found: Range<Int>?
            var i = skipSpace(current.lowerBound + 1, current.upperBound)
            if bytes[i] == UInt8(ascii: "}") { throw Failure() }
            while found == nil {
                let keyRange = try valueRange(startingAt: i, limit: current.upperBound)
                guard bytes[keyRange.lowerBound] == UInt8(ascii: "\""),
                      case .string(let name)? = try? JSONValue.parse(Array(bytes[keyRange])) else { throw Failure() }
                i = skipSpace(keyRange.upperBound, current.upperBound)
                guard i < current.upperBound, bytes[i] == UInt8(ascii: ":") else { throw Failure() }
                let value = try valueRange(startingAt: i + 1, limit: current.upperBound)
                if name == key { found = value; break }
                i = skipSpace(value.upperBound, current.upperBound)
                guard i < current.upperBound, bytes[i] == UInt8(ascii: ",") else { throw Failure() }
                i += 1
            }
            guard let found else { throw Failure() }
            current = found
        }
        return current
    }

    /// The element ranges of the array spanning `range`.
    func elements(ofArrayAt range: Range<Int>) throws -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = skipSpace(range.lowerBound + 1, range.upperBound)
        if i < range.upperBound, bytes[i] == UInt8(ascii: "]") { return [] }
        while true {
            let element = try valueRange(startingAt: i, limit: range.upperBound)
            out.append(element)
            i = skipSpace(element.upperBound, range.upperBound)
            guard i < range.upperBound else { throw Failure() }
            if bytes[i] == UInt8(ascii: "]") { return out }
            guard bytes[i] == UInt8(ascii: ",") else { throw Failure() }
            i += 1
        }
    }

    /// The range of the value starting at the first non-space byte at or after `start`.
    func valueRange(startingAt start: Int, limit: Int) throws -> Range<Int> {
        let first = skipSpace(start, limit)
        guard first < limit else { throw Failure() }
        var i = first
        var depth = 0
        var inString = false
        while i < limit {
            let b = bytes[i]
            if inString {
                if b == UInt8(ascii: "\\") { i += 2; continue }
                if b == UInt8(ascii: "\"") {
                    inString = false
                    if depth == 0 { return first..<(i + 1) }
                }
                i += 1
                continue
            }
            switch b {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > Self.maxDepth { throw Failure() }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                if depth == 0 { return first..<i } // end of a scalar inside a container
                depth -= 1
                if depth == 0 { return first..<(i + 1) }
            case UInt8(ascii: ","), 0x20, 0x09, 0x0A, 0x0D:
                if depth == 0 { return first..<i }
            default: break
            }
            i += 1
        }
        // A scalar may end at the end of its range; an open string or container is a truncated body.
        guard depth == 0, !inString, i > first else { throw Failure() }
        return first..<min(i, limit)
    }

    func skipSpace(_ start: Int, _ limit: Int) -> Int {
        var i = start
        while i < limit, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
        return i
    }
}

/// Thrown by an adapter's row screening to refuse one record; the page goes on (docs/DESIGN.md §2 rule 16).
public struct RecordRejection: Error, Sendable {
    public let record: RejectedRecord

    public init(id: String?, position: String, reason: String, raw: JSONValue) {
        record = RejectedRecord(id: id, position: position, reason: reason, raw: raw)
    }
}

/// `text` cut to 120 characters for an error message (a hostile id can be megabytes long).
func clipped(_ text: String, _ limit: Int = 120) -> String {
    text.count > limit ? String(text.prefix(limit)) + "…" : text
}
