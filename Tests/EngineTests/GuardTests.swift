// Untrusted provider answers, engine side: quarantine instead of stall (docs/DESIGN.md §2 rule 16) and the
// mass-delete guard (rule 17), with the fake source and a real store.
import Core
import Engine
import Foundation
import Logging
import Store
import Testing

private func fields(_ record: LogRecord) -> [String: String] {
    Dictionary(record.fields.map { ($0.field.name, $0.value) }, uniquingKeysWith: { a, _ in a })
}

@Suite("Quarantine (rule 16)")
struct QuarantineEngineTests {
    @Test("rule 16: the newest record is rejected: the scan ends, others flow, the watermark skips it; valid later → event, row gone")
    func poisonNewest() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let sink = MemoryLogSink()
        let metrics = MetricsRegistry()
        source.upsert("r1", at: at(10), ["state": "1"])
        source.upsert("r2", at: at(20), ["state": "1"])
        source.upsert("bad", at: at(30), ["state": "1"])
        source.state.withLock { $0.poison["bad"] = "$.result[2].sys_updated_on: year 10000 is out of range" }
        let runner = makeRunner(source, temp, initialSync: .emit, metrics: metrics, sink: sink)

        let first = try await runner.runCycle()
        #expect(first.rejected == 1 && first.quarantined == 1)
        #expect(try temp.events().map(\.recordID) == ["r1", "r2"])
        #expect(try temp.cursor(source)?.watermark == at(20))
        let row = try #require(try temp.store.quarantine(connection: "acme", object: "incident").first)
        #expect(row.recordKey == "bad" && row.recordID == "bad" && row.seenCount == 1)
        #expect(row.reason.contains("out of range") && row.rawExcerpt.contains("\"sys_id\":\"bad\""))

        // Re-read through the inclusive bound on every cycle: counted, not logged again.
        let second = try await runner.runCycle()
        #expect(second.rejected == 1 && second.quarantined == 0)
        #expect(try temp.store.quarantine().first?.seenCount == 2)
        let warnings = sink.records.filter { $0.message.hasPrefix("record quarantined") }
        #expect(warnings.count == 1)
        let logged = try #require(warnings.first.map(fields))
        #expect(logged["CONNECTION"] == "acme" && logged["OBJECT"] == "incident" && logged["RECORD_ID"] == "bad")
        #expect(logged["REASON"]?.contains("out of range") == true)
        #expect(metrics.value("deltahook_quarantined_records_total", labels: ["acme", "incident"]) == 1)

        // The source fixes the record: it flows as a normal change and leaves quarantine.
        source.state.withLock { $0.poison = [:] }
        source.upsert("bad", at: at(40), ["state": "2"])
        let fixed = try await runner.runCycle()
        #expect(fixed.releasedFromQuarantine == 1 && fixed.rejected == 0)
        #expect(try temp.events().map(\.recordID) == ["r1", "r2", "bad"])
        #expect(try temp.store.quarantine().isEmpty)
        #expect(try temp.cursor(source)?.watermark == at(40))
    }

    @Test("rule 16: a page made only of rejected records is written and the scan steps past it")
    func wholePageRejected() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        for i in 1...6 { source.upsert("r\(i)", at: at(i), ["n": .integer(Int64(i))]) }
        source.state.withLock { $0.poison = ["r3": "null id field", "r4": "1e999 in a number field"] }
        let runner = makeRunner(source, temp, initialSync: .emit, pageSize: 2)
        let report = try await runner.runCycle()
        #expect(report.pages == 3 && report.rejected == 2 && report.quarantined == 2)
        #expect(try temp.events().map(\.recordID) == ["r1", "r2", "r5", "r6"])
        #expect(try temp.store.quarantine().map(\.recordKey).sorted() == ["r3", "r4"])
        #expect(try temp.cursor(source)?.watermark == at(6))
    }

    @Test("rule 16: an unchanged quarantined record on an otherwise idle page still leaves quarantine")
    func releaseOnIdlePage() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        for i in 1...6 { source.upsert("r\(i)", at: at(i), ["n": .integer(Int64(i))]) }
        let runner = makeRunner(source, temp, initialSync: .emit, pageSize: 2, lookback: .seconds(3600))
        _ = try await runner.runCycle()
        // r3 goes bad for a while, then comes back byte-identical (only its volatile fields changed).
        source.state.withLock { $0.poison = ["r3": "bad id"] }
        _ = try await runner.runCycle()
        #expect(try temp.store.quarantine().map(\.recordKey) == ["r3"])
        source.state.withLock { $0.poison = [:] }
        let back = try await runner.runCycle()
        #expect(back.releasedFromQuarantine == 1 && back.eventCount == 0)
        #expect(try temp.store.quarantine().isEmpty)
    }

    @Test("rule 16: a dry run reports rejected records and stores nothing")
    func dryRun() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        source.upsert("r1", at: at(1), ["n": 1])
        source.upsert("bad", at: at(2), ["n": 2])
        source.state.withLock { $0.poison["bad"] = "bad id" }
        let runner = makeRunner(source, temp, initialSync: .emit)
        let report = try await runner.runCycle(dryRun: true)
        #expect(report.rejected == 1 && report.quarantined == 0)
        #expect(report.warnings.contains { $0.contains("bad") && $0.contains("bad id") })
        #expect(report.description.contains("1 rejected record (not quarantined: dry run)"))
        #expect(try temp.store.quarantine().isEmpty)
    }
}

