// The delta scan under hostile provider answers (docs/DESIGN.md §2 rules 14 and 18): a record dated far in the
// future, a provider that pages forever, pages larger than max_response_bytes. Each test names its rule.
import Core
import Engine
import Foundation
import Logging
import Store
import Testing

@Suite("Bounded scans")
struct BoundedScanTests {
    /// 2099-01-01T00:00:00Z: a broken import or a bad clock on the provider side.
    static let farFuture = Date(timeIntervalSince1970: 4_070_908_800)

    @Test("rule 14: a record dated 2099 is emitted but never becomes the watermark; later changes are read")
    func futureRecordDoesNotFreezeTheCursor() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let metrics = MetricsRegistry()
        let sink = MemoryLogSink()
        let runner = makeRunner(source, temp, metrics: metrics, sink: sink)
        source.upsert("a", at: at(0), ["state": "1"])
        source.upsert("b", at: at(10), ["state": "1"])
        source.upsert("broken", at: Self.farFuture, ["state": "1"])

        let first = try await runner.runCycle()
        #expect(first.eventCount == 3)                           // the future record is still a change
        #expect(first.futureRecords == 1)
        #expect(try temp.cursor(source)?.watermark == at(10))   // the newest of the other records
        #expect(metrics.value("deltahook_future_records_total", labels: ["acme", "incident"]) == 1)
        #expect(sink.records.contains { $0.message.contains("record dated in the future") })

        // Present-day changes after the 2099 record: the next scans ask from the real watermark and see them.
        source.upsert("b", at: at(20), ["state": "2"])
        source.upsert("c", at: at(30), ["state": "1"])
        let second = try await runner.runCycle()
        #expect(source.requests.last(where: { $0.after == nil })?.lowerBound.map { $0 <= at(10) } == true)
        #expect(second.futureRecords == 0)                        // re-read unchanged: no repeated warning
        let events = try temp.events()
        #expect(events.filter { $0.recordID == "b" }.map(\.kind) == [.created, .updated])
        #expect(events.filter { $0.recordID == "c" }.map(\.kind) == [.created])
        #expect(try temp.cursor(source)?.watermark == at(30))

