// Deletes in source order and sweeps that repair what they see (docs/DESIGN.md §2 rule 6a), against a real
// StateStore and the in-memory FakeSource.
import Core
import Engine
import Foundation
import Logging
import Store
import Testing

@Suite("Deletes in source order (rule 6a)")
struct DeleteOrderTests {
    /// Two records scanned once; `b` keeps the watermark well past `a`, so later scans do not re-read `a`.
    private func baseline(_ source: FakeSource, _ runner: PollRunner) async throws {
        source.upsert("a", at: at(1), ["v": "1"])
        source.upsert("b", at: at(100), ["v": "1"])
        _ = try await runner.runCycle()
    }

    @Test("rule 6a: the delete feed is read before the delta scan: delete then re-create emits deleted, then created")
    func feedBeforeScan() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let runner = makeRunner(source, temp)
        try await baseline(source, runner)
        // Deleted at 105, re-created with the same id at 106 — both before the next cycle.
        source.upsert("a", at: at(106), ["v": "2"])
        source.state.withLock { $0.deleteFeed = [DeletedRecordNotice(id: "a", deletedAt: at(105))] }
        source.state.withLock { $0.calls = [] }
        _ = try await runner.runCycle()
        #expect(source.calls.prefix(2) == ["deletions", "delta"], "\(source.calls)")
        let events = try temp.events().filter { $0.recordID == "a" }
        #expect(events.map(\.kind) == [.created, .deleted, .created])
        #expect(events.last?.record["v"] == "2")
        #expect(source.fetchedRecords.isEmpty)  // Td (105) is after Ts (1): no need to ask
        #expect(try temp.store.liveRecordIDs(connection: "acme", object: "incident") == ["a", "b"])
    }

    @Test("rule 6a: a feed entry older than the record's last seen state is stale and skipped, without asking")
    func staleEntrySkipped() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let sink = MemoryLogSink()
        let runner = makeRunner(source, temp, sink: sink)
        try await baseline(source, runner)
        // Deleted at 107 and re-created at 108; the scan sees the re-created state before the audit row shows up.
        source.upsert("a", at: at(108), ["v": "2"])
        _ = try await runner.runCycle()
        source.state.withLock { $0.deleteFeed = [DeletedRecordNotice(id: "a", deletedAt: at(107))] }
        let report = try await runner.runCycle()
        #expect(report.deleteFeedRead && report.deletions == 0)
        #expect(try temp.events().filter { $0.recordID == "a" }.map(\.kind) == [.created, .updated])
        #expect(source.fetchedRecords.isEmpty)
        #expect(sink.records.contains { $0.level == .debug && $0.message.contains("stale delete-feed entry") })
    }

    @Test("rule 6a: a feed entry in the same second as the last seen state asks the provider: it exists → skipped")
    func sameSecondExists() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let runner = makeRunner(source, temp)
        try await baseline(source, runner)
        // Deleted and re-created with the same id within second 110; the scan read the re-created state first.
        source.upsert("a", at: at(110), ["v": "2"])
        _ = try await runner.runCycle()
        source.state.withLock { $0.deleteFeed = [DeletedRecordNotice(id: "a", deletedAt: at(110))] }
        let report = try await runner.runCycle()
        #expect(report.deletions == 0)
        #expect(source.fetchedRecords == ["a"])
        #expect(try temp.events().filter { $0.recordID == "a" }.map(\.kind) == [.created, .updated])
        #expect(try temp.store.liveRecordIDs(connection: "acme", object: "incident") == ["a", "b"])
    }

    @Test("rule 6a: a same-second feed entry whose record is gone (or cannot be checked) emits deleted",
          arguments: [true, false])
    func sameSecondGone(singleReads: Bool) async throws {
        let temp = try TempStore()
        let source = FakeSource()
        source.state.withLock { $0.singleReads = singleReads }
        let runner = makeRunner(source, temp)
        try await baseline(source, runner)
        // Updated at 110 (the scan reads it), then deleted in the same second.
        source.upsert("a", at: at(110), ["v": "2"])
        _ = try await runner.runCycle()
        source.remove("a")
        source.state.withLock { $0.deleteFeed = [DeletedRecordNotice(id: "a", deletedAt: at(110))] }
        let report = try await runner.runCycle()
        #expect(report.deletions == 1)
        #expect(source.fetchedRecords == (singleReads ? ["a"] : []))
        let events = try temp.events().filter { $0.recordID == "a" }
        #expect(events.map(\.kind) == [.created, .updated, .deleted])
        #expect(events.last?.occurredAt == at(110))
    }

    @Test("rule 6a: a feed that fails does not stop the delta scan; the cycle still reports the error")
    func failingFeedDoesNotStopScan() async throws {
        final class BrokenFeed: ObjectSource {
            let inner = FakeSource()
            var descriptor: ObjectDescriptor { inner.descriptor }
            func fetchDelta(_ request: DeltaRequest) async throws -> DeltaPage { try await inner.fetchDelta(request) }
            func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage {
                try await inner.fetchIDs(after: token, pageSize: pageSize)
            }
            func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? {
                throw ProviderError.permission(message: "sys_audit_delete: Insufficient rights")
            }
        }
        let temp = try TempStore()
        let source = BrokenFeed()
        let plan = ObjectPlan(descriptor: source.descriptor, interval: .seconds(1), lookback: .seconds(1),
                              initialSync: .emit)
        let runner = PollRunner(target: PollTarget(plan: plan, source: source), store: temp.store,
                                router: { _ in ["crm"] }, logger: Logger(sink: MemoryLogSink()),
                                now: StepClock().function)
        source.inner.upsert("a", at: at(1), ["v": "1"])
        _ = try await runner.runCycle()  // no cursor yet: the feed is not read
        source.inner.upsert("b", at: at(2), ["v": "1"])
        await #expect(throws: ProviderError.self) { _ = try await runner.runCycle() }
        let ids = try temp.events().map(\.recordID)
        #expect(ids == ["a", "b"])
    }
}