@Suite("Mass-delete guard (rule 17)")
struct DeleteGuardEngineTests {
    /// `count` live records r00…, snapshotted silently.
    private func seeded(_ count: Int, guard policy: DeleteGuardPolicy? = .defaults, metrics: MetricsRegistry? = nil,
                        sink: MemoryLogSink = testLogSink) async throws -> (TempStore, FakeSource, PollRunner) {
        let temp = try TempStore()
        let source = FakeSource()
        for i in 0..<count { source.upsert(String(format: "r%02d", i), at: at(i), ["n": .integer(Int64(i))]) }
        let runner = makeRunner(source, temp, initialSync: .silent, reconcileEvery: .zero, metrics: metrics,
                                sink: sink, deleteGuard: policy)
        _ = try await runner.runCycle()
        return (temp, source, runner)
    }

    private func deleted(_ temp: TempStore) throws -> [String] {
        try temp.events().filter { $0.kind == .deleted }.map(\.recordID)
    }

    @Test("rule 17: an empty listing while records are live is held: no deleted events, a held row, a warning")
    func emptyListingHeld() async throws {
        let sink = MemoryLogSink()
        let metrics = MetricsRegistry()
        let (temp, source, runner) = try await seeded(5, metrics: metrics, sink: sink)
        source.state.withLock { $0.listing = [] }
        let report = try await runner.runCycle()
        let held = try #require(report.sweepHeld)
        #expect(held.wouldDelete == 5 && held.live == 5 && held.listed == 0)
        #expect(!report.reconciled && report.deletions == 0)
        #expect(try deleted(temp).isEmpty)
        #expect(try temp.store.liveRecordIDs(connection: "acme", object: "incident").count == 5)
        #expect(try temp.store.heldSweep(connection: "acme", object: "incident")?.wouldDelete == 5)
        #expect(report.description.contains("sweep held: would delete 5 of 5"))
        let warning = try #require(sink.records.first { $0.message.hasPrefix("sweep held") })
        #expect(fields(warning)["HINT"]?.contains("deltahook reconcile --connection acme --object incident --apply-held") == true)
        #expect(metrics.value("deltahook_sweeps_held_total", labels: ["acme", "incident"]) == 1)
    }

    @Test("rule 17: half the records vanishing (over min_records and max_fraction) is held")
    func halfVanishHeld() async throws {
        let (temp, source, runner) = try await seeded(30)
        for i in 0..<15 { source.remove(String(format: "r%02d", i)) }
        let report = try await runner.runCycle()
        #expect(report.sweepHeld?.wouldDelete == 15 && report.sweepHeld?.listed == 15)
        #expect(try deleted(temp).isEmpty)
    }

    @Test("rule 17: deletions under either threshold are applied as before")
    func smallDeletionsApplied() async throws {
        // 10 of 30: not more than min_records.
        let (temp, source, runner) = try await seeded(30)
        for i in 0..<10 { source.remove(String(format: "r%02d", i)) }
        let few = try await runner.runCycle()
        #expect(few.sweepHeld == nil && few.reconciled && few.deletions == 10)
        // 11 of 60: more than min_records but not more than 20 %.
        let (temp2, source2, runner2) = try await seeded(60)
        for i in 0..<11 { source2.remove(String(format: "r%02d", i)) }
        let share = try await runner2.runCycle()
        #expect(share.sweepHeld == nil && share.deletions == 11)
        #expect(try deleted(temp).count == 10 && deleted(temp2).count == 11)
    }

    @Test("rule 17: delete_guard false applies even an empty listing (today's behaviour)")
    func guardDisabled() async throws {
        let (temp, source, runner) = try await seeded(5, guard: nil)
        source.state.withLock { $0.listing = [] }
        let report = try await runner.runCycle()
        #expect(report.sweepHeld == nil && report.deletions == 5)
        #expect(try deleted(temp).count == 5)
    }

