// Small parsers for response headers every provider and the delivery retry policy need.
public import Foundation
import Core
import Glibc

public enum RetryAfter {
    /// Parses `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. A date in the past
    /// yields `.zero`. Returns nil for anything else (callers then use their own back-off).
    /// Capping (docs/DESIGN.md §5: at most 1 h) is the caller's policy.
    public static func parse(_ value: String, now: Date = Date()) -> Duration? {
        let text = value.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return nil }
        if text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            guard let seconds = Int64(text) else { return .seconds(Int64.max) } // absurdly long: caller caps
            return .seconds(seconds)
        }
        guard let date = HTTPDate.parse(text) else { return nil }
        let delta = date.timeIntervalSince(now)
        return delta <= 0 ? .zero : .milliseconds(Timestamps.saturatingInt64((delta * 1000).rounded(.up)))
    }
}

public enum HTTPDate {
    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// Parses the three HTTP-date forms (RFC 9110 §5.6.7): IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`,
    /// obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` and asctime `Sun Nov  6 08:49:37 1994`.
    /// Manual parsing: DateFormatter depends on locale data and is slow.
    public static func parse(_ text: String) -> Date? {
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
        var day: Int?, month: Int?, year: Int?, clock: (Int, Int, Int)?
        if tokens.count == 4, tokens[3] == "GMT" {
            // RFC 850: weekday, dd-Mon-yy time GMT
            let dmy = tokens[1].split(separator: "-")
            guard dmy.count == 3 else { return nil }
            day = Int(dmy[0]); month = monthIndex(String(dmy[1])); year = Int(dmy[2]); clock = parseClock(tokens[2])
            if let y = year, y < 100 { year = y < 70 ? 2000 + y : 1900 + y }
        } else if tokens.count == 6, tokens[5] == "GMT" {
            day = Int(tokens[1]); month = monthIndex(tokens[2]); year = Int(tokens[3]); clock = parseClock(tokens[4])
        } else if tokens.count == 5 {
            month = monthIndex(tokens[1]); day = Int(tokens[2]); clock = parseClock(tokens[3]); year = Int(tokens[4])
        }
        guard let day, let month, let year, let clock, (1...31).contains(day), year >= 1900, year < 10000 else {
            return nil
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(clock.0)
        parts.tm_min = Int32(clock.1)
        parts.tm_sec = Int32(clock.2)
        let seconds = timegm(&parts)
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }

    /// Formats an IMF-fixdate (`Date`, `Retry-After`, `Last-Modified` headers in emulators).
    public static func format(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(weekdays[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(monthNames[Int(parts.tm_mon)]) " +
            "\(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }

    private static func monthIndex(_ text: String) -> Int? { months.firstIndex(of: text.lowercased()) }

    private static func parseClock(_ text: String) -> (Int, Int, Int)? {
        let parts = text.split(separator: ":")
        guard parts.count == 3, let h = Int(parts[0]), let m = Int(parts[1]), let s = Int(parts[2]),
              (0...23).contains(h), (0...59).contains(m), (0...60).contains(s) else { return nil }
        return (h, m, s)
    }
}

public enum LinkHeader {
    /// Parses RFC 8288 `Link` values into rel → URL. Handles GitHub's `<u>; rel="next", <u>; rel="last"`
    /// and ServiceNow's spaceless `<u>;rel="next",<u>;rel="last"`; commas inside `<...>` or quotes
    /// do not split. A `rel` with several space-separated values maps each of them. First wins.
    public static func parse(_ value: String) -> [String: String] { parse([value]) }

    /// Same, for a header that arrived on several lines.
    public static func parse(_ values: [String]) -> [String: String] {
        var result: [String: String] = [:]
        for value in values {
            let chars = Array(value.unicodeScalars)
            var i = 0
            while i < chars.count {
                while i < chars.count, chars[i] != "<" { i += 1 }
                guard i < chars.count else { break }
                i += 1
                let urlStart = i
                while i < chars.count, chars[i] != ">" { i += 1 }
                guard i < chars.count else { break }
                let url = String(String.UnicodeScalarView(chars[urlStart..<i]))
                i += 1
                // Parameters up to the next top-level comma.
                var params = ""
                var inQuotes = false
                while i < chars.count {
                    let c = chars[i]
                    if c == "\"" { inQuotes.toggle() }
                    if c == ",", !inQuotes { break }
                    params.unicodeScalars.append(c)
                    i += 1
                }
                for param in params.split(separator: ";") {
                    let pair = param.split(separator: "=", maxSplits: 1)
                    guard pair.count == 2,
                          pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "rel" else { continue }
                    var rel = pair[1].trimmingCharacters(in: .whitespaces)
                    if rel.hasPrefix("\""), rel.hasSuffix("\""), rel.count >= 2 { rel = String(rel.dropFirst().dropLast()) }
                    for name in rel.split(separator: " ") where result[name.lowercased()] == nil {
                        result[name.lowercased()] = url
                    }
                }
            }
        }
        return result
    }
}
