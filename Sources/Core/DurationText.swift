// Durations as the config writes them: "500ms", "30s", "5m", "2h", "5d" (docs/DESIGN.md §6).

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
        let signed = duration.milliseconds
        if signed == 0 { return "0s" }
        var out = signed < 0 ? "-" : ""
        // `magnitude`, not `abs`: abs(Int64.min) traps, and a provider can hand us any wait (docs/DESIGN.md §2 rule 12).
        var ms = signed.magnitude
        let units: [(UInt64, String)] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s"), (1, "ms")]
        for (size, name) in units where ms >= size {
            out += "\(ms / size)\(name)"
            ms %= size
        }
        return out
    }
}

extension Duration {
    /// Whole milliseconds (truncated), saturating at Int64.min/max: a Duration can hold 1000 times more
    /// seconds than Int64 milliseconds, and a provider's `Retry-After` must never trap (docs/DESIGN.md §2 rule 12).
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = ms.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }

    /// A Duration of `seconds` clamped to `[0, limit]`; nil for NaN. Every wait computed from outside input
    /// (a reset epoch minus now, a jittered backoff) goes through here instead of `Int64(Double)`, which traps
    /// on infinity, NaN and anything beyond ±9.2e18 (docs/DESIGN.md §2 rule 12).
    public static func clampedSeconds(_ seconds: Double, limit: Duration) -> Duration? {
        guard !seconds.isNaN else { return nil }
        if seconds <= 0 { return .zero }
        let cap = limit.seconds
        if seconds >= cap { return Swift.max(limit, .zero) }
        // Below the cap (at most Int64.max seconds), so whole milliseconds fit in Int64 unless the cap is absurd.
        let ms = (seconds * 1000).rounded(.up)
        guard ms < 9.0e18 else { return Swift.max(limit, .zero) }
        return .milliseconds(Int64(ms))
    }

    /// Seconds as a Double.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
