// The poll runner: one cycle of one object = the delete feed, then a delta scan (all pages), then a
// reconciliation sweep when due. DESIGN §2 rules 1–5 and 8 live here; rules 6 and 6a in Reconciler.
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
    let metrics: EngineMetrics
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

    /// One full cycle: delete feed, delta scan, reconciliation when due. Records the outcome in
    /// `poll_status` and the metrics (not in a dry run).
    ///
    /// The feed is read before the scan (docs/DESIGN.md §2 rule 6a): a record deleted and re-created since the
    /// last cycle then gets its `deleted` before the scan emits the re-created state, never after it. A feed that
    /// fails (other than a rate limit) does not stop the scan — a table whose audit feed is unreadable must still
    /// deliver its changes — and fails the cycle after it; the feed's later entries are then checked against what
    /// the scan saw (stale or same-second, rule 6a).
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
        let clockStart = ContinuousClock.now
        do {
            var feedError: (any Error)?
            do {
                try await reconciler.readDeleteFeed(target, router: router, dryRun: dryRun, report: &report,
                                                    logger: log)
            } catch let error as ProviderError {
                if case .rateLimited = error { throw error }
                feedError = error
            } catch let error as EngineError {
                feedError = error
            }
            try await scan(target, router: router, dryRun: dryRun, report: &report, log: log)
            if let feedError { throw feedError }
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
                              error: report.reconcileError.map { log.scrubber.scrub("reconciliation sweep failed: \($0)") },
                              events: report.eventCount, records: report.records)
        do {
            try await store.perform { try $0.recordPoll(poll) }
        } catch {
            log.error("could not record poll status", error: error)
        }
        logSummary(report, elapsed: ContinuousClock.now - clockStart, log: log)
        return report
    }

    /// One line per cycle, so an operator tailing journald sees the work (docs/DESIGN.md §8): `info` when the
    /// cycle committed events, `debug` otherwise. Counts, pages, the new cursor and the duration, as fields.
    private func logSummary(_ report: CycleReport, elapsed: Duration, log: Logger) {
        var scoped = log
        if report.quarantined > 0 { scoped = scoped.with(["QUARANTINED": String(report.quarantined)]) }
        if report.futureRecords > 0 { scoped = scoped.with(["FUTURE_RECORDS": String(report.futureRecords)]) }
        if report.reconciled { scoped = scoped.with(["SWEEP_IDS": String(report.reconcileIDs)]) }
        let level: LogLevel = report.eventCount > 0 ? .info : .debug
        guard scoped.isEnabled(level) else { return }
        scoped.log(level, report.eventCount > 0 ? "poll cycle committed events" : "poll cycle found no changes", [
            "EVENTS": String(report.eventCount), "CREATED": String(report.created), "UPDATED": String(report.updated),
            "DELETED": String(report.deletions), "RECORDS": String(report.records), "PAGES": String(report.pages),
            "CURSOR": report.watermark.map { Timestamps.rfc3339($0) } ?? "none",
            "DURATION_MS": String(elapsed.milliseconds),
        ])
    }

    private func recordFailure(_ error: any Error, descriptor: ObjectDescriptor, report: CycleReport, at: Date,
                               log: Logger) async {
        if case ProviderError.rateLimited = error {
            metrics.cycle(descriptor, outcome: .rateLimited)
        } else {
            metrics.cycle(descriptor, outcome: .error)
        }
        let poll = PollReport(connection: descriptor.connection, object: descriptor.object, at: at,
                              // A provider's error body may echo a token: scrubbed before it is stored and
                              // printed by `status` (docs/DESIGN.md §1).
                              error: log.scrubber.scrub(String(describing: error)), events: report.eventCount,
                              records: report.records)
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
        let differ = Differ(descriptor: descriptor, emit: plan.emit)
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
        let startWatermark = try await repairedWatermark(base?.watermark, descriptor: descriptor,
                                                         scanStart: scanStart, plan: plan, log: log)
        let lowerBound = resuming ? resume.scanLowerBound : plan.lowerBound(fromWatermark: startWatermark)
        report.initialSync = initial
        report.silent = silent
        report.resumed = resuming

        var position = resume.position
        var seenPositions = Set<ScanPosition>()
        if let position { seenPositions.insert(position) }
        var watermark = startWatermark
        report.watermark = watermark
        var freshValidator: String?
        // Decided states not (yet) readable from the store: the previous page's writes, whose commit may still be
        // running while this page is diffed, plus this page's own (a record read twice); in a dry run, the scan's.
        var carry: [String: PriorState] = [:]
        // The next page is fetched (and hashed) while this page is diffed and committed.
        var prefetch: Prefetch? = nil
        defer { prefetch?.task.cancel() }
        var unwrittenIdlePages = 0
        // The previous page's commit. When the next page is already fetched, the commit waits (`pending`) until
        // that page's snapshot lookup is on the store's queue, then follows it (`inFlight`): the store commits
        // while the next page is diffed, and the lookup, which ran first, is completed by `carry`. When the next
        // page is not there yet, the commit goes to the store at once: a slow provider never holds back a
        // finished page. Either way each page is its own transaction, committed in page order.
        var commits = Commits()
        var budget = ScanBudget(plan: plan, scanStart: scanStart)

        while true {
            do {
                let next = try await scanPage(
                    target, router: router, dryRun: dryRun, differ: differ, lowerBound: lowerBound, initial: initial,
                    silent: silent, base: base, scanStart: scanStart, resume: resume, position: position,
                    seenPositions: &seenPositions, watermark: &watermark, freshValidator: &freshValidator,
                    carry: &carry, prefetch: &prefetch, unwrittenIdlePages: &unwrittenIdlePages, commits: &commits,
                    budget: &budget, report: &report, log: log)
                guard let next else {
                    try await finish(&commits, report: &report, log: log)
                    return
                }
                position = next
            } catch {
                // Whatever failed (a provider error on the next page, cancellation), the pages before it commit,
                // as the serial loop committed each page before fetching on.
                try? await finish(&commits, report: &report, log: log)
                throw error
            }
        }
    }

    /// A stored watermark beyond scan start + `max_clock_skew` came from a far-future record (written before rule 14
    /// held, or by a provider clock that has since been fixed): continuing from it would miss every present-day
    /// change. The scan restarts from the newest snapshot time not beyond that limit instead — everything up to
    /// it has been diffed — and says so.
    private func repairedWatermark(_ stored: Date?, descriptor: ObjectDescriptor, scanStart: Date, plan: ObjectPlan,
                                   log: Logger) async throws -> Date? {
        let limit = scanStart.addingTimeInterval(max(0, plan.maxClockSkew.seconds))
        guard let stored, stored > limit else { return stored }
        let (connection, object) = (descriptor.connection, descriptor.object)
        let repaired = try await store.perform {
            try $0.newestSourceTimestamp(connection: connection, object: object, notAfter: limit)
        }
        log.warning("stored watermark is in the future; restarting the scan from the newest record not beyond max_clock_skew",
                    ["WATERMARK": Timestamps.rfc3339(stored),
                     "RESTART_FROM": repaired.map { Timestamps.rfc3339($0) } ?? "the beginning"])
        return repaired
    }

    /// What bounds one delta scan against hostile answers (docs/DESIGN.md §2 rules 14 and 18).
    struct ScanBudget {
        /// Records per request; halved for the rest of the scan by a page over `max_response_bytes`.
        var pageSize: Int
        /// Pages this cycle may read before it stops and leaves the rest to the next cycle.
        let maxPages: Int
        /// Records dated after this instant (scan start + `max_clock_skew`) do not move the watermark.
        let futureLimit: Date

        init(plan: ObjectPlan, scanStart: Date) {
            pageSize = plan.pageSize
            maxPages = plan.maxPagesPerScan
            futureLimit = scanStart.addingTimeInterval(max(0, plan.maxClockSkew.seconds))
        }
    }

    /// The previous page's commit: built but not handed to the store yet, or handed over and running.
    struct Commits {
        var pending: PendingCommit?
        var inFlight: (task: Task<PageCommitResult, any Error>, commit: PendingCommit)?
    }

    /// Hands `commits.pending` to the store (after whatever is on its queue).
    private func submit(_ commits: inout Commits) {
        guard let waiting = commits.pending else { return }
        commits.pending = nil
        commits.inFlight = (store.enqueue { try $0.commitPage(waiting.commit) }, waiting)
    }

    /// Waits for the running commit and reports it.
    private func settle(_ commits: inout Commits, report: inout CycleReport, log: Logger) async throws {
        guard let running = commits.inFlight else { return }
        commits.inFlight = nil
        record(try await running.task.value, of: running.commit, report: &report, log: log)
    }

    /// Commits everything outstanding and waits for it.
    private func finish(_ commits: inout Commits, report: inout CycleReport, log: Logger) async throws {
        try await settle(&commits, report: &report, log: log)
        submit(&commits)
        try await settle(&commits, report: &report, log: log)
    }

    /// A page's commit waiting to be handed to the store, with the events it reports once committed.
    struct PendingCommit: Sendable {
        var commit: PageCommit
        var events: [ChangeEvent]
        var descriptor: ObjectDescriptor
    }

    private func record(_ result: PageCommitResult, of commit: PendingCommit, report: inout CycleReport, log: Logger) {
        report.snapshotsWritten += result.snapshotsWritten
        let duplicates = Set(result.duplicateEventIDs)
        for event in commit.events where !duplicates.contains(event.id) {
            report.add(event)
            metrics.eventCommitted(commit.descriptor, type: event.type)
        }
        report.duplicates += result.duplicateEventIDs
        if !result.duplicateEventIDs.isEmpty {
            log.info("re-read events already committed (skipped)", ["COUNT": String(result.duplicateEventIDs.count)])
        }
        noteQuarantined(result, of: commit, report: &report, log: log)
    }

    /// One page of the scan: fetch, look up, diff (overlapping the previous page's commit), build this page's
    /// commit into `pending`. Returns the next position, nil when the scan is over.
    private func scanPage(
        _ target: PollTarget, router: EventRouter, dryRun: Bool, differ: Differ, lowerBound: Date?, initial: Bool,
        silent: Bool, base: CursorState?, scanStart: Date, resume: ResumeState, position: ScanPosition?,
        seenPositions: inout Set<ScanPosition>, watermark: inout Date?, freshValidator: inout String?,
        carry: inout [String: PriorState], prefetch: inout Prefetch?,
        unwrittenIdlePages: inout Int, commits: inout Commits, budget: inout ScanBudget, report: inout CycleReport,
        log: Logger
    ) async throws -> ScanPosition? {
        let plan = target.plan
        let descriptor = plan.descriptor
        try Task.checkCancellation()
        let firstPageOfFreshScan = position == nil
        var ifNoneMatch: String? = nil
        if firstPageOfFreshScan, let validator = resume.validator, resume.validatorLowerBound == lowerBound {
            ifNoneMatch = validator
        }
        let request = DeltaRequest(lowerBound: lowerBound, after: position, pageSize: budget.pageSize,
                                   ifNoneMatch: ifNoneMatch)
        let prefetched = prefetch
        prefetch = nil
        let hashed = try await fetchAdapting(request, prefetched: prefetched, from: target.source, differ: differ,
                                             budget: &budget, descriptor: descriptor, report: &report, log: log)
        let page = hashed.page
        report.pages += 1
        for warning in page.warnings {
            log.warning("provider page warning", ["DETAIL": warning])
            report.warnings.append(warning)
        }
        if page.notModified {
            // 304: nothing changed since the validator's page; no quota spent, nothing to write.
            report.notModified = true
            return nil
        }
        if let next = page.next, !seenPositions.insert(next).inserted {
            throw EngineError.paginationStalled(connection: descriptor.connection, object: descriptor.object,
                                                position: next.summary)
        }
        if firstPageOfFreshScan { freshValidator = page.validator }
        report.records += page.records.count
        if !dryRun { metrics.recordsRead(descriptor, page.records.count) }
        // Rule 18: a scan stops at max_pages_per_scan; the position is committed and the next cycle resumes there.
        let capped = page.next != nil && report.pages >= budget.maxPages
        let continues = page.next != nil && !capped
        noteRejected(page.rejected, dryRun: dryRun, report: &report, log: log)
        if capped {
            let warning = "stopped this scan after \(budget.maxPages) pages (max_pages_per_scan); the next cycle "
                + "resumes at \(page.next?.summary ?? "?")"
            log.warning("delta scan reached max_pages_per_scan; resuming next cycle",
                        ["PAGES": String(budget.maxPages)])
            report.warnings.append(warning)
            if !dryRun { metrics.scanCapped(descriptor) }
        }
        if continues, let next = page.next {
            let nextRequest = DeltaRequest(lowerBound: lowerBound, after: next, pageSize: budget.pageSize)
            prefetch = Prefetch(nextRequest, from: target.source, differ: differ)
        }

        // This page's lookup goes on the store's queue before the previous page's commit (if that still waits);
        // the diff below then runs while that commit does.
        let lookupTask = lookup(page.records, hashes: hashed.hashes, descriptor: descriptor, carry: carry)
        submit(&commits)
        let looked = try await lookupTask.value
        let detectedAt = now()
        let diff = diffPage(page.records, hashes: hashed.hashes, lookup: looked, differ: differ, silent: silent,
                            render: !dryRun, carry: &carry, detectedAt: detectedAt, futureLimit: budget.futureLimit)
        reportFuture(diff.future, descriptor: descriptor, limit: budget.futureLimit, dryRun: dryRun, report: &report,
                     log: log)
        try await settle(&commits, report: &report, log: log)
        // The previous page is committed now: only this page's writes need carrying to the next one.
        if !dryRun {
            carry = [:]
            for snapshot in diff.snapshots {
                carry[snapshot.recordID] = PriorState(contentHash: snapshot.contentHash, record: snapshot.record,
                                                      tombstoned: false, raw: snapshot.raw)
            }
        }
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
        // A page with rejected records, or with a quarantined record that now arrives valid, is always written:
        // its quarantine changes commit with it (rule 16).
        let idle = diff.snapshots.isEmpty && diff.events.isEmpty && page.rejected.isEmpty
            && looked.quarantined.isEmpty && continues
        if idle && unwrittenIdlePages < Self.idlePagesPerCursorWrite - 1 {
            unwrittenIdlePages += 1
        } else if dryRun {
            for event in diff.events { report.add(event) }
        } else {
            unwrittenIdlePages = 0
            let routed = zip(diff.events, diff.eventTexts).map { event, texts in
                OutgoingEvent(event: event, subscribers: router(event), recordText: texts.record, rawText: texts.raw)
            }
            commits.pending = PendingCommit(
                commit: PageCommit(connection: descriptor.connection, object: descriptor.object,
                                   snapshots: diff.snapshots, events: routed, cursor: cursor, now: detectedAt,
                                   quarantine: page.rejected, acceptedIDs: page.records.map(\.id)),
                events: diff.events, descriptor: descriptor)
            // The next page is not fetched yet (or there is none): commit now rather than wait for it.
            if !(prefetch?.isReady ?? false) { submit(&commits) }
        }
        report.watermark = watermark
        return continues ? page.next : nil
    }

    /// Fetches one page (or takes the prefetched one). A page over `max_response_bytes` halves the page size for
    /// the rest of the scan and asks again, down to one record (docs/DESIGN.md §2 rule 18); a single record over
    /// the cap fails the page with the provider's hint to raise `max_response_bytes`.
    private func fetchAdapting(_ request: DeltaRequest, prefetched: Prefetch?, from source: any ObjectSource,
                               differ: Differ, budget: inout ScanBudget, descriptor: ObjectDescriptor,
                               report: inout CycleReport, log: Logger) async throws -> HashedPage {
        var request = request
        var pending = prefetched
        while true {
            do {
                if let running = pending {
                    pending = nil
                    return try await running.task.value
                }
                return try await Self.fetch(request, from: source, differ: differ)
            } catch ProviderError.responseTooLarge(let limit, _) where min(budget.pageSize, request.pageSize) > 1 {
                budget.pageSize = min(budget.pageSize, request.pageSize) / 2
                request.pageSize = budget.pageSize
                metrics.pageSizeHalved(descriptor)
                log.warning("provider page larger than max_response_bytes; halving the page size for the rest of this scan",
                            ["PAGE_SIZE": String(budget.pageSize), "MAX_RESPONSE_BYTES": String(limit)])
                report.warnings.append("a page exceeded max_response_bytes (\(limit)); page size halved to "
                    + "\(budget.pageSize) for the rest of this scan")
            }
        }
    }

    /// Records dated beyond scan start + `max_clock_skew` that changed: emitted like any change, but left out of the
    /// watermark (rule 14). Logged per record (only when it changed, so a re-read does not repeat the warning).
    private func reportFuture(_ future: [(id: String, at: Date)], descriptor: ObjectDescriptor, limit: Date,
                              dryRun: Bool, report: inout CycleReport, log: Logger) {
        guard !future.isEmpty else { return }
        report.futureRecords += future.count
        if !dryRun { metrics.futureRecords(descriptor, future.count) }
        for record in future.prefix(20) {
            log.warning("record dated in the future; emitted, but the cursor does not move to its timestamp",
                        [.recordID: record.id, "SOURCE_TIMESTAMP": Timestamps.rfc3339(record.at),
                         "LIMIT": Timestamps.rfc3339(limit)])
        }
    }

    struct PageDiff {
        var snapshots: [SnapshotWrite] = []
        var events: [ChangeEvent] = []
        /// Pre-rendered (record, raw) texts of `events`, index for index.
        var eventTexts: [(record: String?, raw: String?)] = []
        var unchanged = 0
        var suppressed = 0
        /// The newest source timestamp not beyond the scan's future limit (the watermark candidate, rule 14).
        var maxTimestamp: Date?
        /// Changed records dated beyond the future limit.
        var future: [(id: String, at: Date)] = []
    }

    /// At most this many consecutive unchanged pages share one cursor write.
    static let idlePagesPerCursorWrite = 10

    /// The next page, fetched and hashed in the background; `isReady` once it has arrived (or failed).
    final class Prefetch: Sendable {
        private final class Flag: Sendable {
            let value = Mutex(false)
        }
        let task: Task<HashedPage, any Error>
        private let done = Flag()

        init(_ request: DeltaRequest, from source: any ObjectSource, differ: Differ) {
            let done = self.done
            task = Task {
                defer { done.value.withLock { $0 = true } }
                return try await PollRunner.fetch(request, from: source, differ: differ)
            }
        }

        var isReady: Bool { done.value.withLock { $0 } }
    }

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

    /// What the store holds for a page: heads (hash, tombstone) of every id looked up, in one query, and — loaded
    /// only for ids whose hash changed — the prior records and raws `changes` and `changed_fields` are built from
    /// (rule 5a). Unchanged re-reads parse no JSON.
    struct PageLookup: Sendable {
        var heads: [String: SnapshotHead] = [:]
        var priors: [String: SnapshotBody] = [:]
        /// Ids of the page that sit in quarantine: they arrive valid now and leave it with the page (rule 16).
        var quarantined: Set<String> = []
    }

    /// Enqueues the page's lookup (one store job): heads of ids not in `carry`, then — for live ids whose stored
    /// hash differs from the fresh one — their prior records and raws, which `changes` and `changed_fields` need.
    func lookup(_ records: [SourceRecord], hashes: [String], descriptor: ObjectDescriptor,
                carry: [String: PriorState]) -> Task<PageLookup, any Error> {
        var ids: [String] = []
        var queued = Set<String>()
        var reads: [(id: String, hash: String)] = []
        for (index, record) in records.enumerated() where carry[record.id] == nil {
            reads.append((record.id, hashes[index]))
            if queued.insert(record.id).inserted { ids.append(record.id) }
        }
        let (connection, object, wanted, fresh) = (descriptor.connection, descriptor.object, ids, reads)
        return store.enqueue { store in
            guard !wanted.isEmpty else { return PageLookup() }
            var result = PageLookup()
            result.heads = try store.snapshotHeads(connection: connection, object: object, ids: wanted)
            // Any read of an id whose hash differs from the live stored one needs the prior record and raw.
            var changed: [String] = []
            var changedSet = Set<String>()
            for (id, hash) in fresh {
                guard let head = result.heads[id], !head.tombstoned, head.contentHash != hash,
                      changedSet.insert(id).inserted else { continue }
                changed.append(id)
            }
            if !changed.isEmpty {
                result.priors = try store.snapshotPriors(connection: connection, object: object, ids: changed)
            }
            result.quarantined = try store.quarantinedIDs(connection: connection, object: object, among: wanted)
            return result
        }
    }

    /// Diffs one page against what the lookup found. `carry` holds states decided earlier in this page (a record
    /// read twice is compared with its newest state, not with the stale stored one) and the previous page's writes
    /// (whose commit may still be running); in a dry run, the whole scan's.
    /// `render`: also serialize what the commit will store (not in a dry run).
    func diffPage(_ records: [SourceRecord], hashes: [String], lookup: PageLookup, differ: Differ, silent: Bool,
                  render: Bool, carry: inout [String: PriorState], detectedAt: Date, futureLimit: Date = .distantFuture)
        -> PageDiff
    {
        var result = PageDiff()
        for (index, record) in records.enumerated() {
            var fromTheFuture = false
            if let stamp = record.updatedAt {
                if stamp > futureLimit {
                    fromTheFuture = true
                } else if result.maxTimestamp.map({ stamp > $0 }) ?? true {
                    result.maxTimestamp = stamp
                }
            }
            let prior: PriorState?
            if let carried = carry[record.id] {
                prior = carried
            } else if let head = lookup.heads[record.id] {
                let body = lookup.priors[record.id]
                prior = PriorState(contentHash: head.contentHash, record: body?.record ?? .null,
                                   tombstoned: head.tombstoned, raw: body?.raw)
            } else {
                prior = nil
            }
            let outcome = differ.diff(record, contentHash: hashes[index], prior: prior)
            guard let hash = outcome.contentHash else {
                result.unchanged += 1
                continue
            }
            if fromTheFuture, let stamp = record.updatedAt { result.future.append((record.id, stamp)) }
            // The snapshot is written even when no event is emitted (silent initial sync, pull requests,
            // `emit: model_changes` updates outside the model, rule 5a), so the next read compares with what the provider really holds.
            // Rendered here, while the store commits the previous page, rather than inside this page's commit;
            // the raw text serves the snapshot and the event, and the event's record when it is the raw record.
            let rawText = render ? record.raw.serialized() : nil
            result.snapshots.append(SnapshotWrite(recordID: record.id, contentHash: hash, record: record.record,
                                                  raw: record.raw, sourceTimestamp: record.updatedAt,
                                                  recordText: render ? record.record.canonicalString() : nil,
                                                  rawText: rawText))
            carry[record.id] = PriorState(contentHash: hash, record: record.record, tombstoned: false, raw: record.raw)
            if !silent, let event = differ.event(for: record, outcome: outcome, detectedAt: detectedAt) {
                result.events.append(event)
                let recordText = render ? (record.record.serializesIdentically(to: record.raw) ? rawText : record.record.serialized()) : nil
                result.eventTexts.append((recordText, rawText))
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
