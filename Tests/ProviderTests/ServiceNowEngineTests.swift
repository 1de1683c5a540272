// Issue 4 acceptance, end to end and in-process: the real Engine (PollRunner, Reconciler, Scheduler) and a
// real StateStore in a temporary directory, reading the ServiceNow emulator through the ServiceNow adapter
// over loopback HTTP. Each test names the docs/DESIGN.md §2 rule it proves.
import Config
import Core
import Emulators
import Engine
import Foundation
import Logging
import Providers
import Store
import Synchronization
import Testing
import TestSupport

/// Log records kept in memory (warnings are part of some assertions).
final class ServiceNowLogSink: LogSink {
    private let records = Mutex<[LogRecord]>([])
    func write(_ record: LogRecord) { records.withLock { $0.append(record) } }
}

/// A store in a fresh temporary directory, removed on deinit.
final class ServiceNowStore {
    let directory: TemporaryDirectory
    let store: StateStore

    init() throws {
        directory = try TemporaryDirectory(prefix: "deltahook-snow")
        store = try StateStore(path: directory.file(StateStore.fileName))
    }

    deinit { directory.remove() }

    func events(_ object: String? = nil) throws -> [ChangeEvent] {
        try store.events(EventQuery(connection: "acme-snow", object: object, limit: 100_000)).map(\.event)
    }
}

extension ServiceNowHarness {
    func target(_ table: String, model: ServiceNowModel = .ticket, pageSize: Int = 100, auditDeletes: Bool = true,
                reconcileEvery: Duration? = nil, initialSync: InitialSyncMode = .emit) -> PollTarget {
        let source = self.source(table, model: model, auditDeletes: auditDeletes)
        let plan = ObjectPlan(descriptor: source.descriptor, interval: .milliseconds(20), lookback: .seconds(1),
                              reconcileEvery: reconcileEvery, initialSync: initialSync, pageSize: pageSize,
                              useDeleteFeed: auditDeletes)
        return PollTarget(plan: plan, source: source)
    }

    func runner(_ target: PollTarget, _ store: ServiceNowStore, clock: TestClock? = nil) -> PollRunner {
        let now: @Sendable () -> Date
        if let clock { now = { clock.now() } } else { now = { Date() } }
        return PollRunner(target: target, store: store.store, router: { _ in ["crm"] },
                          logger: Logger(level: .debug, sink: ServiceNowLogSink()), now: now)
    }
}

/// Outcomes the scheduler reported, per object.
final class OutcomeLog: Sendable {
    private let entries = Mutex<[(JobKey, CycleOutcome)]>([])
    func record(_ key: JobKey, _ outcome: CycleOutcome) { entries.withLock { $0.append((key, outcome)) } }
    func outcomes(_ object: String) -> [CycleOutcome] { entries.withLock { $0.filter { $0.0.object == object }.map(\.1) } }
    func succeeded(_ object: String) -> Bool {
        outcomes(object).contains { if case .succeeded = $0 { true } else { false } }
    }
    func rateLimitWaits(_ object: String) -> [Duration] {
        outcomes(object).compactMap { if case .rateLimited(let wait) = $0 { wait } else { nil } }
    }
    func failures(_ object: String) -> [any Error] {
        outcomes(object).compactMap { if case .failed(let error, _) = $0 { error } else { nil } }
    }
}