        // The future record changing again is emitted again, and still does not move the cursor.
        source.upsert("broken", at: Self.farFuture, ["state": "2"])
        let third = try await runner.runCycle()
        #expect(third.eventCount == 1 && third.futureRecords == 1)
        #expect(try temp.cursor(source)?.watermark == at(30))
    }

    @Test("rule 14: a watermark already frozen in the future (an older store) is repaired from the snapshots")
    func frozenWatermarkIsRepaired() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        // A runner that tolerates two centuries of skew freezes the cursor at 2099, as releases before rule 14 did.
        let lax = makeRunner(source, temp) { $0.maxClockSkew = .seconds(200 * 365 * 86_400) }
        source.upsert("a", at: at(0), ["state": "1"])
        source.upsert("broken", at: Self.farFuture, ["state": "1"])
        _ = try await lax.runCycle()
        #expect(try temp.cursor(source)?.watermark == Self.farFuture)

        source.upsert("a", at: at(50), ["state": "2"])
        let sink = MemoryLogSink()
        let strict = makeRunner(source, temp, sink: sink)
        let report = try await strict.runCycle()
        #expect(report.eventCount == 1)
        #expect(try temp.events().filter { $0.recordID == "a" }.map(\.kind) == [.created, .updated])
        #expect(try temp.cursor(source)?.watermark == at(50))
        #expect(sink.records.contains { $0.message.contains("stored watermark is in the future") })
    }

    @Test("rule 14: a record within max_clock_skew of scan start still moves the watermark")
    func slightlyAheadClockIsTolerated() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let clock = StepClock(start: at(0))
        let runner = makeRunner(source, temp, clock: clock) { $0.maxClockSkew = .seconds(300) }
        source.upsert("a", at: at(120), ["state": "1"])          // two minutes ahead of the daemon's clock
        source.upsert("b", at: at(3600), ["state": "1"])         // an hour ahead: beyond the skew
        let report = try await runner.runCycle()
        #expect(report.eventCount == 2 && report.futureRecords == 1)
        #expect(try temp.cursor(source)?.watermark == at(120))
    }

    @Test("rule 18: a scan stops at max_pages_per_scan, commits its position, and the next cycle resumes there")
    func pageCapStopsAndResumes() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let metrics = MetricsRegistry()
        let runner = makeRunner(source, temp, pageSize: 5, metrics: metrics) { $0.maxPagesPerScan = 2 }
        for i in 0..<23 { source.upsert(String(format: "r%02d", i), at: at(i), ["n": .integer(Int64(i))]) }

        let first = try await runner.runCycle()
        #expect(first.pages == 2 && first.eventCount == 10)
        #expect(first.warnings.contains { $0.contains("max_pages_per_scan") })
        #expect(metrics.value("deltahook_scans_capped_total", labels: ["acme", "incident"]) == 1)
        let second = try await runner.runCycle()
        #expect(second.resumed && second.eventCount == 10)
        let third = try await runner.runCycle()
        #expect(third.resumed && third.eventCount == 3 && third.warnings.isEmpty)

        let events = try temp.events()
        #expect(events.count == 23 && Set(events.map(\.recordID)).count == 23)
        #expect(try temp.cursor(source)?.watermark == at(22))
    }

    @Test("rule 18: a page over max_response_bytes halves the page size for the rest of the scan")
    func oversizedPageHalvesThePageSize() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let metrics = MetricsRegistry()
        source.state.withLock { $0.largestAnsweredPageSize = 3 }
        let runner = makeRunner(source, temp, pageSize: 10, metrics: metrics)
        for i in 0..<10 { source.upsert("r\(i)", at: at(i), ["n": .integer(Int64(i))]) }

        let report = try await runner.runCycle()
        #expect(report.eventCount == 10)
        let sizes = source.requests.map(\.pageSize)
        #expect(Array(sizes.prefix(3)) == [10, 5, 2])            // halved until a page fits
        #expect(sizes.dropFirst(2).allSatisfy { $0 == 2 })       // and kept small for the rest of the scan
        #expect(report.warnings.contains { $0.contains("page size halved to 2") })
        #expect(metrics.value("deltahook_page_size_halved_total", labels: ["acme", "incident"]) == 2)

        // The next scan starts again from the configured page size (the limit may have been one huge record).
        source.upsert("r3", at: at(20), ["n": 99])
        let asked = source.requests.count
        _ = try await runner.runCycle()
        #expect(source.requests.dropFirst(asked).first?.pageSize == 10)
    }

    @Test("rule 18: a single record over the cap fails the page with the hint, and commits nothing after it")
    func singleRecordOverTheCapFails() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        source.state.withLock { $0.largestAnsweredPageSize = 0 }
        let runner = makeRunner(source, temp, pageSize: 4)
        source.upsert("r1", at: at(1), ["n": 1])
        await #expect {
            _ = try await runner.runCycle()
        } throws: { error in
            guard case ProviderError.responseTooLarge = error else { return false }
            return String(describing: error).contains("max_response_bytes")
        }
        #expect(source.requests.map(\.pageSize) == [4, 2, 1])
        #expect(try temp.events().isEmpty)
        #expect(try temp.cursor(source) == nil)
    }
}

@Suite("Cycle log lines")
struct CycleLogTests {
    @Test("issue 12 item 4: a cycle that committed events logs one info line with counts, pages, cursor, duration")
    func cycleSummaryAtInfo() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let sink = MemoryLogSink()
        let runner = makeRunner(source, temp, sink: sink)
        source.upsert("a", at: at(1), ["state": "1"])
        source.upsert("b", at: at(2), ["state": "1"])
        _ = try await runner.runCycle()
        let line = try #require(sink.records.first { $0.message == "poll cycle committed events" })
        #expect(line.level == .info)
        let fields = Dictionary(line.fields.map { ($0.field.description, $0.value) }, uniquingKeysWith: { $1 })
        #expect(fields["EVENTS"] == "2" && fields["CREATED"] == "2" && fields["UPDATED"] == "0")
        #expect(fields["RECORDS"] == "2" && fields["PAGES"] == "1" && fields["DURATION_MS"] != nil)
        #expect(fields["CURSOR"] == Timestamps.rfc3339(at(2)))
        #expect(fields["CONNECTION"] == "acme" && fields["OBJECT"] == "incident")

        // A quiet cycle logs at debug only.
        _ = try await runner.runCycle()
        let quiet = try #require(sink.records.last { $0.message == "poll cycle found no changes" })
        #expect(quiet.level == .debug)
    }
}
