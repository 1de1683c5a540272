// Passwords out of every message: connection strings come from the operator's configuration and may carry a
// password in either form libpq accepts (libpq — "Connection Strings": "Keyword/Value Connection Strings" and
// "Connection URIs"), and our errors end up in logs.
import CPostgres
import Foundation

extension PGConnection {
    /// `url` with every password replaced by `***`: the `user:password@` part of a URI, a `password=` (or
    /// `sslpassword=`) query parameter, and a `password = value` / `password = 'quoted value'` keyword pair.
    /// Everything else (host, port, database, user) is kept so that messages still say where we connected.
    public static func redact(url: String) -> String {
        var hidden: [String] = []
        return redactKeywordValues(redactUserInfo(url, hidden: &hidden), hidden: &hidden)
    }

    /// The password values `redact(url:)` hides, raw and percent-decoded, to scrub from messages that may echo
    /// part of the string (libpq's parser quotes the token it could not parse).
    static func hiddenValues(in url: String) -> [String] {
        var hidden: [String] = []
        _ = redactKeywordValues(redactUserInfo(url, hidden: &hidden), hidden: &hidden)
        let unquoted = hidden.map { value in
            value.count >= 2 && value.hasPrefix("'") && value.hasSuffix("'") ? String(value.dropFirst().dropLast()) : value
        }
        return hidden + unquoted + hidden.compactMap { $0.removingPercentEncoding }
    }

    /// `scheme://user:secret@host…` → `scheme://user:***@host…`. The userinfo ends at the last `@` before the
    /// query: libpq stops at the first `@`, but a password with an unencoded `@` must still be hidden whole.
    private static func redactUserInfo(_ url: String, hidden: inout [String]) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let queryStart = rest.firstIndex(of: "?") ?? url.endIndex
        guard let at = url[scheme.upperBound..<queryStart].lastIndex(of: "@"),
              let colon = url[scheme.upperBound..<at].firstIndex(of: ":") else { return url }
        var redacted = url
        hidden.append(String(url[url.index(after: colon)..<at]))
        redacted.replaceSubrange(url.index(after: colon)..<at, with: "***")
        return redacted
    }

    /// Hides the value after every `password` keyword followed by `=`. In a URI query the value ends at `&` or
    /// `#`; in keyword/value form at whitespace, or at the closing quote of a single-quoted value (where `\'` and
    /// `\\` are escapes).
    private static func redactKeywordValues(_ text: String, hidden: inout [String]) -> String {
        let bytes = Array(text.utf8)
        let key = Array("password".utf8)
        let isURI = text.contains("://")
        let queryStart = isURI ? bytes.firstIndex(of: UInt8(ascii: "?")) : nil
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
        func matchesKey(at index: Int) -> Bool {
            guard index + key.count <= bytes.count else { return false }
            for offset in 0..<key.count where bytes[index + offset] | 0x20 != key[offset] { return false }
            return true
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            guard matchesKey(at: index) else {
                out.append(bytes[index])
                index += 1
                continue
            }
            var cursor = index + key.count
            while cursor < bytes.count, isSpace(bytes[cursor]) { cursor += 1 }
            guard cursor < bytes.count, bytes[cursor] == UInt8(ascii: "=") else {
                out.append(contentsOf: bytes[index..<cursor])
                index = cursor
                continue
            }
            cursor += 1
            let inQuery = queryStart.map { index > $0 } ?? false
            if !inQuery { while cursor < bytes.count, isSpace(bytes[cursor]) { cursor += 1 } }
            out.append(contentsOf: bytes[index..<cursor])
            out.append(contentsOf: Array("***".utf8))
            let valueStart = cursor
            if inQuery {
                while cursor < bytes.count, bytes[cursor] != UInt8(ascii: "&"), bytes[cursor] != UInt8(ascii: "#") {
                    cursor += 1
                }
            } else if cursor < bytes.count, bytes[cursor] == UInt8(ascii: "'") {
                cursor += 1
                while cursor < bytes.count {
                    if bytes[cursor] == UInt8(ascii: "\\") { cursor += 2; continue }
                    if bytes[cursor] == UInt8(ascii: "'") { cursor += 1; break }
                    cursor += 1
                }
            } else {
                while cursor < bytes.count, !isSpace(bytes[cursor]) { cursor += 1 }
            }
            index = min(cursor, bytes.count)
            hidden.append(String(decoding: bytes[valueStart..<index], as: UTF8.self))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The parsed options of a connection string (PQconninfoParse, libpq — "Connection Control Functions"), or
    /// the parser's complaint. Parsing first lets errors name the host and database without printing the string,
    /// and yields the literal password so it can be scrubbed from any message that might echo it.
    static func parseOptions(_ url: String) -> (options: [String: String], problem: String?) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(url, &errorMessage) else {
            let problem = errorMessage.map { String(cString: $0) } ?? "out of memory"
            if let errorMessage { PQfreemem(errorMessage) }
            return ([:], problem)
        }
        defer { PQconninfoFree(parsed) }
        var options: [String: String] = [:]
        var option = parsed
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { options[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        return (options, nil)
    }

    /// `message` with every literal occurrence of the non-empty `secrets` replaced by `***` (an empty search
    /// string is never used: it would match everywhere).
    static func scrub(_ message: String, secrets: [String]) -> String {
        var scrubbed = message
        // Longest first, so a value that contains another is hidden whole.
        for secret in secrets.sorted(by: { $0.count > $1.count }) where !secret.isEmpty {
            scrubbed = scrubbed.replacingOccurrences(of: secret, with: "***")
        }
        return scrubbed
    }
}
