// NetSuite local-time handling (docs/DESIGN.md §2 rule 7, §6 DST rule; provider-wire-facts §2.3).
//
// SuiteQL shows and compares `lastmodifieddate` in the account's time-zone preference, not UTC: TO_CHAR output
// and TO_TIMESTAMP literals are local wall-clock readings. deltahook keeps cursors as UTC instants and converts
// at the boundary with the configured `time_zone`. Two hazards:
// - fall-back: one wall-clock reading names two instants. How NetSuite resolves an ambiguous TO_TIMESTAMP
//   literal is not documented (Oracle's default is standard time, the LATER reading), so a lower bound inside a
//   repeated hour steps back to the last unambiguous second before that hour: re-read, dedupe by hash. That is
//   never later than the earlier reading whichever way the server resolves it.
// - reading a row back: an ambiguous TO_CHAR value is resolved with the sort order (rows arrive ordered by the
//   true instant): the earliest reading not before the previous row. Where that cannot tell, the earlier reading
//   wins, so a cursor errs early (re-read) and never late (loss).
public import Foundation
import Core

/// Converts between UTC instants and the account's wall-clock readings.
public struct NetSuiteClock: Sendable {
    public let zone: TimeZone

    public init(zone: TimeZone) { self.zone = zone }

    /// The wall-clock text of `instant` (whole seconds, truncated), `YYYY-MM-DD HH24:MI:SS`.
    public func local(_ instant: Date) -> String {
        Timestamps.sqlStyle(Self.wholeSeconds(instant), in: zone)
    }

    /// Every instant whose wall-clock reading is `text` (0 in a spring-forward gap, 2 in a fall-back hour),
    /// earliest first. nil when `text` is not `YYYY-MM-DD HH24:MI:SS`.
    public func readings(of text: String) -> [Date]? {
        guard let naive = Timestamps.parseSQLStyle(text) else { return nil }
        return readings(ofNaive: naive)
    }

    func readings(ofNaive naive: Date) -> [Date] {
        let offsets = Set([zone.secondsFromGMT(for: naive.addingTimeInterval(-86_400)),
                           zone.secondsFromGMT(for: naive.addingTimeInterval(86_400)),
                           zone.secondsFromGMT(for: naive),
                           zone.secondsFromGMT(for: naive.addingTimeInterval(-3 * 3600)),
                           zone.secondsFromGMT(for: naive.addingTimeInterval(3 * 3600))])
        return offsets.map { naive.addingTimeInterval(-Double($0)) }
            .filter { Double(zone.secondsFromGMT(for: $0)) == naive.timeIntervalSince($0) }
            .sorted()
    }

    /// Whether the reading of `instant` also names another instant (inside a repeated fall-back hour).
    public func isAmbiguous(_ instant: Date) -> Bool {
        (readings(of: local(instant))?.count ?? 1) > 1
    }

    /// A literal for an inclusive LOWER bound at `instant`: its own reading when that is unambiguous (`exact`),
    /// otherwise the last unambiguous second before the repeated hour (`exact` false: the query re-reads).
    public func lowerBoundLiteral(_ instant: Date) -> (text: String, instant: Date, exact: Bool) {
        let whole = Self.wholeSeconds(instant)
        guard isAmbiguous(whole) else { return (local(whole), whole, true) }
        var probe = whole
        // Coarse then fine, bounded: a repeated period is at most a few hours.
        var steps = 0
        while isAmbiguous(probe) && steps < 48 * 60 { probe.addTimeInterval(-60); steps += 1 }
        while steps > 0 && !isAmbiguous(probe.addingTimeInterval(1)) { probe.addTimeInterval(1) }
        return (local(probe), probe, false)
    }

    /// A literal for an exclusive UPPER bound (window end) at or after `instant`: its own reading when
    /// unambiguous, else the first unambiguous second after the repeated hour.
    public func upperBoundLiteral(_ instant: Date) -> (text: String, instant: Date) {
        var probe = Self.wholeSeconds(instant)
        var steps = 0
        while isAmbiguous(probe) && steps < 48 * 60 { probe.addTimeInterval(60); steps += 1 }
        while steps > 0 && !isAmbiguous(probe.addingTimeInterval(-1)) && probe.addingTimeInterval(-1) >= instant {
            probe.addTimeInterval(-1)
        }
        return (local(probe), probe)
    }

    /// Resolves a TO_CHAR reading to an instant given the previous row's instant (rows arrive ordered by the
    /// true instant): the earliest reading not before `previous`, else the latest reading. nil in a gap.
    public func instant(of text: String, notBefore previous: Date?) -> Date? {
        guard let all = readings(of: text), let first = all.first, let last = all.last else { return nil }
        guard all.count > 1, let previous else { return first }
        return all.first { $0 >= previous } ?? last
    }

    static func wholeSeconds(_ date: Date) -> Date {
        Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
    }
}
