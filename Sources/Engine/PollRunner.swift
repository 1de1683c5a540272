// The poll runner: one cycle of one object = the delete feed, then a delta scan (all pages), then a
// reconciliation sweep when due. docs/DESIGN.md §2 rules 1–5 and 8 live here; rules 6 and 6a in Reconciler.
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
import Synchronization

/// Runs the cycles of one (connection, object). Never overlaps two cycles of the same object: scheduled
/// cycles and `poll-once` share one permit.
public final class PollRunner: Sendable {
    private struct Settings: Sendable {
        var target: PollTarget
        var router: EventRouter
    }

    private let settings: Mutex<Settings>
    let store: any StateStoring
    private let logger: Logger
    let metrics: EngineMetrics
    let now: @Sendable () -> Date
    private let exclusive = AsyncSemaphore(value: 1)
    /// Delete feed and reconciliation sweeps of this object.
    public let reconciler: Reconciler

    /// - Parameters:
    ///   - router: the subscribers each event goes to; their delivery rows commit with the event.
    ///   - metrics: optional registry for the `deltahook_polls_total` … families.
    ///   - now: the detection clock (event `timestamp`, commit times, sweep start). Injected for tests.
    public init(target: PollTarget, store: any StateStoring, router: @escaping EventRouter, logger: Logger,
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
    ///
    /// `trigger` only labels the cycle (its log line says `TRIGGER=hint` for a hinted poll); the cycle reads and
    /// emits exactly what a scheduled one would.
    public func runCycle(dryRun: Bool = false, trigger: CycleTrigger = .schedule) async throws -> CycleReport {
        try await exclusive.withPermit { try await self.cycle(dryRun: dryRun, trigger: trigger) }
    }

    private func cycle(dryRun: Bool, trigger: CycleTrigger) async throws -> CycleReport {
        let (target, router) = settings.withLock { ($0.target, $0.router) }
        let descriptor = target.plan.descriptor
        let log = logger.with([.connection: descriptor.connection, .object: descriptor.object])
        var report = CycleReport(connection: descriptor.connection, object: descriptor.object, dryRun: dryRun)
        report.trigger = trigger
        let started = now()
        let clockStart = ContinuousClock.now
        if !dryRun {
            guard try await mayPoll(descriptor, report: &report, log: log) else { return report }
        }
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
        } catch let error as StoreError where error.code == .leaseLost {
            // Fencing refused this node's write: another node took the object over while this one was paused or
            // partitioned past its lease. Nothing was stored; the new owner polls and reports (rule 19).
            log.warning("poll cycle abandoned: the object's poll lease was lost", error: error)
            report.leaseLost = true
            return report
        } catch {
            if !dryRun, case ProviderError.rateLimited(let wait, let message) = error {
                await shareProviderWait(descriptor, until: now().addingTimeInterval(wait.seconds), reason: message,
                                        log: log)
            }
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
        if report.trigger != .schedule { scoped = scoped.with(["TRIGGER": report.trigger.rawValue]) }
        let level: LogLevel = report.eventCount > 0 ? .info : .debug
        guard scoped.isEnabled(level) else { return }
        scoped.log(level, report.eventCount > 0 ? "poll cycle committed events" : "poll cycle found no changes", [
            "EVENTS": String(report.eventCount), "CREATED": String(report.created), "UPDATED": String(report.updated),
            "DELETED": String(report.deletions), "RECORDS": String(report.records), "PAGES": String(report.pages),
            "CURSOR": report.watermark.map { Timestamps.rfc3339($0) } ?? "none",
            "DURATION_MS": String(elapsed.milliseconds),
        ])
    }

    /// Whether this node polls the object now (docs/DESIGN.md §2 rules 19 and 21): it must hold the object's poll
    /// lease (a node outside any cluster always does), and no node may have recorded a provider wait for the
    /// connection that has not ended — that is thrown as the rate limit it is, so the scheduler waits it out.
    private func mayPoll(_ descriptor: ObjectDescriptor, report: inout CycleReport, log: Logger) async throws -> Bool {
        let (connection, object, at) = (descriptor.connection, descriptor.object, now())
        let lease = try await store.perform { try $0.acquirePollLease(connection: connection, object: object) }
        guard lease.mayPoll else {
            report.leaseOutcome = lease
            log.debug("poll cycle skipped: another node polls this object", ["LEASE": String(describing: lease)])
            return false
        }
        if let wait = try await store.perform({ try $0.providerWait(connection: connection, now: at) }) {
            throw ProviderError.rateLimited(retryAfter: .seconds(max(0, wait.until.timeIntervalSince(at))),
                                            message: "shared wait: \(wait.reason)")
        }
        return true
    }

    /// Records a provider's wait for every node of the cluster (rule 21); a failure to record it only costs
    /// the other nodes one more 429 each.
    private func shareProviderWait(_ descriptor: ObjectDescriptor, until: Date, reason: String, log: Logger) async {
        let connection = descriptor.connection
        let text = log.scrubber.scrub(reason)
        do {
            try await store.perform { try $0.setProviderWait(connection: connection, until: until, reason: text) }
        } catch {
            log.warning("could not share the provider's wait with other nodes", error: error)
        }
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

    // MARK: - Delta scan (one page: ScanPage.swift; the page's diff: PageDiff.swift)

    private func scan(_ target: PollTarget, router: @escaping EventRouter, dryRun: Bool, report: inout CycleReport,
                      log: Logger) async throws {
        let plan = target.plan
        let descriptor = plan.descriptor
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
        let startWatermark = try await repairedWatermark(base?.watermark, descriptor: descriptor,
                                                         scanStart: scanStart, plan: plan, log: log)
        let context = ScanContext(target: target, router: router, dryRun: dryRun, base: base, resume: resume,
                                  lowerBound: plan.lowerBound(fromWatermark: startWatermark), scanStart: scanStart,
                                  log: log)
        report.initialSync = context.initial
        report.silent = context.silent
        report.resumed = resume.position != nil
        report.watermark = startWatermark
        var state = ScanState(position: resume.position, watermark: startWatermark,
                              budget: ScanBudget(plan: plan, scanStart: scanStart))
        defer { state.prefetch?.task.cancel() }
        while true {
            do {
                guard let next = try await scanPage(context, state: &state, report: &report) else {
                    try await carryOut(state.commits.finish(), state: &state, report: &report, log: log)
                    return
                }
                state.position = next
            } catch {
                // Whatever failed (a provider error on the next page, cancellation), the pages before it commit,
                // as the serial loop committed each page before fetching on.
                try? await carryOut(state.commits.finish(), state: &state, report: &report, log: log)
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

    /// At most this many consecutive unchanged pages share one cursor write.
    static let idlePagesPerCursorWrite = 10
}
