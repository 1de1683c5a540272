// UTC instants and the textual forms providers and subscribers use.
// Cursors are UTC instants taken from source data (docs/DESIGN.md §2 rule 7); every conversion is explicit here.
public import Foundation

/// Formatting and parsing of the timestamp forms deltahook meets. All parsing is strict and UTC unless a
/// zone is given; nothing depends on the machine's locale or time zone.
public enum Timestamps {
    private static let utc = TimeZone(identifier: "UTC") ?? TimeZone(secondsFromGMT: 0)!

    private static func utcCalendar() -> Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = utc
        return calendar
    }

    /// RFC 3339 UTC with second precision: `2026-11-29T06:00:01Z` (the event `timestamp`, `occurred_at`).
    public static func rfc3339(_ date: Date) -> String {
        let c = fields(of: date, offset: 0)
        return text(c, dateTimeSeparator: UInt8(ascii: "T"), milliseconds: nil, zulu: true)
    }

    /// RFC 3339 UTC with milliseconds, for logs and `status`.
    public static func rfc3339Milliseconds(_ date: Date) -> String {
        // Round to the nearest millisecond first: truncating the binary fraction printed .122 for .123.
        let totalMs = (date.timeIntervalSince1970 * 1000).rounded()
        let seconds = (totalMs / 1000).rounded(.down)
        let fraction = totalMs - seconds * 1000
        // NaN or an instant beyond Double's integer range has no millisecond part worth printing (and Int(nan) traps).
        let ms = fraction.isFinite && fraction >= 0 && fraction < 1000 ? Int(fraction) : 0
        let c = fields(of: Date(timeIntervalSince1970: seconds), offset: 0)
        return text(c, dateTimeSeparator: UInt8(ascii: "T"), milliseconds: ms, zulu: true)
    }

    /// `YYYY-MM-DD HH:MM:SS` in the given zone (ServiceNow raw values are UTC; NetSuite TO_CHAR output is
    /// in the account's zone).
    public static func sqlStyle(_ date: Date, in zone: TimeZone? = nil) -> String {
        let c: Fields
        if let zone { c = fields(of: date, offset: zone.secondsFromGMT(for: date), zone: zone) } else { c = fields(of: date, offset: 0) }
        return text(c, dateTimeSeparator: 0x20, milliseconds: nil, zulu: false)
    }

    // MARK: the accepted range (docs/DESIGN.md §2 rule 12)

    /// 1970-01-01T00:00:00Z, the earliest instant a parser accepts.
    public static let earliest = Date(timeIntervalSince1970: 0)
    /// 10000-01-01T00:00:00Z, the first instant a parser refuses.
    public static let endOfYear9999 = Date(timeIntervalSince1970: 253_402_300_800)

    /// Whether `date` lies in years 1970–9999. Source timestamps outside are malformed (docs/DESIGN.md §2 rule 12):
    /// nothing real was modified before the Unix epoch or after year 9999, and every instant inside the range
    /// converts exactly to Int64 milliseconds and formats as four-digit years.
    public static func isInRange(_ date: Date) -> Bool {
        let t = date.timeIntervalSince1970
        return t >= 0 && t < endOfYear9999.timeIntervalSince1970
    }

    /// The instant `seconds` after the epoch, nil outside years 1970–9999 (never traps, whatever the input).
    public static func date(unixSeconds seconds: Int64) -> Date? {
        guard seconds >= 0, seconds < 253_402_300_800 else { return nil }
        return Date(timeIntervalSince1970: Double(seconds))
    }

    /// The instant `milliseconds` after the epoch, nil outside years 1970–9999.
    public static func date(unixMilliseconds milliseconds: Int64) -> Date? {
        guard milliseconds >= 0, milliseconds < 253_402_300_800_000 else { return nil }
        return Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    /// Parses RFC 3339 / ISO 8601 (`2026-11-29T06:00:01Z`, `…+02:00`, fractional seconds allowed).
    /// nil outside years 1970–9999 (after applying the offset).
    public static func parseRFC3339(_ text: String) -> Date? {
        guard let date = parseRFC3339Unchecked(text), isInRange(date) else { return nil }
        return date
    }

    private static func parseRFC3339Unchecked(_ text: String) -> Date? {
        // Parsed in place from the string's UTF-8 storage: no array per timestamp (two per GitHub record).
        var text = text
        return text.withUTF8 { parseRFC3339Bytes($0) }
    }

    private static func parseRFC3339Bytes(_ bytes: UnsafeBufferPointer<UInt8>) -> Date? {
        guard bytes.count >= 20, bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t") || bytes[10] == 0x20
        else { return nil }
        guard let base = parseFields(bytes, separatorIndex: 10) else { return nil }
        var i = 19
        var fraction = 0.0
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            let start = i
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                fraction += Double(bytes[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        guard i < bytes.count else { return nil }
        var offsetSeconds = 0
        switch bytes[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            guard i + 1 == bytes.count else { return nil }
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard i + 6 == bytes.count, bytes[i + 3] == UInt8(ascii: ":"),
                  let h = digits(bytes, i + 1, 2), let m = digits(bytes, i + 4, 2), h < 24, m < 60 else { return nil }
            offsetSeconds = (h * 3600 + m * 60) * (bytes[i] == UInt8(ascii: "-") ? -1 : 1)
        default: return nil
        }
        return base.addingTimeInterval(fraction - Double(offsetSeconds))
    }

    /// Parses `YYYY-MM-DD HH:MM:SS` as a wall-clock time in `zone` (UTC by default).
    /// For a local time that occurs twice (DST fall-back) the earlier instant is returned; for one that does
    /// not exist (spring-forward gap) nil is returned.
    public static func parseSQLStyle(_ text: String, in zone: TimeZone? = nil) -> Date? {
        var text = text
        let naive = text.withUTF8 { bytes -> Date? in
            guard bytes.count == 19, bytes[10] == 0x20 else { return nil }
            return parseFields(bytes, separatorIndex: 10)
        }
        guard let naive else { return nil }
        guard let zone, zone.secondsFromGMT(for: naive) != 0 || zone.identifier != "UTC" else {
            return isInRange(naive) ? naive : nil
        }
        return localToUTC(naive, zone: zone).flatMap { isInRange($0) ? $0 : nil }
    }

    /// Interprets `naive` (a wall-clock reading encoded as if it were UTC) in `zone`; earlier reading on overlap.
    public static func localToUTC(_ naive: Date, zone: TimeZone) -> Date? {
        // Try both offsets in effect around that wall time, earliest first.
        let candidates = Set([zone.secondsFromGMT(for: naive.addingTimeInterval(-86_400)),
                              zone.secondsFromGMT(for: naive.addingTimeInterval(86_400)),
                              zone.secondsFromGMT(for: naive)])
            .map { naive.addingTimeInterval(-Double($0)) }
            .filter { Double(zone.secondsFromGMT(for: $0)) == naive.timeIntervalSince($0) }
            .sorted()
        return candidates.first
    }

    /// Unix seconds, truncated; saturating at Int64.min/max (NaN gives 0) instead of trapping like `Int64(Double)`.
    public static func unixSeconds(_ date: Date) -> Int64 { saturatingInt64(date.timeIntervalSince1970.rounded(.down)) }

    /// Unix milliseconds, truncated; saturating like ``unixSeconds(_:)``.
    public static func unixMilliseconds(_ date: Date) -> Int64 {
        saturatingInt64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// `Int64(value)` without the trap: NaN → 0, beyond the range → Int64.min/max.
    public static func saturatingInt64(_ value: Double) -> Int64 {
        if value.isNaN { return 0 }
        if value >= 9_223_372_036_854_775_807.0 { return .max } // 2^63 exactly, not representable in Int64
        if value < -9_223_372_036_854_775_808.0 { return .min }
        return Int64(value)
    }

    // MARK: helpers

    struct Fields { var year, month, day, hour, minute, second: Int }

    /// Instants from 1900-01-01T00:00:00Z up to (not including) 10000-01-01T00:00:00Z are converted by arithmetic
    /// (``civilFields(unixSeconds:)``); outside that — before 1900, where Foundation's Gregorian calendar and a
    /// zone's local mean time get historical, beyond year 9999, NaN — by Foundation's Calendar as before. Both give
    /// the same fields inside the range (Tests/CoreTests/TimeTests.swift compares them).
    static let arithmeticRange: Range<Double> = -2_208_988_800..<253_402_300_800

    /// The wall-clock fields of `date` shifted by `offset` seconds (the zone's offset at that instant, 0 for UTC).
    /// The formatters used to go through Calendar.dateComponents and String(format:) — about 5 % of the daemon's
    /// CPU per record (issue 17), for a conversion that is a few integer divisions.
    static func fields(of date: Date, offset: Int, zone: TimeZone? = nil) -> Fields {
        let t = date.timeIntervalSince1970
        guard arithmeticRange.contains(t) else { return components(of: date, in: zone ?? utc) }
        let shifted = Int64(t.rounded(.down)) + Int64(offset)
        return civilFields(unixSeconds: shifted)
    }

    /// UTC fields of whole Unix seconds (days to civil date: Howard Hinnant's algorithm, exact for any Int64 day
    /// count that fits; the caller keeps to years 1900–9999 plus a zone offset).
    static func civilFields(unixSeconds t: Int64) -> Fields {
        let days = t >= 0 ? t / 86_400 : (t - 86_399) / 86_400
        let secondOfDay = Int(t - days * 86_400)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        let year = Int(yoe + era * 400) + (month <= 2 ? 1 : 0)
        return Fields(year: year, month: month, day: day, hour: secondOfDay / 3600, minute: secondOfDay / 60 % 60,
                      second: secondOfDay % 60)
    }

    /// `YYYY-MM-DD?HH:MM:SS[.mmm][Z]` written byte by byte (what `%04d-%02d…` printed: zero-padded, a year beyond
    /// four digits in full, a negative year with its sign).
    static func text(_ c: Fields, dateTimeSeparator: UInt8, milliseconds: Int?, zulu: Bool) -> String {
        guard (0...9999).contains(c.year) else {
            // Only reachable through the Calendar fallback; rare enough for String(format:).
            var out = String(format: "%04d-%02d-%02d", c.year, c.month, c.day)
            out += String(decoding: [dateTimeSeparator], as: UTF8.self)
            out += String(format: "%02d:%02d:%02d", c.hour, c.minute, c.second)
            if let milliseconds { out += String(format: ".%03d", milliseconds) }
            return zulu ? out + "Z" : out
        }
        let count = 19 + (milliseconds == nil ? 0 : 4) + (zulu ? 1 : 0)
        return String(unsafeUninitializedCapacity: count) { buffer in
            var i = 0
            func put(_ value: Int, _ width: Int) {
                var v = value
                var k = width - 1
                while k >= 0 {
                    buffer[i + k] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
                    v /= 10
                    k -= 1
                }
                i += width
            }
            func byte(_ b: UInt8) { buffer[i] = b; i += 1 }
            put(c.year, 4); byte(UInt8(ascii: "-")); put(c.month, 2); byte(UInt8(ascii: "-")); put(c.day, 2)
            byte(dateTimeSeparator)
            put(c.hour, 2); byte(UInt8(ascii: ":")); put(c.minute, 2); byte(UInt8(ascii: ":")); put(c.second, 2)
            if let milliseconds { byte(UInt8(ascii: ".")); put(milliseconds, 3) }
            if zulu { byte(UInt8(ascii: "Z")) }
            return i
        }
    }

    /// Foundation's conversion: the reference the arithmetic path is tested against, and the fallback outside
    /// ``arithmeticRange``.
    static func components(of date: Date, in zone: TimeZone) -> Fields {
        var calendar = utcCalendar()
        calendar.timeZone = zone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return Fields(year: c.year ?? 0, month: c.month ?? 0, day: c.day ?? 0, hour: c.hour ?? 0,
                      minute: c.minute ?? 0, second: c.second ?? 0)
    }

    static func digits(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> Int? {
        guard start + count <= bytes.count else { return nil }
        var value = 0
        for b in bytes[start..<start + count] {
            guard b >= 0x30, b <= 0x39 else { return nil }
            value = value * 10 + Int(b - 0x30)
        }
        return value
    }

    static func parseFields(_ bytes: UnsafeBufferPointer<UInt8>, separatorIndex: Int) -> Date? {
        guard bytes.count >= 19, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
              let y = digits(bytes, 0, 4), let mo = digits(bytes, 5, 2), let d = digits(bytes, 8, 2),
              let h = digits(bytes, 11, 2), let mi = digits(bytes, 14, 2), let s = digits(bytes, 17, 2),
              (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61 else { return nil }
        // Days from civil (Howard Hinnant's algorithm): exact, no Calendar, no locale.
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let mp = (mo + 9) % 12
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        guard daysInMonth(y, mo) >= d else { return nil }
        return Date(timeIntervalSince1970: Double(days * 86_400 + h * 3600 + mi * 60 + s))
    }

    static func daysInMonth(_ year: Int, _ month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