@Suite("ServiceNow end to end (engine + store + emulator)")
struct ServiceNowEngineTests {
    @Test("rules 3 and 8: a same-second burst of 500 incident updates across pages is captured exactly once")
    func burstOf500() async throws {
        try await withServiceNow { h in
            let store = try ServiceNowStore()
            var ids: [String] = []
            for i in 0..<500 { ids.append(try h.emulator.insert("incident", ["number": "INC\(10_000 + i)", "state": "1"], at: at())) }
            let runner = h.runner(h.target("incident", pageSize: 100, initialSync: .silent), store)
            let baseline = try await runner.runCycle()
            #expect(baseline.records == 500 && baseline.eventCount == 0)

            for id in ids { try h.emulator.update("incident", id, ["state": "2"], at: at(60)) }
            let report = try await runner.runCycle()
            #expect(report.pages >= 6, "500 rows of one second span several pages")
            let updates = try store.events().filter { $0.kind == .updated }
            #expect(updates.count == 500)
            #expect(Set(updates.map(\.recordID)) == Set(ids))
            #expect(updates.allSatisfy { $0.type == "ticket.updated" && $0.changes?["status"] == FieldChange(from: "open", to: "in_progress") })
            #expect(updates.allSatisfy { $0.occurredAt == at(60) })

            let again = try await runner.runCycle()
            #expect(again.eventCount == 0 && again.unchanged > 0, "re-reads through the inclusive bound emit nothing")
        }
    }

    @Test("rule 4: short ACL pages and a page emptied by ACLs do not end the scan early")
    func aclPages() async throws {
        try await withServiceNow { h in
            let store = try ServiceNowStore()
            var visible: [String] = []
            var hidden: [String] = []
            for i in 0..<60 {
                let id = try h.emulator.insert("incident", ["number": "INC\(i)", "state": "1"], at: at(i))
                // rows 10..24 all hidden (a page emptied entirely), and every 4th row elsewhere
                if (10..<25).contains(i) || i % 4 == 0 { hidden.append(id) } else { visible.append(id) }
            }
            h.emulator.setHidden("incident", hidden)
            let report = try await h.runner(h.target("incident", pageSize: 10), store).runCycle()
            let created = try store.events().filter { $0.kind == .created }
            #expect(Set(created.map(\.recordID)) == Set(visible) && created.count == visible.count)
            #expect(report.warnings.contains { $0.contains("hidden by ACLs") })
        }
    }

    @Test("rules 1 and 3: an update landing mid-scan is captured, nothing lost or doubled")
    func updateMidScan() async throws {
        try await withServiceNow { h in
            let store = try ServiceNowStore()
            var ids: [String] = []
            for i in 0..<40 { ids.append(try h.emulator.insert("incident", ["state": "1"], at: at(i))) }
            let moved = ids[3]
            let emulator = h.emulator
            h.emulator.setRequestHook { request in
                if request.number == 3 { try? emulator.update("incident", moved, ["state": "2"], at: at(500)) }
            }
            _ = try await h.runner(h.target("incident", pageSize: 8), store).runCycle()
            let events = try store.events()
            #expect(events.filter { $0.kind == .created }.count == 40)
            let updates = events.filter { $0.kind == .updated }
            #expect(updates.map(\.recordID) == [moved])
            #expect(updates.first?.changes?["status"] == FieldChange(from: "open", to: "in_progress"))
        }
    }

    @Test("rule 11: a token expiring mid-scan is refreshed and the scan continues, nothing lost or doubled")
    func tokenExpiryMidScan() async throws {
        try await withServiceNow(auth: oauth(.refreshToken)) { h in
            let store = try ServiceNowStore()
            for i in 0..<50 { try h.emulator.insert("incident", ["state": "1"], at: at(i / 5)) }
            let emulator = h.emulator
            h.emulator.setRequestHook { request in if request.number == 3 { emulator.expireAllTokens() } }
            let report = try await h.runner(h.target("incident", pageSize: 10), store).runCycle()
            let created = try store.events().filter { $0.kind == .created }
            #expect(created.count == 50 && Set(created.map(\.recordID)).count == 50)
            #expect(report.duplicates.isEmpty)
            #expect(h.emulator.issuedGrants == ["refresh_token", "refresh_token"])
            #expect(h.emulator.tableRequestLog.filter { $0.status == 401 }.count == 1)
        }
    }

