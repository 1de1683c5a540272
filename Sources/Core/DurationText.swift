// Durations as the config writes them: "500ms", "30s", "5m", "2h", "5d" (DESIGN §6).

/// Parses and formats the duration strings used in config files.
public enum DurationText {
    /// Parses `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"5d"` and sums like `"1h30m"`. Returns nil when malformed.
    public static func parse(_ text: String) -> Duration? {
        let chars = Array(text.utf8)
        guard !chars.isEmpty else { return nil }
        // Sum in whole milliseconds with overflow checks: config text must never trap the daemon.
        var totalMs: Int64 = 0
        var i = 0
        while i < chars.count {
            var digits = 0
            var number: Int64 = 0
            while i < chars.count, chars[i] >= 0x30, chars[i] <= 0x39 {
                let (m, o1) = number.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int64(chars[i] - 0x30))
                guard !o1, !o2 else { return nil }
                number = a
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            var unit = ""
            while i < chars.count, chars[i] >= 0x61, chars[i] <= 0x7A {
                unit.append(Character(Unicode.Scalar(chars[i])))
                i += 1
            }
            let unitMs: Int64
            switch unit {
            case "ms": unitMs = 1
            case "s": unitMs = 1000
            case "m": unitMs = 60_000
            case "h": unitMs = 3_600_000
            case "d": unitMs = 86_400_000
            default: return nil
            }
            let (part, o3) = number.multipliedReportingOverflow(by: unitMs)
            let (sum, o4) = totalMs.addingReportingOverflow(part)
            guard !o3, !o4 else { return nil }
            totalMs = sum
        }
        return .milliseconds(totalMs)
    }

    /// The shortest config-style text for a duration ("90s" → "1m30s").
    public static func format(_ duration: Duration) -> String {
        var ms = duration.milliseconds
        if ms == 0 { return "0s" }
        var out = ms < 0 ? "-" : ""
        ms = abs(ms)
        let units: [(Int64, String)] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s"), (1, "ms")]
        for (size, name) in units where ms >= size {
            out += "\(ms / size)\(name)"
            ms %= size
        }
        return out
    }
}

extension Duration {
    /// Whole milliseconds (truncated).
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Seconds as a Double.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
