// The poll runner: one cycle of one object = a delta scan (all pages), then the delete feed, then a
// reconciliation sweep when due. DESIGN §2 rules 1–5 and 8 live here; rule 6 in Reconciler.
//
// A delta scan reads the cursor, asks for records `>=` (watermark − lookback − one granule), follows the
// provider's keyset positions until a page says the scan is over (`next == nil`), and commits each page —
// snapshots, events, their delivery rows and the cursor that covers the page — in ONE store transaction.
// A crash or error between pages therefore resumes after the last committed page, with nothing lost and
// nothing doubled (the re-read page diffs as unchanged, or yields the same deterministic event ids).
public import Core
public import Foundation
public import Logging
public import Store
import Dispatch
import Synchronization

/// Runs the cycles of one (connection, object). Never overlaps two cycles of the same object: scheduled
/// cycles and `poll-once` share one permit.
public final class PollRunner: Sendable {
    private struct Settings: Sendable {
        var target: PollTarget
        var router: EventRouter
    }

    private let settings: Mutex<Settings>
    private let store: StateStore
    private let logger: Logger
    private let metrics: EngineMetrics
    private let now: @Sendable () -> Date
    private let exclusive = AsyncSemaphore(value: 1)
    /// Delete feed and reconciliation sweeps of this object.
    public let reconciler: Reconciler

    /// - Parameters:
    ///   - router: the subscribers each event goes to; their delivery rows commit with the event.
    ///   - metrics: optional registry for the `deltahook_polls_total` … families.
    ///   - now: the detection clock (event `timestamp`, commit times, sweep start). Injected for tests.
    public init(target: PollTarget, store: StateStore, router: @escaping EventRouter, logger: Logger,
                metrics: MetricsRegistry? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
        settings = Mutex(Settings(target: target, router: router))
        self.store = store
        self.logger = logger
        self.metrics = EngineMetrics(metrics)
        self.now = now
        reconciler = Reconciler(store: store, metrics: metrics, now: now)
    }

    public var target: PollTarget { settings.withLock { $0.target } }
    public var key: JobKey { target.plan.key }

    /// Replaces plan and source (SIGHUP reload); takes effect from the next cycle.
    public func update(target: PollTarget) { settings.withLock { $0.target = target } }

    /// Replaces the router (subscribers changed on reload); takes effect from the next page.
    public func update(router: @escaping EventRouter) { settings.withLock { $0.router = router } }

    /// One full cycle: delta scan, delete feed, reconciliation when due. Records the outcome in
    /// `poll_status` and the metrics (not in a dry run).
    ///
    /// `dryRun`: reads the provider and the store but writes nothing, and returns the events the cycle
    /// would commit (`previewEvents`); reconciliation sweeps are skipped (they must write to mark ids seen).
    /// - Throws: ``Core/ProviderError`` (the scheduler maps `rateLimited` to a connection-wide wait),
    ///   ``EngineError``, ``Store/StoreError``, `CancellationError`. Nothing after the last committed page
    ///   is lost: the next cycle resumes there.
    public func runCycle(dryRun: Bool = false) async throws -> CycleReport {
        try await exclusive.withPermit { try await self.cycle(dryRun: dryRun) }
    }

    private func cycle(dryRun: Bool) async throws -> CycleReport {
        let (target, router) = settings.withLock { ($0.target, $0.router) }
        let descriptor = target.plan.descriptor
        let log = logger.with([.connection: descriptor.connection, .object: descriptor.object])
        var report = CycleReport(connection: descriptor.connection, object: descriptor.object, dryRun: dryRun)
        let started = now()
        do {
            try await scan(target, router: router, dryRun: dryRun, report: &report, log: log)
            try await reconciler.readDeleteFeed(target, router: router, dryRun: dryRun, report: &report, logger: log)
            if !dryRun {
                try await reconciler.reconcileIfDue(target, router: router, report: &report, logger: log)
            }
        } catch {
            if !dryRun && !(error is CancellationError) {
                await recordFailure(error, descriptor: descriptor, report: report, at: started, log: log)
            }
            throw error
        }
        guard !dryRun else { return report }
        metrics.cycle(descriptor, outcome: report.notModified ? .notModified : .success)
        metrics.success(descriptor, at: now(), watermark: report.watermark)
        let poll = PollReport(connection: descriptor.connection, object: descriptor.object, at: started,
                              error: report.reconcileError.map { "reconciliation sweep failed: \($0)" },
                              events: report.eventCount, records: report.records)
        do {
            try await store.perform { try $0.recordPoll(poll) }
        } catch {
            log.error("could not record poll status", error: error)
        }
        return report
    }

