// Durations (docs/DESIGN.md §6) and timestamps (docs/DESIGN.md §2 rule 7).
import Foundation
import Testing
import Core

@Suite struct DurationTextTests {
    @Test func parsesEveryUnitAndSums() {
        #expect(DurationText.parse("500ms") == .milliseconds(500))
        #expect(DurationText.parse("30s") == .seconds(30))
        #expect(DurationText.parse("5m") == .seconds(300))
        #expect(DurationText.parse("2h") == .seconds(7200))
        #expect(DurationText.parse("5d") == .seconds(432_000))
        #expect(DurationText.parse("1h30m") == .seconds(5400))
        #expect(DurationText.parse("0s") == .zero)
    }

    @Test func rejectsMalformedAndOverflowingText() {
        for bad in ["", "5", "m", "5x", "1.5s", "-5s", " 5s", "5s ", "5S", "h1", "99999999999999999999s",
                    "9999999999999999d", "999999999999999999h"] {
            #expect(DurationText.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func formatsShortestAndRoundTrips() {
        #expect(DurationText.format(.seconds(90)) == "1m30s")
        #expect(DurationText.format(.zero) == "0s")
        #expect(DurationText.format(.milliseconds(1500)) == "1s500ms")
        #expect(DurationText.format(.seconds(36_000)) == "10h")
        #expect(DurationText.format(.seconds(90_061)) == "1d1h1m1s")
        for text in ["5s", "5m", "2h", "5d", "1h30m", "250ms", "1d1h1m1s"] {
            #expect(DurationText.parse(text).map(DurationText.format) == text)
        }
    }
}

@Suite struct TimestampTests {
    static let la = TimeZone(identifier: "America/Los_Angeles")!
    static let instant = Date(timeIntervalSince1970: 1_795_932_001)  // 2026-11-29T06:00:01Z

    @Test func rfc3339RoundTrip() {
        #expect(Timestamps.rfc3339(Self.instant) == "2026-11-29T06:00:01Z")
        #expect(Timestamps.parseRFC3339("2026-11-29T06:00:01Z") == Self.instant)
        #expect(Timestamps.parseRFC3339(Timestamps.rfc3339(Self.instant)) == Self.instant)
        #expect(Timestamps.rfc3339(Date(timeIntervalSince1970: -1)) == "1969-12-31T23:59:59Z")
    }

    @Test func rfc3339OffsetsAndFractions() throws {
        #expect(Timestamps.parseRFC3339("2026-11-29T08:00:01+02:00") == Self.instant)
        #expect(Timestamps.parseRFC3339("2026-11-28T22:00:01-08:00") == Self.instant)
        #expect(Timestamps.parseRFC3339("2026-11-29t06:00:01z") == Self.instant)
        #expect(Timestamps.parseRFC3339("2026-11-30T05:59:01+23:59") == Self.instant)
        let fractional = try #require(Timestamps.parseRFC3339("2026-11-29T06:00:01.5Z"))
        #expect(fractional.timeIntervalSince(Self.instant) == 0.5)
        let millis = try #require(Timestamps.parseRFC3339("2026-11-29T06:00:01.123Z"))
        #expect(Timestamps.rfc3339Milliseconds(millis) == "2026-11-29T06:00:01.123Z")
        #expect(Timestamps.rfc3339(millis) == "2026-11-29T06:00:01Z")
        #expect(Timestamps.parseRFC3339("2026-11-29T06:00:01.123456789+00:00") != nil)
        for bad in ["2026-11-29T06:00:01", "2026-11-29T06:00:01.Z", "2026-11-29T06:00:01+0200", "2026-11-29",
                    "2026-13-01T00:00:00Z", "2026-11-29T24:00:00Z", "2026-11-29T06:00:01Zjunk", "2026-11-29T06:00:01+24:00", "2026-11-29T06:00:01+02:60", "not a date at all!!"] {
            #expect(Timestamps.parseRFC3339(bad) == nil, "\(bad)")
        }
    }

    @Test func millisecondFormRoundTripsEveryMillisecond() throws {
        for ms in 0..<1000 {
            let text = "2026-11-29T06:00:01." + String(ms + 1000).dropFirst() + "Z"
            let date = try #require(Timestamps.parseRFC3339(text))
            #expect(Timestamps.rfc3339Milliseconds(date) == text)
            #expect(Timestamps.rfc3339Milliseconds(Date(timeIntervalSince1970: 1_795_932_001 + Double(ms) / 1000)) == text)
        }
    }

