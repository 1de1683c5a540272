// An in-memory provider for engine tests: records with ids, timestamps and fields that tests mutate between
// (and during) cycles, keyset pagination on (timestamp, id), scripted failures, short pages, ETags, an id
// listing and a delete feed. Plus a real StateStore in a temporary directory and a stepping clock.
import Core
import Engine
import Foundation
import Logging
import Store
import Synchronization

struct FakeRecord: Sendable {
    var id: String
    var updatedAt: Date
    var fields: [String: JSONValue]
    var modCount: Int64 = 0
    var emits = true
}

/// A clock that moves one second per reading, so "later" is always later and nothing depends on wall time.
final class StepClock: Sendable {
    private let current: Mutex<Date>
    init(start: Date = Date(timeIntervalSince1970: 1_800_000_000)) { current = Mutex(start) }
    func now() -> Date { current.withLock { $0 = $0.addingTimeInterval(1); return $0 } }
    func advance(_ seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
    var function: @Sendable () -> Date { { [self] in now() } }
}

final class FakeSource: ObjectSource {
    struct State {
        var records: [String: FakeRecord] = [:]
        var deleteFeed: [DeletedRecordNotice]? = nil
        /// fetchDelta call number (1-based, over the source's life) → error thrown instead of answering.
        var deltaErrors: [Int: ProviderError] = [:]
        /// fetchIDs call number → error.
        var idErrors: [Int: ProviderError] = [:]
        /// Before answering fetchDelta call n, mutate the records (a record moving during a scan).
        var beforeDelta: [Int: @Sendable (inout [String: FakeRecord]) -> Void] = [:]
        /// Return at most this many records per page while still announcing more (ServiceNow ACL filtering).
        var shortPageLimit: Int? = nil
        /// Answer every page with this `next` (a broken adapter).
        var stuckNext: ScanPosition? = nil
        var etags = false
        /// Pages asked with a larger page size fail with `responseTooLarge` (a response over max_response_bytes).
        var largestAnsweredPageSize: Int? = nil
        /// id → reason: the adapter rejects these records (they go to `DeltaPage.rejected`, the scan steps past).
        var poison: [String: String] = [:]
        /// What the id listing answers instead of the stored records' ids (an ACL or scope change at the provider).
        var listing: [String]? = nil
        var deltaCalls = 0
        var idCalls = 0
        var requests: [DeltaRequest] = []
        /// false: `fetchRecord` answers `unsupported` (a source without single-record reads).
        var singleReads = true
        /// Ids asked for with `fetchRecord`, in order.
        var fetchedRecords: [String] = []
        /// Source calls in order ("delta", "ids", "deletions", "record"), to prove the order of a cycle.
        var calls: [String] = []
    }

    let descriptor: ObjectDescriptor
    let state = Mutex(State())
    /// Top-level fields of the normalized model (model != "record"); nil = the raw fields.
    let modelFields: Set<String>?

    init(connection: String = "acme", object: String = "incident", model: String = "record",
         modelFields: Set<String>? = nil) {
        descriptor = ObjectDescriptor(connection: connection, provider: "fake", object: object, model: model,
                                      volatileFields: ["sys_updated_on", "sys_mod_count"],
                                      granularity: .seconds(1))
        self.modelFields = modelFields
    }

    // MARK: mutation helpers

    func upsert(_ id: String, at time: Date, _ fields: [String: JSONValue], emits: Bool = true) {
        state.withLock { state in
            let count = (state.records[id]?.modCount ?? -1) + 1
            state.records[id] = FakeRecord(id: id, updatedAt: time, fields: fields, modCount: count, emits: emits)
        }
    }

    /// Changes only the volatile bookkeeping fields (a "touch").
    func touch(_ id: String, at time: Date) {
        state.withLock { state in
            state.records[id]?.updatedAt = time
            state.records[id]?.modCount += 1
        }
    }