    private func recordFailure(_ error: any Error, descriptor: ObjectDescriptor, report: CycleReport, at: Date,
                               log: Logger) async {
        if case ProviderError.rateLimited = error {
            metrics.cycle(descriptor, outcome: .rateLimited)
        } else {
            metrics.cycle(descriptor, outcome: .error)
        }
        let poll = PollReport(connection: descriptor.connection, object: descriptor.object, at: at,
                              error: String(describing: error), events: report.eventCount, records: report.records)
        do {
            try await store.perform { try $0.recordPoll(poll) }
        } catch let storeError {
            log.error("could not record poll status", error: storeError)
        }
    }

    // MARK: - Delta scan

    private func scan(_ target: PollTarget, router: EventRouter, dryRun: Bool, report: inout CycleReport,
                      log: Logger) async throws {
        let plan = target.plan
        let descriptor = plan.descriptor
        let differ = Differ(descriptor: descriptor)
        let scanStart = now()
        let base = try await store.perform {
            try $0.cursor(connection: descriptor.connection, object: descriptor.object,
                          partition: descriptor.partition)
        }
        var resume: ResumeState
        if let decoded = ResumeState.decode(base?.resumeState) {
            resume = decoded
        } else {
            // Restarting from the watermark is safe: the inclusive bound re-reads, the hash suppresses.
            log.warning("unreadable scan resume state; restarting the scan from the watermark")
            resume = .empty
        }
        let resuming = resume.position != nil
        let initial = resuming ? resume.initial : base == nil
        let silent = initial && plan.initialSync == .silent
        let lowerBound = resuming ? resume.scanLowerBound : plan.lowerBound(fromWatermark: base?.watermark)
        report.initialSync = initial
        report.silent = silent
        report.resumed = resuming

        var position = resume.position
        var seenPositions = Set<ScanPosition>()
        if let position { seenPositions.insert(position) }
        var watermark = base?.watermark
        report.watermark = watermark
        var freshValidator: String?
        var carry: [String: PriorState] = [:]
        // The next page is fetched (and hashed) while this page commits: provider latency and hashing overlap
        // the store's write. Its diff still starts only after the commit, so it sees this page's snapshots.
        var prefetch: Task<HashedPage, any Error>? = nil
        defer { prefetch?.cancel() }
        var unwrittenIdlePages = 0

        while true {
            try Task.checkCancellation()
            let firstPageOfFreshScan = position == nil
            var ifNoneMatch: String? = nil
            if firstPageOfFreshScan, let validator = resume.validator, resume.validatorLowerBound == lowerBound {
                ifNoneMatch = validator
            }
            let request = DeltaRequest(lowerBound: lowerBound, after: position, pageSize: plan.pageSize,
                                       ifNoneMatch: ifNoneMatch)
            let hashed: HashedPage
            if let pending = prefetch {
                prefetch = nil
                hashed = try await pending.value
            } else {
                hashed = try await Self.fetch(request, from: target.source, differ: differ)
            }
            let page = hashed.page
            report.pages += 1
            for warning in page.warnings {
                log.warning("provider page warning", ["DETAIL": warning])
                report.warnings.append(warning)
            }
            if page.notModified {
                // 304: nothing changed since the validator's page; no quota spent, nothing to write.
                report.notModified = true
                return
            }
            if let next = page.next, !seenPositions.insert(next).inserted {
                throw EngineError.paginationStalled(connection: descriptor.connection, object: descriptor.object,
                                                    position: next.summary)
            }
            if firstPageOfFreshScan { freshValidator = page.validator }
            report.records += page.records.count
            if !dryRun { metrics.recordsRead(descriptor, page.records.count) }
            if let next = page.next {
                let nextRequest = DeltaRequest(lowerBound: lowerBound, after: next, pageSize: plan.pageSize)
                let source = target.source
                prefetch = Task { try await Self.fetch(nextRequest, from: source, differ: differ) }
            }

            if !dryRun { carry.removeAll(keepingCapacity: true) }
            let detectedAt = now()
            let diff = try await diffPage(page.records, hashes: hashed.hashes, differ: differ, silent: silent,
                                          carry: &carry,
                                          detectedAt: detectedAt)
            report.unchanged += diff.unchanged
            report.suppressed += diff.suppressed
            if let newest = diff.maxTimestamp, watermark.map({ newest > $0 }) ?? true { watermark = newest }

            var resumeOut = ResumeState()
            if let next = page.next {
                resumeOut.position = next
                resumeOut.scanLowerBound = lowerBound
                resumeOut.initial = initial
            } else if let freshValidator {
                resumeOut.validator = freshValidator
                resumeOut.validatorLowerBound = lowerBound
            }
            var cursor = base ?? CursorState(connection: descriptor.connection, object: descriptor.object,
                                             partition: descriptor.partition)
            cursor.watermark = watermark
            cursor.resumeState = resumeOut.encoded()
            // A complete initial scan listed every record: the first sweep is due one period later.
            if initial && page.next == nil && cursor.lastReconcileAt == nil { cursor.lastReconcileAt = scanStart }

            // A page that changed nothing need not move the cursor at once: skipping the write only means a
            // crash re-reads it (unchanged by hash). The end of the scan and every tenth page are written.
            let idle = diff.snapshots.isEmpty && diff.events.isEmpty && page.next != nil
            if idle && unwrittenIdlePages < Self.idlePagesPerCursorWrite - 1 {
                unwrittenIdlePages += 1
            } else if dryRun {
                for event in diff.events { report.add(event) }
            } else {
                unwrittenIdlePages = 0
                let routed = diff.events.map { OutgoingEvent(event: $0, subscribers: router($0)) }
                let commit = PageCommit(connection: descriptor.connection, object: descriptor.object,
                                        snapshots: diff.snapshots, events: routed, cursor: cursor, now: detectedAt)
                let result = try await store.perform { try $0.commitPage(commit) }
                report.snapshotsWritten += result.snapshotsWritten
                let duplicates = Set(result.duplicateEventIDs)
                for event in diff.events where !duplicates.contains(event.id) {
                    report.add(event)
                    metrics.eventCommitted(descriptor, type: event.type)
                }
                report.duplicates += result.duplicateEventIDs
                if !result.duplicateEventIDs.isEmpty {
                    log.info("re-read events already committed (skipped)",
                             ["COUNT": String(result.duplicateEventIDs.count)])
                }
            }
            report.watermark = watermark
            guard let next = page.next else { return }
            position = next
        }
    }