@Suite("Sweeps repair what they see (rule 6a)")
struct SweepRepairTests {
    /// `a` (old) and `b` (keeping the watermark past `a`) scanned, then one sweep during which a before-query rule
    /// hides `a` from the listing: the sweep deletes it. Returns with the rule lifted; sweeps run every cycle.
    private func wronglyDeleted(_ source: FakeSource, _ temp: TempStore, sink: MemoryLogSink = testLogSink)
        async throws -> PollRunner
    {
        let runner = makeRunner(source, temp, reconcileEvery: .zero, sink: sink, deleteGuard: nil)
        source.upsert("a", at: at(1), ["v": "1"])
        source.upsert("b", at: at(100), ["v": "1"])
        _ = try await runner.runCycle()
        source.state.withLock { $0.listing = ["b"] }
        let hidden = try await runner.runCycle()
        #expect(hidden.reconciled && hidden.deletions == 1)
        source.state.withLock { $0.listing = nil }
        return runner
    }

    @Test("rule 6a: a sweep that lists a tombstoned id reads it and emits created, with its delivery rows")
    func sweepRepairsWrongDelete() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        // The rule is lifted: `a` was never deleted and has not changed, so no delta read will bring it back.
        let runner = try await wronglyDeleted(source, temp)
        let repaired = try await runner.runCycle()
        #expect(repaired.reconciled && repaired.deletions == 0)
        #expect(repaired.events.map(\.type) == ["record.created"])
        #expect(source.fetchedRecords == ["a"])
        let events = try temp.events().filter { $0.recordID == "a" }
        #expect(events.map(\.kind) == [.created, .deleted, .created])
        #expect(events.last?.record == events.first?.record)
        #expect(try temp.store.liveRecordIDs(connection: "acme", object: "incident") == ["a", "b"])
        let deliveries = try temp.store.deliveries(eventID: events[2].id)
        #expect(deliveries.map(\.subscriber) == ["crm"])
        // The repaired record is live again: the next sweep has nothing to repair, nothing to delete.
        let next = try await runner.runCycle()
        #expect(next.reconciled && next.eventCount == 0 && source.fetchedRecords == ["a"])
    }

    @Test("rule 6a: a sweep whose source cannot read single records leaves the tombstone and logs once")
    func sweepWithoutSingleReads() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        source.state.withLock { $0.singleReads = false }
        let sink = MemoryLogSink()
        let runner = try await wronglyDeleted(source, temp, sink: sink)
        let first = try await runner.runCycle()
        let second = try await runner.runCycle()
        #expect(first.reconciled && second.reconciled && first.eventCount == 0 && second.eventCount == 0)
        #expect(try temp.store.liveRecordIDs(connection: "acme", object: "incident") == ["b"])
        let said = sink.records.filter { $0.message.contains("cannot read single records") }
        #expect(said.count == 1)
        // Its next change brings it back, as before.
        source.upsert("a", at: at(200), ["v": "2"])
        let changed = try await runner.runCycle()
        #expect(changed.events.map(\.type) == ["record.created"])
    }

    @Test("rule 6a and rule 16: a tombstoned record the adapter rejects when the sweep reads it is quarantined")
    func sweepQuarantinesRejectedRecord() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let runner = try await wronglyDeleted(source, temp)
        source.state.withLock { $0.poison["a"] = "$.result.sys_updated_on: not a time" }
        let report = try await runner.runCycle()
        #expect(report.reconciled && report.eventCount == 0 && report.quarantined == 1)
        let quarantined = try temp.store.quarantine(connection: "acme", object: "incident")
        #expect(quarantined.map(\.recordKey) == ["a"])
        // Readable again: the next sweep repairs it and it leaves quarantine.
        source.state.withLock { _ = $0.poison.removeValue(forKey: "a") }
        let repaired = try await runner.runCycle()
        #expect(repaired.events.map(\.type) == ["record.created"] && repaired.releasedFromQuarantine == 1)
        #expect(try temp.store.quarantine(connection: "acme", object: "incident").isEmpty)
    }
}