    @Test("rule 17: apply-held deletes exactly the held ids still live and unseen, once")
    func applyHeld() async throws {
        let (temp, source, runner) = try await seeded(30)
        for i in 0..<15 { source.remove(String(format: "r%02d", i)) }
        _ = try await runner.runCycle()
        #expect(try temp.store.heldSweep(connection: "acme", object: "incident") != nil)
        // r03 comes back after the held sweep (a changed record a delta scan writes): it must not be deleted.
        // A runner without sweeps scans it, so no newer sweep replaces the held verdict.
        source.upsert("r03", at: at(100), ["n": 300])
        let later = StepClock(start: Date(timeIntervalSince1970: 1_900_000_000))   // after the held sweep
        let scan = try await makeRunner(source, temp, clock: later, initialSync: .silent).runCycle()
        #expect(scan.eventCount == 1)
        var report = CycleReport(connection: "acme", object: "incident", dryRun: false)
        let applied = try await runner.reconciler.applyHeldSweep(runner.target, router: { _ in ["crm"] },
                                                                  report: &report, logger: Logger(level: .debug, sink: testLogSink))
        #expect(applied == 14 && report.heldSweepApplied == 14)
        let gone = try deleted(temp)
        #expect(gone.count == 14 && !gone.contains("r03") && Set(gone).count == 14)
        #expect(try temp.store.heldSweep(connection: "acme", object: "incident") == nil)
        for id in gone.prefix(2) {
            let event = try #require(try temp.events().first { $0.recordID == id && $0.kind == .deleted })
            #expect(try temp.store.deliveries(eventID: event.id).map(\.subscriber) == ["crm"])
        }
        // Once: nothing is held any more.
        var again = CycleReport(connection: "acme", object: "incident", dryRun: false)
        let second = try await runner.reconciler.applyHeldSweep(runner.target, router: { _ in ["crm"] },
                                                                 report: &again, logger: Logger(level: .debug, sink: testLogSink))
        #expect(second == nil)
        #expect(try deleted(temp).count == 14)
    }

    @Test("rule 17: an apply requested from the CLI is applied by the poller at the object's next cycle")
    func applyRequested() async throws {
        let (temp, source, runner) = try await seeded(20)
        source.state.withLock { $0.listing = [] }
        _ = try await runner.runCycle()
        #expect(try temp.store.requestHeldSweepApply(connection: "acme", object: "incident"))
        source.state.withLock { $0.records = [:]; $0.listing = nil }  // the source really lost them
        let report = try await runner.runCycle()
        #expect(report.heldSweepApplied == 20)
        #expect(try deleted(temp).count == 20)
        #expect(try temp.store.heldSweep(connection: "acme", object: "incident") == nil)
        #expect(report.sweepHeld == nil)                        // the sweep after it had nothing left to delete
    }

    @Test("rule 17: a later sweep that is not held clears the hold and deletes nothing that came back")
    func laterSweepClears() async throws {
        let (temp, source, runner) = try await seeded(12)
        source.state.withLock { $0.listing = [] }
        _ = try await runner.runCycle()
        #expect(try temp.store.heldSweep(connection: "acme", object: "incident") != nil)
        source.state.withLock { $0.listing = nil }               // the ACL is fixed
        let report = try await runner.runCycle()
        #expect(report.reconciled && report.sweepHeld == nil && report.deletions == 0)
        #expect(try temp.store.heldSweep(connection: "acme", object: "incident") == nil)
    }

    @Test("rule 17: a held sweep still counts as the last sweep: the next one comes a period later")
    func heldSweepRecordsTime() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let clock = StepClock()
        for i in 0..<5 { source.upsert("r\(i)", at: at(i), ["n": .integer(Int64(i))]) }
        let runner = makeRunner(source, temp, clock: clock, initialSync: .silent, reconcileEvery: .seconds(3600))
        _ = try await runner.runCycle()
        clock.advance(3601)
        source.state.withLock { $0.listing = [] }
        let held = try await runner.runCycle()
        #expect(held.sweepHeld != nil)
        let idCalls = source.state.withLock { $0.idCalls }
        let next = try await runner.runCycle()
        #expect(next.sweepHeld == nil && !next.reconciled)
        #expect(source.state.withLock { $0.idCalls } == idCalls)
    }

    @Test("rule 17: the delete feed names each delete and is not guarded")
    func deleteFeedNotGuarded() async throws {
        let (temp, source, runner) = try await seeded(20)
        source.state.withLock { state in
            state.deleteFeed = state.records.keys.map { DeletedRecordNotice(id: $0, deletedAt: at(500)) }
            state.records = [:]
        }
        let report = try await runner.runCycle()
        #expect(report.deleteFeedRead && report.sweepHeld == nil)
        #expect(try deleted(temp).count == 20)
    }
}
