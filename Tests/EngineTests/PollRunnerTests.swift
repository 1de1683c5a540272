// Poll runner and reconciler against a real StateStore: each test names the docs/DESIGN.md §2 rule it proves.
import Core
import Engine
import Foundation
import Logging
import Store
import Synchronization
import Testing

@Suite("PollRunner")
struct PollRunnerTests {
    /// A `ticket` object whose model carries only `state`, with record r1 created by a first cycle.
    private func ticketWithOneRecord(_ temp: TempStore, _ fields: [String: JSONValue],
                                     emit: EmitPolicy = .anyChange) async throws -> (FakeSource, PollRunner) {
        let source = FakeSource(model: "ticket", modelFields: ["state"])
        source.upsert("r1", at: at(0), fields)
        let runner = makeRunner(source, temp, initialSync: .emit) { $0.emit = emit }
        _ = try await runner.runCycle()
        return (source, runner)
    }

    // Rules 1, 5, 6 and 2: the full life of a record, with exact events in order and field-level changes.
    @Test("create → update → no-op re-read → delete (sweep) → undelete: exact events in order (rules 1, 2, 5, 6)")
    func lifecycle() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let runner = makeRunner(source, temp, initialSync: .silent, reconcileEvery: .zero)
        source.upsert("keep", at: at(0), ["state": "1"])
        _ = try await runner.runCycle()                       // silent baseline: no events
        #expect(try temp.events().isEmpty)

        source.upsert("r1", at: at(10), ["state": "1", "short_description": "printer"])
        _ = try await runner.runCycle()
        source.upsert("r1", at: at(20), ["state": "2", "short_description": "printer"])
        _ = try await runner.runCycle()
        let reread = try await runner.runCycle()              // same data again: re-read through the bound
        #expect(reread.records >= 1 && reread.unchanged == reread.records && reread.eventCount == 0)
        source.remove("r1")
        let sweep = try await runner.runCycle()
        #expect(sweep.reconciled && sweep.deletions == 1)
        source.upsert("r1", at: at(40), ["state": "2", "short_description": "printer"])
        _ = try await runner.runCycle()

        let events = try temp.events()
        #expect(events.map(\.kind) == [.created, .updated, .deleted, .created])
        #expect(events.allSatisfy { $0.recordID == "r1" })
        #expect(events[1].changes == ["state": FieldChange(from: "1", to: "2")])
        #expect(events[0].changes == nil && events[2].changes == nil)
        #expect(events[2].record["state"] == "2")              // deleted carries the last known record
        #expect(events[1].occurredAt == at(20))
        #expect(Set(events.map(\.id)).count == 4)
        // Every event got its delivery row in the same commit (rule 1, §5).
        for event in events { #expect(try temp.store.deliveries(eventID: event.id).map(\.subscriber) == ["crm"]) }
        #expect(try temp.store.liveRecordIDs(connection: "acme", object: "incident") == ["keep", "r1"])
    }

