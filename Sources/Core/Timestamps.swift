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
        let c = components(of: date, in: utc)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", c.year, c.month, c.day, c.hour, c.minute, c.second)
    }

    /// RFC 3339 UTC with milliseconds, for logs and `status`.
    public static func rfc3339Milliseconds(_ date: Date) -> String {
        // Round to the nearest millisecond first: truncating the binary fraction printed .122 for .123.
        let totalMs = (date.timeIntervalSince1970 * 1000).rounded()
        let seconds = (totalMs / 1000).rounded(.down)
        let fraction = totalMs - seconds * 1000
        // NaN or an instant beyond Double's integer range has no millisecond part worth printing (and Int(nan) traps).
        let ms = fraction.isFinite && fraction >= 0 && fraction < 1000 ? Int(fraction) : 0
        let c = components(of: Date(timeIntervalSince1970: seconds), in: utc)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", c.year, c.month, c.day, c.hour, c.minute, c.second, ms)
    }

    /// `YYYY-MM-DD HH:MM:SS` in the given zone (ServiceNow raw values are UTC; NetSuite TO_CHAR output is
    /// in the account's zone).
    public static func sqlStyle(_ date: Date, in zone: TimeZone? = nil) -> String {
        let c = components(of: date, in: zone ?? utc)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d", c.year, c.month, c.day, c.hour, c.minute, c.second)
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
        let bytes = Array(text.utf8)
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
        let bytes = Array(text.utf8)
        guard bytes.count == 19, bytes[10] == 0x20 else { return nil }
        guard let naive = parseFields(bytes, separatorIndex: 10) else { return nil }
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

    static func components(of date: Date, in zone: TimeZone) -> Fields {
        var calendar = utcCalendar()
        calendar.timeZone = zone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return Fields(year: c.year ?? 0, month: c.month ?? 0, day: c.day ?? 0, hour: c.hour ?? 0,
                      minute: c.minute ?? 0, second: c.second ?? 0)
    }

    static func digits(_ bytes: [UInt8], _ start: Int, _ count: Int) -> Int? {
        guard start + count <= bytes.count else { return nil }
        var value = 0
        for b in bytes[start..<start + count] {
            guard b >= 0x30, b <= 0x39 else { return nil }
            value = value * 10 + Int(b - 0x30)
        }
        return value
    }

    static func parseFields(_ bytes: [UInt8], separatorIndex: Int) -> Date? {
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