    func remove(_ id: String) { _ = state.withLock { $0.records.removeValue(forKey: id) } }

    var requests: [DeltaRequest] { state.withLock { $0.requests } }
    var deltaCalls: Int { state.withLock { $0.deltaCalls } }

    static func sourceRecord(_ record: FakeRecord, modelFields: Set<String>?) -> SourceRecord {
        var raw = JSONObject()
        raw["sys_id"] = .string(record.id)
        raw["sys_updated_on"] = .string(Timestamps.sqlStyle(record.updatedAt))
        raw["sys_mod_count"] = .integer(record.modCount)
        for key in record.fields.keys.sorted() { raw[key] = record.fields[key] }
        var normalized = raw
        if let modelFields {
            normalized = JSONObject()
            normalized["id"] = .string(record.id)
            for key in record.fields.keys.sorted() where modelFields.contains(key) { normalized[key] = record.fields[key] }
        }
        return SourceRecord(id: record.id, updatedAt: record.updatedAt, raw: .object(raw), record: .object(normalized),
                            emits: record.emits)
    }

    // MARK: ObjectSource

    func fetchDelta(_ request: DeltaRequest) async throws -> DeltaPage {
        let (page, error) = state.withLock { state -> (DeltaPage?, (any Error)?) in
            state.deltaCalls += 1
            state.calls.append("delta")
            state.requests.append(request)
            if let mutate = state.beforeDelta[state.deltaCalls] { mutate(&state.records) }
            if let error = state.deltaErrors[state.deltaCalls] { return (nil, error) }
            if let largest = state.largestAnsweredPageSize, request.pageSize > largest {
                return (nil, ProviderError.responseTooLarge(limit: 1024, message: "page of \(request.pageSize) records"))
            }
            let matching = state.records.values
                .filter { record in
                    if let bound = request.lowerBound, record.updatedAt < bound { return false }
                    if let after = request.after {
                        return (record.updatedAt, record.id) > (after.timestamp, after.recordID)
                    }
                    return true
                }
                .sorted { ($0.updatedAt, $0.id) < ($1.updatedAt, $1.id) }
            let limit = min(request.pageSize, state.shortPageLimit ?? request.pageSize)
            let taken = Array(matching.prefix(limit))
            let more = matching.count > taken.count
            var next: ScanPosition? = nil
            if more, let last = taken.last {
                next = ScanPosition(timestamp: last.updatedAt, recordID: last.id)
            }
            if let stuck = state.stuckNext { next = stuck }
            var records: [SourceRecord] = []
            var rejected: [RejectedRecord] = []
            for (index, record) in taken.enumerated() {
                let source = FakeSource.sourceRecord(record, modelFields: self.modelFields)
                if let reason = state.poison[record.id] {
                    rejected.append(RejectedRecord(id: record.id, position: "$.result[\(index)]", reason: reason,
                                                   raw: source.raw))
                } else {
                    records.append(source)
                }
            }
            var validator: String? = nil
            if state.etags && request.after == nil {
                let body = records.map { "\($0.id):\(ContentHash.of($0.raw))" }.joined(separator: ",")
                validator = "W/\"" + ContentHash.of(.string(body)).prefix(16) + "\""
                if request.ifNoneMatch == validator {
                    return (DeltaPage(records: [], next: nil, notModified: true), nil)
                }
            }
            return (DeltaPage(records: records, next: next, validator: validator, rejected: rejected), nil)
        }
        if let error { throw error }
        return page ?? DeltaPage(records: [], next: nil)
    }

    func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage {
        try state.withLock { state in
            state.idCalls += 1
            state.calls.append("ids")
            if let error = state.idErrors[state.idCalls] { throw error }
            let ids = (state.listing ?? state.records.keys.sorted()).sorted().filter { token == nil || $0 > token! }
            let page = Array(ids.prefix(pageSize))
            return IDPage(ids: page, next: ids.count > page.count ? page.last : nil)
        }
    }