    @Test("rules 9 and 10: 429 without headers backs off exponentially with jitter and recovers")
    func headerless429() async throws {
        try await withServiceNow(backoffBase: .milliseconds(50)) { h in
            let store = try ServiceNowStore()
            for i in 0..<12 { try h.emulator.insert("incident", ["state": "1"], at: at(i)) }
            h.emulator.failNext(.rateLimited(retryAfter: nil), times: 2)
            let runner = h.runner(h.target("incident", pageSize: 5), store)
            let log = OutcomeLog()
            let scheduler = Scheduler(maxConcurrentPolls: 2) { log.record($0, $1) }
            scheduler.update(jobs: [ScheduledJob(key: runner.key, interval: .seconds(3600)) { _ = try await runner.runCycle() }])
            let recovered = await Wait.until(timeout: .seconds(20)) { log.succeeded("incident") }
            await scheduler.shutdown()
            #expect(recovered)
            let waits = log.rateLimitWaits("incident")
            #expect(waits.count == 2)
            if waits.count == 2 {
                #expect(waits[0] >= .milliseconds(40) && waits[0] <= .milliseconds(60))
                #expect(waits[1] >= .milliseconds(80) && waits[1] <= .milliseconds(120))
            }
            #expect(try store.events().filter { $0.kind == .created }.count == 12)
        }
    }

    @Test("rules 9 and 10: 429 with Retry-After makes the connection wait exactly that long")
    func retryAfter429() async throws {
        try await withServiceNow { h in
            let store = try ServiceNowStore()
            for i in 0..<3 { try h.emulator.insert("incident", ["state": "1"], at: at(i)) }
            h.emulator.failNext(.rateLimited(retryAfter: 1))
            let runner = h.runner(h.target("incident"), store)
            let log = OutcomeLog()
            let scheduler = Scheduler(maxConcurrentPolls: 2) { log.record($0, $1) }
            scheduler.update(jobs: [ScheduledJob(key: runner.key, interval: .seconds(3600)) { _ = try await runner.runCycle() }])
            let recovered = await Wait.until(timeout: .seconds(20)) { log.succeeded("incident") }
            await scheduler.shutdown()
            #expect(recovered)
            #expect(log.rateLimitWaits("incident") == [.seconds(1)])
            #expect(try store.events().count == 3)
        }
    }

    @Test("rule 6: deletes from sys_audit_delete become deleted events; a re-created sys_id is created again")
    func auditDeletes() async throws {
        try await withServiceNow { h in
            let store = try ServiceNowStore()
            var ids: [String] = []
            for i in 0..<5 { ids.append(try h.emulator.insert("incident", ["number": "INC\(i)", "state": "2"], at: at(i))) }
            let runner = h.runner(h.target("incident", pageSize: 2), store)
            _ = try await runner.runCycle()
            try h.emulator.delete("incident", ids[1], at: at(100))
            try h.emulator.delete("incident", ids[3], at: at(101))
            let report = try await runner.runCycle()
            #expect(report.deleteFeedRead && report.deletions == 2)
            let deleted = try store.events().filter { $0.kind == .deleted }
            #expect(Set(deleted.map(\.recordID)) == [ids[1], ids[3]])
            #expect(deleted.allSatisfy { $0.type == "ticket.deleted" && $0.record["status"] == "in_progress" })
            #expect(deleted.first { $0.recordID == ids[1] }?.occurredAt == at(100))

            try h.emulator.insert("incident", ["number": "INC1", "state": "1"], at: at(200), sysID: ids[1])
            _ = try await runner.runCycle()
            let recreated = try store.events().filter { $0.kind == .created && $0.recordID == ids[1] }
            #expect(recreated.count == 2, "created, deleted, created again")
            #expect(try await runner.runCycle().deletions == 0, "the audit row is not applied twice")
        }
    }