    struct PageDiff {
        var snapshots: [SnapshotWrite] = []
        var events: [ChangeEvent] = []
        var unchanged = 0
        var suppressed = 0
        var maxTimestamp: Date?
    }

    /// Diffs one page against the stored snapshots. Heads (hash, tombstone) are looked up for the whole page
    /// in one query; full prior records are loaded only for ids whose hash changed, to build `changes`.
    /// `carry` holds states decided earlier in this page (or, in a dry run, this scan), so a record read
    /// twice is compared with its newest state, not with the stale stored one.
    /// At most this many consecutive unchanged pages share one cursor write.
    static let idlePagesPerCursorWrite = 10

    /// A page and the content hashes of its records.
    struct HashedPage: Sendable {
        var page: DeltaPage
        var hashes: [String]
    }

    static func fetch(_ request: DeltaRequest, from source: any ObjectSource, differ: Differ) async throws
        -> HashedPage
    {
        let page = try await source.fetchDelta(request)
        return HashedPage(page: page, hashes: differ.contentHashes(of: page.records))
    }

    func diffPage(_ records: [SourceRecord], hashes: [String], differ: Differ, silent: Bool,
                  carry: inout [String: PriorState],
                  detectedAt: Date) async throws -> PageDiff {
        var result = PageDiff()
        guard !records.isEmpty else { return result }
        let descriptor = differ.descriptor
        var lookup: [String] = []
        var queued = Set<String>()
        for record in records where carry[record.id] == nil && queued.insert(record.id).inserted {
            lookup.append(record.id)
        }
        let ids = lookup
        let heads = ids.isEmpty ? [:] : try await store.perform {
            try $0.snapshotHeads(connection: descriptor.connection, object: descriptor.object, ids: ids)
        }
        var changed: [String] = []
        var changedSet = Set<String>()
        for (index, record) in records.enumerated() {
            guard carry[record.id] == nil, let head = heads[record.id], !head.tombstoned,
                  head.contentHash != hashes[index], changedSet.insert(record.id).inserted else { continue }
            changed.append(record.id)
        }
        let changedIDs = changed
        let priors = changedIDs.isEmpty ? [:] : try await store.perform {
            try $0.snapshotRecords(connection: descriptor.connection, object: descriptor.object, ids: changedIDs)
        }
        for (index, record) in records.enumerated() {
            if let stamp = record.updatedAt, result.maxTimestamp.map({ stamp > $0 }) ?? true {
                result.maxTimestamp = stamp
            }
            let prior: PriorState?
            if let carried = carry[record.id] {
                prior = carried
            } else if let head = heads[record.id] {
                prior = PriorState(contentHash: head.contentHash, record: priors[record.id] ?? .null,
                                   tombstoned: head.tombstoned)
            } else {
                prior = nil
            }
            let outcome = differ.diff(record, contentHash: hashes[index], prior: prior)
            guard let hash = outcome.contentHash else {
                result.unchanged += 1
                continue
            }
            // The snapshot is written even when no event is emitted (silent initial sync, pull requests,
            // typed-model no-ops), so the next read compares with what the provider really holds.
            result.snapshots.append(SnapshotWrite(recordID: record.id, contentHash: hash, record: record.record,
                                                  raw: record.raw, sourceTimestamp: record.updatedAt))
            carry[record.id] = PriorState(contentHash: hash, record: record.record, tombstoned: false)
            if !silent, let event = differ.event(for: record, outcome: outcome, detectedAt: detectedAt) {
                result.events.append(event)
            } else {
                result.suppressed += 1
            }
        }
        return result
    }
}

/// Content hashes of a page. Hashing (canonical form + SHA-256) is the CPU cost of an unchanged re-read, so
/// large pages are split across cores.
enum ContentHashing {
    static let parallelThreshold = 512

    static func hashes(of records: [SourceRecord], differ: Differ) -> [String] {
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
        guard records.count >= parallelThreshold, workers > 1 else { return hashes(records[...], differ: differ) }
        let chunk = (records.count + workers - 1) / workers
        let results = Mutex<[[String]]>(Array(repeating: [], count: workers))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let start = worker * chunk
            let end = min(records.count, start + chunk)
            guard start < end else { return }
            let part = hashes(records[start..<end], differ: differ)
            results.withLock { $0[worker] = part }
        }
        return results.withLock { $0.flatMap { $0 } }
    }

    /// One hasher (buffer + SHA-256 context) per run of records.
    private static func hashes(_ records: ArraySlice<SourceRecord>, differ: Differ) -> [String] {
        let hasher = CanonicalHasher()
        return records.map { differ.contentHash(of: $0, using: hasher) }
    }
}