    func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? {
        state.withLock { state in
            state.calls.append("deletions")
            guard let feed = state.deleteFeed else { return nil }
            let matching = feed
                .filter { notice in
                    if let since, notice.deletedAt < since { return false }
                    if let after { return (notice.deletedAt, notice.id) > (after.timestamp, after.recordID) }
                    return true
                }
                .sorted { ($0.deletedAt, $0.id) < ($1.deletedAt, $1.id) }
            let page = Array(matching.prefix(pageSize))
            let next = matching.count > page.count
                ? page.last.map { ScanPosition(timestamp: $0.deletedAt, recordID: $0.id) } : nil
            return DeletionPage(deletions: page, next: next)
        }
    }
}

extension FakeSource {
    /// One record by id, as a delta page would carry it (docs/DESIGN.md §2 rule 6a); poison records come back
    /// rejected, absent ones gone.
    func fetchRecord(id: String) async throws -> RecordLookup {
        state.withLock { state in
            state.calls.append("record")
            guard state.singleReads else { return .unsupported }
            state.fetchedRecords.append(id)
            guard let record = state.records[id] else { return .gone }
            let source = FakeSource.sourceRecord(record, modelFields: modelFields)
            if let reason = state.poison[id] {
                return .rejected(RejectedRecord(id: id, position: "$.result", reason: reason, raw: source.raw))
            }
            return .found(source)
        }
    }

    var fetchedRecords: [String] { state.withLock { $0.fetchedRecords } }
    var calls: [String] { state.withLock { $0.calls } }
}

/// A store in a fresh temporary directory, removed when the test's scope ends.
final class TempStore {
    let directory: URL
    let store: StateStore

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-engine-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try StateStore(path: directory.appendingPathComponent(StateStore.fileName).path)
    }

    /// A second store opened on a copy of this one's current file (the state a crash would leave).
    func copy() throws -> TempStore {
        try store.checkpoint()
        let other = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-engine-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: directory.appendingPathComponent(StateStore.fileName),
                                         to: other.appendingPathComponent(StateStore.fileName))
        return try TempStore(existing: other)
    }

    private init(existing: URL) throws {
        directory = existing
        store = try StateStore(path: existing.appendingPathComponent(StateStore.fileName).path)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func events(_ connection: String = "acme") throws -> [ChangeEvent] {
        try store.events(EventQuery(connection: connection, limit: 100_000)).map(\.event)
    }

    func cursor(_ source: FakeSource) throws -> CursorState? {
        try store.cursor(connection: source.descriptor.connection, object: source.descriptor.object)
    }
}

let testLogSink = MemoryLogSink()

func makeRunner(_ source: FakeSource, _ temp: TempStore, clock: StepClock = StepClock(),
                initialSync: InitialSyncMode = .emit, pageSize: Int = 100, lookback: Duration = .seconds(1),
                reconcileEvery: Duration? = nil, useDeleteFeed: Bool = true, metrics: MetricsRegistry? = nil,
                sink: MemoryLogSink = testLogSink, deleteGuard: DeleteGuardPolicy? = .defaults,
                configure: (inout ObjectPlan) -> Void = { _ in }) -> PollRunner {
    var plan = ObjectPlan(descriptor: source.descriptor, interval: .milliseconds(10), lookback: lookback,
                          reconcileEvery: reconcileEvery, initialSync: initialSync, pageSize: pageSize,
                          useDeleteFeed: useDeleteFeed)
    plan.deleteGuard = deleteGuard
    configure(&plan)
    return PollRunner(target: PollTarget(plan: plan, source: source), store: temp.store, router: { _ in ["crm"] },
                      logger: Logger(level: .debug, sink: sink), metrics: metrics, now: clock.function)
}

let t0 = Date(timeIntervalSince1970: 1_764_396_000)  // 2025-11-29T06:00:00Z
func at(_ seconds: Int) -> Date { t0.addingTimeInterval(TimeInterval(seconds)) }