    @Test("rule 6: deletes on an unaudited table are found by a complete reconciliation sweep")
    func reconciliationDeletes() async throws {
        let clock = TestClock(at(1000))
        try await withServiceNow(clock: clock) { h in
            let store = try ServiceNowStore()
            h.emulator.createTable("u_asset", columns: ["u_name"], auditDeletes: false)
            var ids: [String] = []
            for i in 0..<9 { ids.append(try h.emulator.insert("u_asset", ["u_name": "asset \(i)"], at: at(i))) }
            let runner = h.runner(h.target("u_asset", model: .record, pageSize: 4, auditDeletes: false,
                                           reconcileEvery: .seconds(60)), store, clock: clock)
            _ = try await runner.runCycle()
            try h.emulator.delete("u_asset", ids[5], at: at(50))
            #expect(try await runner.runCycle().deletions == 0, "no feed, sweep not due yet")
            clock.advance(61)
            let report = try await runner.runCycle()
            #expect(report.reconciled && report.reconcileIDs == 8)
            let deleted = try store.events().filter { $0.kind == .deleted }
            #expect(deleted.map(\.recordID) == [ids[5]] && deleted.first?.type == "record.deleted")
            #expect(h.emulator.tableRequestLog.allSatisfy { !$0.path.hasSuffix("sys_audit_delete") })
        }
    }

    @Test("§4 and rule 5: incident state 1 → 2 → 6 yields ticket.updated with changes.status; a touch emits nothing")
    func stateChanges() async throws {
        try await withServiceNow { h in
            let store = try ServiceNowStore()
            let id = try h.emulator.insert("incident", ["number": "INC0010001", "state": "1", "short_description": "Mail down"], at: at())
            let runner = h.runner(h.target("incident"), store)
            _ = try await runner.runCycle()
            try h.emulator.update("incident", id, ["state": "2"], at: at(10))
            _ = try await runner.runCycle()
            try h.emulator.update("incident", id, ["state": "6", "resolved_at": "2026-11-29 06:00:20"], at: at(20))
            _ = try await runner.runCycle()
            try h.emulator.update("incident", id, [:], at: at(30), by: "someone.else") // sys_mod_count, sys_updated_* only
            _ = try await runner.runCycle()
            let events = try store.events()
            #expect(events.map(\.type) == ["ticket.created", "ticket.updated", "ticket.updated"])
            #expect(events[1].changes?["status"] == FieldChange(from: "open", to: "in_progress"))
            #expect(events[2].changes?["status"] == FieldChange(from: "in_progress", to: "resolved"))
            #expect(events[2].changes?["resolved_at"] == FieldChange(from: .null, to: "2026-11-29T06:00:20Z"))
            #expect(events[2].changes?["updated_at"] == nil, "the cursor field is volatile")
            #expect(events[2].raw["state"] == "6" && events[2].record["number"] == "INC0010001")
        }
    }

    @Test("403 on one object is reported for that object only; the connection's other objects go on")
    func permissionIsPerObject() async throws {
        try await withServiceNow { h in
            let store = try ServiceNowStore()
            try h.emulator.insert("incident", ["state": "1"], at: at())
            try h.emulator.insert("sys_user", ["user_name": "beth"], at: at())
            h.emulator.setForbidden("incident")
            let incidents = h.runner(h.target("incident"), store)
            let users = h.runner(h.target("sys_user", model: .user), store)
            let log = OutcomeLog()
            let scheduler = Scheduler(maxConcurrentPolls: 2) { log.record($0, $1) }
            scheduler.update(jobs: [incidents, users].map { runner in
                ScheduledJob(key: runner.key, interval: .seconds(3600)) { _ = try await runner.runCycle() }
            })
            let done = await Wait.until(timeout: .seconds(20)) {
                log.succeeded("sys_user") && !log.failures("incident").isEmpty
            }
            await scheduler.shutdown()
            #expect(done)
            let failure = log.failures("incident").first
            guard case ProviderError.permission(let message)? = failure else {
                Issue.record("expected a permission error, got \(String(describing: failure))"); return
            }
            #expect(message.contains("Insufficient rights"))
            #expect(try store.events("sys_user").map(\.type) == ["user.created"])
            #expect(try store.events("incident").isEmpty)
            #expect(try store.store.pollStatuses().contains { $0.object == "incident" && $0.lastError?.contains("permission") == true })
        }
    }
}