    @Test func leapDayValidation() {
        #expect(Timestamps.parseRFC3339("2024-02-29T23:59:59Z") == Date(timeIntervalSince1970: 1_709_251_199))
        #expect(Timestamps.parseRFC3339("2000-02-29T00:00:00Z") != nil)
        #expect(Timestamps.parseRFC3339("2023-02-29T00:00:00Z") == nil)
        #expect(Timestamps.parseRFC3339("1900-02-29T00:00:00Z") == nil)
        #expect(Timestamps.parseSQLStyle("2026-02-29 00:00:00") == nil)
        #expect(Timestamps.parseSQLStyle("2026-04-31 00:00:00") == nil)
        #expect(Timestamps.parseSQLStyle("2028-02-29 12:00:00") != nil)
    }

    @Test func rule7SQLStyleInUTCAndAccountZone() {
        let summer = Date(timeIntervalSince1970: 1_782_907_200)  // 2026-07-01T12:00:00Z
        let winter = Date(timeIntervalSince1970: 1_768_478_400)  // 2026-01-15T12:00:00Z
        #expect(Timestamps.sqlStyle(summer) == "2026-07-01 12:00:00")
        #expect(Timestamps.sqlStyle(summer, in: Self.la) == "2026-07-01 05:00:00")
        #expect(Timestamps.sqlStyle(winter, in: Self.la) == "2026-01-15 04:00:00")
        #expect(Timestamps.parseSQLStyle("2026-07-01 12:00:00") == summer)
        #expect(Timestamps.parseSQLStyle("2026-07-01 12:00:00", in: TimeZone(identifier: "UTC")) == summer)
        #expect(Timestamps.parseSQLStyle("2026-07-01 05:00:00", in: Self.la) == summer)
        #expect(Timestamps.parseSQLStyle("2026-01-15 04:00:00", in: Self.la) == winter)
        #expect(Timestamps.parseSQLStyle("2026-07-01T12:00:00") == nil)
        #expect(Timestamps.parseSQLStyle("2026-07-01 12:00") == nil)
    }

    @Test func rule7FallBackRepeatedHourReturnsTheEarlierInstant() {
        // 2026-11-01 01:30 happens twice in Los Angeles: 08:30Z (PDT) and 09:30Z (PST).
        let earlier = Date(timeIntervalSince1970: 1_793_521_800)
        #expect(Timestamps.parseSQLStyle("2026-11-01 01:30:00", in: Self.la) == earlier)
        #expect(Timestamps.sqlStyle(earlier.addingTimeInterval(3600), in: Self.la) == "2026-11-01 01:30:00")
        #expect(Timestamps.parseSQLStyle("2026-11-01 02:00:00", in: Self.la) == earlier.addingTimeInterval(5400))
    }

    @Test func rule7SpringForwardGapIsNil() {
        // 2026-03-08 02:00–02:59 does not exist in Los Angeles.
        #expect(Timestamps.parseSQLStyle("2026-03-08 02:30:00", in: Self.la) == nil)
        #expect(Timestamps.parseSQLStyle("2026-03-08 01:59:59", in: Self.la) != nil)
        #expect(Timestamps.parseSQLStyle("2026-03-08 03:00:00", in: Self.la) != nil)
        // Eastern hemisphere too: Berlin skips 02:00–02:59 on 2026-03-29.
        let berlin = TimeZone(identifier: "Europe/Berlin")!
        #expect(Timestamps.parseSQLStyle("2026-03-29 02:30:00", in: berlin) == nil)
    }

    @Test func sqlStyleRoundTripsThroughTheZoneHourByHourAcrossDST() throws {
        // Every instant maps to wall time and back, except the second pass of the repeated hour (earlier wins).
        let start = Date(timeIntervalSince1970: 1_793_512_800)  // 2026-11-01T06:00:00Z
        for hour in 0..<6 {
            let instant = start.addingTimeInterval(Double(hour) * 3600)
            let text = Timestamps.sqlStyle(instant, in: Self.la)
            let back = try #require(Timestamps.parseSQLStyle(text, in: Self.la))
            if text.hasPrefix("2026-11-01 01:") && back != instant {
                #expect(back == instant.addingTimeInterval(-3600))
            } else {
                #expect(back == instant, "\(text)")
            }
        }
    }