    @Test("250 records with one timestamp over 3 pages are captured exactly once (rule 3)")
    func sameTimestampFlood() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        for i in 0..<250 { source.upsert(String(format: "id%04d", i), at: at(5), ["n": .integer(Int64(i))]) }
        let runner = makeRunner(source, temp, initialSync: .emit, pageSize: 100)
        let report = try await runner.runCycle()
        #expect(report.pages == 3)
        #expect(report.eventCount == 250)
        let events = try temp.events()
        #expect(events.count == 250 && Set(events.map(\.recordID)).count == 250)
        // The keyset advanced by the id tiebreaker inside the single timestamp.
        let afters = source.requests.compactMap(\.after)
        #expect(afters.map(\.recordID) == ["id0099", "id0199"])
        #expect(afters.allSatisfy { $0.timestamp == at(5) })
        // Next cycle re-reads them all (inclusive bound) and emits nothing.
        let again = try await runner.runCycle()
        #expect(again.records == 250 && again.unchanged == 250 && again.eventCount == 0)
        #expect(try temp.events().count == 250)
    }

    @Test("an error on page 2 leaves the cursor at page 1's end; the next cycle resumes, no loss, no doubling (rule 1)")
    func errorMidScanResumes() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        for i in 0..<300 { source.upsert(String(format: "id%04d", i), at: at(i), ["n": .integer(Int64(i))]) }
        source.state.withLock { $0.deltaErrors[2] = .transport(message: "connection reset") }
        let runner = makeRunner(source, temp, initialSync: .emit, pageSize: 100)
        await #expect(throws: ProviderError.self) { _ = try await runner.runCycle() }
        #expect(try temp.events().count == 100)
        let cursor = try #require(try temp.cursor(source))
        #expect(cursor.watermark == at(99))
        #expect(cursor.resumeState?.contains("id0099") == true)
        let status = try temp.store.pollStatuses().first
        #expect(status?.lastError?.contains("connection reset") == true)

        let report = try await runner.runCycle()
        #expect(report.resumed)
        // The resumed scan asked for the page after page 1's last record.
        #expect(source.requests[2].after?.recordID == "id0099")
        let events = try temp.events()
        #expect(events.count == 300)
        #expect(Set(events.map(\.recordID)).count == 300)
        #expect(events.map(\.recordID) == (0..<300).map { String(format: "id%04d", $0) })
        #expect(try temp.cursor(source)?.resumeState.map { $0.contains("position") } != true)
        #expect(try temp.cursor(source)?.watermark == at(299))
    }

    @Test("a change in volatile fields only emits nothing (rules 5, 5a)")
    func volatileOnly() async throws {
        let temp = try TempStore()
        let (source, runner) = try await ticketWithOneRecord(temp, ["state": "1", "internal": "a"])
        source.touch("r1", at: at(50))                        // sys_updated_on and sys_mod_count only
        let touched = try await runner.runCycle()
        #expect(touched.records == 1 && touched.unchanged == 1 && touched.eventCount == 0)
        #expect(try temp.events().map(\.type) == ["ticket.created"])
    }

    @Test("rule 5a: a typed model's change outside the model emits updated with changes {} and changed_fields")
    func changeOutsideModel() async throws {
        let temp = try TempStore()
        let (source, runner) = try await ticketWithOneRecord(temp, ["state": "1", "comments": "a"])
        source.upsert("r1", at: at(60), ["state": "1", "comments": "b"])  // raw changed, model unchanged
        let changed = try await runner.runCycle()
        #expect(changed.eventCount == 1 && changed.snapshotsWritten == 1)
        let again = try await runner.runCycle()               // the new hash was stored: a plain re-read now
        #expect(again.unchanged == again.records && again.eventCount == 0)
        source.upsert("r1", at: at(70), ["state": "2", "comments": "b"])
        _ = try await runner.runCycle()
        let events = try temp.events()
        #expect(events.map(\.type) == ["ticket.created", "ticket.updated", "ticket.updated"])
        #expect(events[1].changes == [:] && events[1].changedFields == ["comments"])
        #expect(events[1].raw["comments"] == "b" && events[1].occurredAt == at(60))
        #expect(events[2].changes == ["state": FieldChange(from: "1", to: "2")] && events[2].changedFields == ["state"])
        // The id is rule 8's, whatever changed_fields says.
        let hash = Differ(descriptor: source.descriptor).contentHash(of: FakeSource.sourceRecord(
            try #require(source.state.withLock { $0.records["r1"] }), modelFields: ["state"]))
        #expect(events[2].id == ChangeEvent.makeID(connection: "acme", object: "incident", recordID: "r1",
                                                   sourceTimestamp: at(70), contentHash: hash, kind: .updated))
        // The stored body is what a replay sends: changed_fields survives the round trip.
        let body = try #require(try temp.store.event(id: events[1].id)).event.webhookBody(includeRaw: false)
        #expect(body["data"]?["changed_fields"] == ["comments"] && body["data"]?["changes"] == .object(JSONObject()))
    }

    @Test("rule 5a: two changes of one record in one scan each name their own changed_fields (against the first read)")
    func changedFieldsAcrossCarry() async throws {
        let temp = try TempStore()
        let source = FakeSource(model: "ticket", modelFields: ["state"])
        source.upsert("r1", at: at(0), ["state": "1", "comments": "a", "u_x": "1"])
        source.upsert("r2", at: at(1), ["state": "1"])
        let runner = makeRunner(source, temp, initialSync: .emit, pageSize: 1)
        _ = try await runner.runCycle()
        source.upsert("r1", at: at(10), ["state": "1", "comments": "b", "u_x": "1"])
        source.state.withLock { state in
            // r1 changes again while the scan is on its second page: it is read twice, the second time against
            // the first read's (carried) state.
            state.beforeDelta[state.deltaCalls + 2] = { records in
                records["r1"]?.fields["u_x"] = "2"
                records["r1"]?.updatedAt = at(20)
            }
        }
        source.upsert("r2", at: at(15), ["state": "1", "comments": "new"])
        _ = try await runner.runCycle()
        let updates = try temp.events().filter { $0.kind == .updated }
        #expect(updates.map(\.recordID) == ["r1", "r2", "r1"])
        #expect(updates.map(\.changedFields) == [["comments"], ["comments"], ["u_x"]])
    }

    @Test("rule 5a: emit model_changes emits nothing for a change outside the model, but the snapshot moves")
    func modelChangesOptOut() async throws {
        let temp = try TempStore()
        let (source, runner) = try await ticketWithOneRecord(temp, ["state": "1", "internal": "a"], emit: .modelChanges)
        source.upsert("r1", at: at(60), ["state": "1", "internal": "b"])  // raw changed, model unchanged
        let hidden = try await runner.runCycle()
        #expect(hidden.eventCount == 0 && hidden.suppressed == 1 && hidden.snapshotsWritten == 1)
        let stored = try #require(try temp.store.snapshots(connection: "acme", object: "incident", ids: ["r1"])["r1"])
        #expect(stored.raw["internal"] == "b")
        let after = try await runner.runCycle()               // the new hash was stored: a plain re-read now
        #expect(after.unchanged == after.records && after.snapshotsWritten == 0)
        source.upsert("r1", at: at(70), ["state": "2", "internal": "b"])
        _ = try await runner.runCycle()
        let events = try temp.events()
        #expect(events.map(\.type) == ["ticket.created", "ticket.updated"])
        #expect(events[1].changes == ["state": FieldChange(from: "1", to: "2")] && events[1].changedFields == ["state"])
    }

    @Test("A→B→A→B yields 4 distinct event ids, and the same ids when re-run after a crash (rule 8)")
    func deterministicIDs() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        let runner = makeRunner(source, temp, clock: StepClock(), initialSync: .emit)
        let states: [(Int, JSONValue)] = [(0, "A"), (10, "B"), (20, "A"), (30, "B")]
        var committed: [String] = []
        var replayed: [String] = []
        for (time, value) in states {
            source.upsert("r1", at: at(time), ["v": value])
            // "Crash": the state before this cycle's commit, reopened by a fresh process with another clock.
            let beforeCommit = try temp.copy()
            let report = try await runner.runCycle()
            committed += report.events.map(\.id)
            let crashed = makeRunner(source, beforeCommit, clock: StepClock(start: Date(timeIntervalSince1970: 2e9)),
                                     initialSync: .emit)
            replayed += try await crashed.runCycle().events.map(\.id)
        }
        #expect(committed.count == 4 && Set(committed).count == 4)
        #expect(replayed == committed)
        #expect(try temp.events().map(\.kind) == [.created, .updated, .updated, .updated])
    }

    @Test("a failed sweep infers no deletes; the next complete sweep does (rule 6)")
    func failedSweep() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        for id in ["a", "b", "c", "d", "e"] { source.upsert(id, at: at(1), ["x": "1"]) }
        let clock = StepClock()
        let runner = makeRunner(source, temp, clock: clock, initialSync: .silent, pageSize: 2, reconcileEvery: .zero)
        _ = try await runner.runCycle()
        source.remove("b")
        source.remove("e")
        source.state.withLock { $0.idErrors[$0.idCalls + 2] = .http(status: 500, message: "listing failed") }
        let failed = try await runner.runCycle()
        #expect(failed.reconcileError?.contains("listing failed") == true)
        #expect(!failed.reconciled && failed.deletions == 0)
        #expect(try temp.events().isEmpty)
        #expect(try temp.store.liveRecordIDs(connection: "acme", object: "incident").count == 5)

        clock.advance(3600)                                   // past the sweep's retry backoff
        let complete = try await runner.runCycle()
        #expect(complete.reconciled && complete.reconcileIDs == 3)
        let events = try temp.events()
        #expect(events.map(\.kind) == [.deleted, .deleted])
        #expect(events.map(\.recordID) == ["b", "e"])
        #expect(try temp.store.liveRecordIDs(connection: "acme", object: "incident") == ["a", "c", "d"])
    }

    @Test("initial sync: silent writes a baseline without events (even across a resumed scan); emit creates (§6)")
    func initialSync() async throws {
        let silentTemp = try TempStore()
        let source = FakeSource()
        for i in 0..<30 { source.upsert(String(format: "id%02d", i), at: at(i), ["n": .integer(Int64(i))]) }
        source.state.withLock { $0.deltaErrors[2] = .transport(message: "reset") }
        let silent = makeRunner(source, silentTemp, initialSync: .silent, pageSize: 10)
        await #expect(throws: ProviderError.self) { _ = try await silent.runCycle() }
        let resumed = try await silent.runCycle()
        #expect(resumed.resumed && resumed.silent && resumed.initialSync)
        #expect(try silentTemp.events().isEmpty)
        #expect(try silentTemp.store.liveRecordIDs(connection: "acme", object: "incident", limit: 100).count == 30)
        source.upsert("id05", at: at(100), ["n": 500])
        source.upsert("new", at: at(101), ["n": 1])
        let later = try await silent.runCycle()
        #expect(!later.silent && !later.initialSync)
        #expect(try silentTemp.events().map(\.kind) == [.updated, .created])

        let emitTemp = try TempStore()
        let emitSource = FakeSource()
        for i in 0..<30 { emitSource.upsert(String(format: "id%02d", i), at: at(i), ["n": .integer(Int64(i))]) }
        let emit = makeRunner(emitSource, emitTemp, initialSync: .emit, pageSize: 10)
        let report = try await emit.runCycle()
        #expect(report.initialSync && !report.silent && report.eventCount == 30)
        #expect(try emitTemp.events().allSatisfy { $0.kind == .created })
    }

    @Test("a record seen twice in one scan (moved during it) emits once per distinct content (rules 2, 5)")
    func movedDuringScan() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        for (i, id) in ["a", "b", "c", "d"].enumerated() { source.upsert(id, at: at(i), ["v": "1"]) }
        let runner = makeRunner(source, temp, initialSync: .emit, pageSize: 2)
        // Before page 2: "a" is touched (moves behind the position, same content), "b" really changes.
        source.state.withLock { state in
            state.beforeDelta[2] = { records in
                records["a"]?.updatedAt = at(50)
                records["a"]?.modCount += 1
                records["b"]?.updatedAt = at(51)
                records["b"]?.fields["v"] = "2"
            }
        }
        let report = try await runner.runCycle()
        #expect(report.records == 6)                           // a, b, c, d, then a and b again
        let events = try temp.events()
        #expect(events.map(\.recordID) == ["a", "b", "c", "d", "b"])
        #expect(events.map(\.kind) == [.created, .created, .created, .created, .updated])
    }

    @Test("short pages that announce more keep the scan going; only the end marker ends it (rule 4)")
    func shortPages() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        for i in 0..<25 { source.upsert(String(format: "id%02d", i), at: at(i), ["n": .integer(Int64(i))]) }
        source.state.withLock { $0.shortPageLimit = 4 }
        let runner = makeRunner(source, temp, initialSync: .emit, pageSize: 10)
        let report = try await runner.runCycle()
        #expect(report.pages == 7 && report.eventCount == 25)
    }

    @Test("a provider that repeats a scan position stops the cycle with an error instead of spinning (rule 4)")
    func stalledPagination() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        for i in 0..<5 { source.upsert("id\(i)", at: at(i), ["n": .integer(Int64(i))]) }
        source.state.withLock { $0.stuckNext = ScanPosition(timestamp: at(1), recordID: "id1") }
        let runner = makeRunner(source, temp, initialSync: .emit, pageSize: 2)
        await #expect(throws: EngineError.self) { _ = try await runner.runCycle() }
        #expect(source.deltaCalls == 2)
        // Page 1 committed, its cursor points at the stuck position; nothing else happened.
        #expect(try temp.events().count == 2)
    }

    @Test("lower bound = watermark − lookback − one granule, inclusive (rule 2)")
    func lowerBound() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        source.upsert("a", at: at(100), ["v": "1"])
        let runner = makeRunner(source, temp, lookback: .seconds(5))
        _ = try await runner.runCycle()
        _ = try await runner.runCycle()
        #expect(source.requests[0].lowerBound == nil)
        #expect(source.requests.last?.lowerBound == at(100 - 5 - 1))
        // A late-visible row inside the lookback window is still captured.
        source.upsert("late", at: at(97), ["v": "1"])
        let report = try await runner.runCycle()
        #expect(report.events.map(\.recordID) == ["late"])
    }

    @Test("idle polls send the stored ETag and a 304 ends the cycle without writes (rule 9)")
    func conditionalRequests() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        source.state.withLock { $0.etags = true }
        source.upsert("a", at: at(1), ["v": "1"])
        let runner = makeRunner(source, temp)
        _ = try await runner.runCycle()                       // watermark moves: validator for the old bound
        _ = try await runner.runCycle()                       // stores the validator for the current bound
        let cursorBefore = try temp.cursor(source)
        let idle = try await runner.runCycle()
        #expect(idle.notModified && idle.records == 0)
        #expect(source.requests.last?.ifNoneMatch != nil)
        #expect(try temp.cursor(source) == cursorBefore)
        source.upsert("a", at: at(1), ["v": "2"])             // same timestamp, new content: a 200 again
        let changed = try await runner.runCycle()
        #expect(!changed.notModified && changed.eventCount == 1)
    }

    @Test("records that do not emit (pull requests) advance the cursor and are snapshotted, silently")
    func nonEmitting() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        source.upsert("pr", at: at(1), ["v": "1"], emits: false)
        source.upsert("issue", at: at(2), ["v": "1"])
        let runner = makeRunner(source, temp)
        let report = try await runner.runCycle()
        #expect(report.events.map(\.recordID) == ["issue"] && report.suppressed == 1)
        #expect(try temp.store.liveRecordIDs(connection: "acme", object: "incident") == ["issue", "pr"])
        #expect(try temp.cursor(source)?.watermark == at(2))
    }

    @Test("dry run returns the would-be events and writes nothing")
    func dryRun() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        for i in 0..<5 { source.upsert("id\(i)", at: at(i), ["n": .integer(Int64(i))]) }
        let runner = makeRunner(source, temp, initialSync: .emit, pageSize: 2)
        let preview = try await runner.runCycle(dryRun: true)
        #expect(preview.dryRun && preview.eventCount == 5 && preview.previewEvents.count == 5)
        #expect(try temp.events().isEmpty)
        #expect(try temp.cursor(source) == nil)
        #expect(try temp.store.pollStatuses().isEmpty)
        let real = try await runner.runCycle()
        #expect(real.events.map(\.id) == preview.previewEvents.map(\.id))
        #expect(preview.description.hasPrefix("acme/incident: 3 pages, 5 records (0 unchanged), 5 events would be committed (record.created 5)"))
        #expect(!real.description.contains("would be"))
    }

    @Test("delete feed: live records become deleted with the feed's time; stale notices and re-reads emit nothing (rule 6)")
    func deleteFeed() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        source.upsert("a", at: at(1), ["v": "1"])
        source.upsert("b", at: at(2), ["v": "1"])
        let runner = makeRunner(source, temp, initialSync: .silent)
        _ = try await runner.runCycle()
        source.remove("a")
        source.state.withLock { $0.deleteFeed = [DeletedRecordNotice(id: "a", deletedAt: at(10))] }
        let first = try await runner.runCycle()
        #expect(first.deleteFeedRead && first.deletions == 1)
        let again = try await runner.runCycle()                // the overlap re-reads the notice: no second event
        #expect(again.deletions == 0)
        source.upsert("a", at: at(20), ["v": "1"])              // undelete → created
        _ = try await runner.runCycle()
        _ = try await runner.runCycle()                        // the old notice must not delete it again
        let events = try temp.events()
        #expect(events.map(\.kind) == [.deleted, .created])
        #expect(events[0].occurredAt == at(10))
        #expect(try temp.store.liveRecordIDs(connection: "acme", object: "incident") == ["a", "b"])
    }

    @Test("poll status and metrics record each cycle")
    func statusAndMetrics() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        source.upsert("a", at: at(1), ["v": "1"])
        let metrics = MetricsRegistry()
        let sink = MemoryLogSink()
        let runner = makeRunner(source, temp, metrics: metrics, sink: sink)
        _ = try await runner.runCycle()
        source.state.withLock { $0.deltaErrors[$0.deltaCalls + 1] = .rateLimited(retryAfter: .seconds(1), message: "429") }
        await #expect(throws: ProviderError.self) { _ = try await runner.runCycle() }
        #expect(metrics.value("deltahook_polls_total", labels: ["acme", "incident", "success"]) == 1)
        #expect(metrics.value("deltahook_polls_total", labels: ["acme", "incident", "rate_limited"]) == 1)
        #expect(metrics.value("deltahook_events_total", labels: ["acme", "incident", "record.created"]) == 1)
        #expect(metrics.value("deltahook_records_read_total", labels: ["acme", "incident"]) == 1)
        #expect(metrics.value("deltahook_last_success_timestamp_seconds", labels: ["acme", "incident"]) != nil)
        #expect(metrics.value("deltahook_cursor_lag_seconds", labels: ["acme", "incident"]) != nil)
        let status = try #require(try temp.store.pollStatuses().first)
        #expect(status.eventsTotal == 1 && status.recordsTotal == 1 && status.lastSuccessAt != nil)
        #expect(status.lastError?.contains("rate limited") == true)
    }

    @Test("provider page warnings reach the log with CONNECTION and OBJECT fields")
    func warningsLogged() async throws {
        struct WarningSource: ObjectSource {
            let descriptor = FakeSource().descriptor
            func fetchDelta(_ request: DeltaRequest) async throws -> DeltaPage {
                DeltaPage(records: [], next: nil, warnings: ["page emptied by ACLs; stepped over"])
            }
            func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage { IDPage(ids: [], next: nil) }
            func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? { nil }
        }
        let temp = try TempStore()
        let sink = MemoryLogSink()
        let plan = ObjectPlan(descriptor: FakeSource().descriptor, interval: .seconds(1))
        let runner = PollRunner(target: PollTarget(plan: plan, source: WarningSource()), store: temp.store,
                                router: { _ in [] }, logger: Logger(level: .debug, sink: sink))
        let report = try await runner.runCycle()
        #expect(report.warnings == ["page emptied by ACLs; stepped over"])
        let record = try #require(sink.records.first { $0.level == .warning })
        let fields = Dictionary(record.fields.map { ($0.field.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(fields["CONNECTION"] == "acme" && fields["OBJECT"] == "incident")
        #expect(fields["DETAIL"]?.contains("ACLs") == true)
    }
}

@Suite("Delete feed start")
struct DeleteFeedStartTests {
    @Test("the first delete-feed read starts at the delta watermark's lower bound, not the feed's beginning (rule 6)")
    func firstReadStartsAtWatermark() async throws {
        final class FeedProbe: ObjectSource {
            let inner = FakeSource()
            let sinces = Mutex<[Date?]>([])
            var descriptor: ObjectDescriptor { inner.descriptor }
            func fetchDelta(_ request: DeltaRequest) async throws -> DeltaPage { try await inner.fetchDelta(request) }
            func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage {
                try await inner.fetchIDs(after: token, pageSize: pageSize)
            }
            func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? {
                sinces.withLock { $0.append(since) }
                return DeletionPage(deletions: [], next: nil)
            }
        }
        let temp = try TempStore()
        let probe = FeedProbe()
        probe.inner.upsert("a", at: at(100), ["v": "1"])
        let plan = ObjectPlan(descriptor: probe.descriptor, interval: .seconds(1), lookback: .seconds(2),
                              reconcileEvery: nil)
        let runner = PollRunner(target: PollTarget(plan: plan, source: probe), store: temp.store, router: { _ in [] },
                                logger: Logger(sink: MemoryLogSink()), now: StepClock().function)
        // The feed is read before the scan (rule 6a): the first cycle has no watermark yet and reads no feed (the
        // scan reads every record alive); the second reads it from the watermark's lower bound.
        _ = try await runner.runCycle()
        #expect(probe.sinces.withLock { $0 }.isEmpty)
        _ = try await runner.runCycle()
        #expect(probe.sinces.withLock { $0 } == [at(100 - 2 - 1)])
    }
}

@Suite("Idle pages")
struct IdlePageTests {
    @Test("unchanged pages may defer the cursor write; an error then only causes an unchanged re-read (rule 1)")
    func idlePagesDeferCursor() async throws {
        let temp = try TempStore()
        let source = FakeSource()
        for i in 0..<30 { source.upsert(String(format: "id%02d", i), at: at(i), ["n": .integer(Int64(i))]) }
        let runner = makeRunner(source, temp, initialSync: .silent, pageSize: 10, lookback: .seconds(3600))
        _ = try await runner.runCycle()
        let settled = try temp.cursor(source)
        source.state.withLock { $0.deltaErrors[$0.deltaCalls + 3] = .transport(message: "reset") }
        await #expect(throws: ProviderError.self) { _ = try await runner.runCycle() }
        #expect(try temp.cursor(source)?.resumeState == settled?.resumeState)  // nothing written for idle pages
        source.upsert("id29", at: at(29), ["n": 2900])
        let report = try await runner.runCycle()
        #expect(!report.resumed && report.records == 30 && report.unchanged == 29)
        #expect(try temp.events().map(\.recordID) == ["id29"])
    }
}