    /// What the formatters printed through Calendar and String(format:) before issue 17: the arithmetic path must
    /// give exactly these strings.
    static func reference(_ date: Date, zone: TimeZone, format: String) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: format, c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
    }

    @Test func formattersAtTheEdgesOfTheRangeAndLeapDays() throws {
        let cases: [(Double, String)] = [
            (0, "1970-01-01T00:00:00Z"), (253_402_300_799, "9999-12-31T23:59:59Z"),
            (253_402_300_799.999, "9999-12-31T23:59:59Z"), (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"), (1_709_251_200, "2024-03-01T00:00:00Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"), (4_107_456_000, "2100-02-28T00:00:00Z"),
            (-2_208_988_800, "1900-01-01T00:00:00Z"), (-0.5, "1969-12-31T23:59:59Z"), (0.999, "1970-01-01T00:00:00Z"),
            (68_169_600, "1972-02-29T00:00:00Z"), (946_684_799, "1999-12-31T23:59:59Z"),
        ]
        for (seconds, text) in cases {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(Timestamps.rfc3339(date) == text, "\(seconds)")
            #expect(Timestamps.sqlStyle(date) == text.dropLast().replacingOccurrences(of: "T", with: " "), "\(seconds)")
            if seconds >= 0 { #expect(Timestamps.parseRFC3339(text) == Date(timeIntervalSince1970: seconds.rounded(.down))) }
        }
        #expect(Timestamps.rfc3339Milliseconds(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamps.rfc3339Milliseconds(Date(timeIntervalSince1970: 253_402_300_799.999))
                == "9999-12-31T23:59:59.999Z")
        #expect(Timestamps.rfc3339Milliseconds(Date(timeIntervalSince1970: 951_782_399.9996)) == "2000-02-29T00:00:00.000Z")
        #expect(Timestamps.parseRFC3339("9999-12-31T23:59:59Z") != nil)
        #expect(Timestamps.parseRFC3339("10000-01-01T00:00:00Z") == nil)
        #expect(Timestamps.parseRFC3339("1969-12-31T23:59:59Z") == nil)
        #expect(Timestamps.parseRFC3339("1970-01-01T00:00:00Z") == Date(timeIntervalSince1970: 0))
        #expect(Timestamps.parseSQLStyle("9999-12-31 23:59:59") == Date(timeIntervalSince1970: 253_402_300_799))
        #expect(Timestamps.parseSQLStyle("1970-01-01 00:00:00") == Date(timeIntervalSince1970: 0))
        // Outside the arithmetic range the Calendar fallback still answers as before.
        let early = Date(timeIntervalSince1970: -2_208_988_801)
        #expect(Timestamps.rfc3339(early) == Self.reference(early, zone: TimeZone(identifier: "UTC")!,
                                                            format: "%04d-%02d-%02dT%02d:%02d:%02dZ"))
    }

    @Test func formattersMatchFoundationsCalendarEverywhereInTheRange() throws {
        let utc = try #require(TimeZone(identifier: "UTC"))
        let zones = try ["America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham",
                         "Europe/Berlin"].map { try #require(TimeZone(identifier: $0)) }
        var generator = SystemRandomNumberGenerator()
        var instants: [Double] = (0..<3000).map { _ in Double.random(in: -2_208_988_800..<253_402_300_800, using: &generator) }
        instants += (0..<2000).map { _ in Double(Int64.random(in: 0..<4_102_444_800, using: &generator)) }
        // Every DST edge of 2026 in Los Angeles and Berlin, a second either side.
        instants += [1_772_964_000, 1_793_523_600, 1_774_746_000, 1_792_890_000].flatMap { [$0 - 1, $0, $0 + 1] }
        for seconds in instants {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(Timestamps.rfc3339(date) == Self.reference(date, zone: utc, format: "%04d-%02d-%02dT%02d:%02d:%02dZ"),
                    "\(seconds)")
            #expect(Timestamps.sqlStyle(date) == Self.reference(date, zone: utc, format: "%04d-%02d-%02d %02d:%02d:%02d"),
                    "\(seconds)")
            for zone in zones {
                #expect(Timestamps.sqlStyle(date, in: zone)
                        == Self.reference(date, zone: zone, format: "%04d-%02d-%02d %02d:%02d:%02d"), "\(seconds) \(zone)")
            }
        }
    }

    @Test func unixSecondsTruncates() {
        #expect(Timestamps.unixSeconds(Date(timeIntervalSince1970: 1_614_265_330.9)) == 1_614_265_330)
    }
}
