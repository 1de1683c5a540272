// Deletes (docs/DESIGN.md §2 rule 6): from the provider's delete feed where it has one (ServiceNow `sys_audit_delete`,
// NetSuite `DeletedRecord`), and from a scheduled full id-set reconciliation. A sweep marks every listed id as
// seen; only when the listing completed without error are the live snapshots it did not see declared
// deleted. Deleted snapshots are tombstoned, not removed, so an undelete diffs as `created` again.
//
// The mass-delete guard (docs/DESIGN.md §2 rule 17) stands between a complete listing and its tombstones: a
// listing that came back empty, or far smaller than the live set (an ACL, role or scope change at the provider),
// is held for an operator instead of deleting the table. A delete feed names each delete explicitly and is not
// guarded.
//
// Deletes in source order (docs/DESIGN.md §2 rule 6a): a feed entry older than the record's last seen state is
// stale and skipped; one in the same second is checked with the provider (`fetchRecord`). A sweep that lists an
// id whose snapshot is tombstoned reads the record and emits `created`, so a wrong `deleted` (a record hidden
// from one sweep by a before-query rule, a delete that a restore undid) is repaired by the next sweep at the
// latest.
//
// This file holds the class, the sweep and the guard, and the commit every delete path shares; the delete feed
// (DeleteFeed.swift), sweep repair (SweepRepair.swift) and applying a held sweep (HeldSweepApply.swift) are
// extensions in their own files.
public import Core
public import Foundation
public import Logging
public import Store
import Synchronization

/// Delete detection for one object. Used by ``PollRunner`` after each delta scan.
public final class Reconciler: Sendable {
    private struct RetryState {
        var failures = 0
        var notBefore: Date?
    }

    let store: any StateStoring
    let now: @Sendable () -> Date
    let metrics: EngineMetrics
    private let retry = Mutex(RetryState())
    /// The source answered `unsupported` to a single-record read: said once, not on every sweep.
    let singleReadsUnsupportedLogged = Mutex(false)

    public init(store: any StateStoring, metrics: MetricsRegistry? = nil,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.metrics = EngineMetrics(metrics)
        self.now = now
    }

    /// Whether a sweep is due: the plan reconciles, the object has been scanned, `reconcileEvery` has passed
    /// since the last complete sweep, and no failed sweep is backing off.
    public func isDue(_ plan: ObjectPlan, cursor: CursorState?, at now: Date) -> Bool {
        guard let every = plan.reconcileEvery, let cursor else { return false }
        if let notBefore = retry.withLock({ $0.notBefore }), now < notBefore { return false }
        guard let last = cursor.lastReconcileAt else { return true }
        return now.timeIntervalSince(last) >= every.seconds
    }

    // MARK: - Reconciliation sweep

    /// Runs a sweep when due. A sweep that fails on a provider error infers nothing, is reported in
    /// `report.reconcileError` and retried after a backoff (interval × 2^failures, at most `reconcileEvery`),
    /// so a broken id listing does not stop delta polling. Rate limits and store errors propagate.
    public func reconcileIfDue(_ target: PollTarget, router: EventRouter, report: inout CycleReport,
                               logger: Logger) async throws {
        let plan = target.plan
        let descriptor = plan.descriptor
        let cursor = try await store.perform {
            try $0.cursor(connection: descriptor.connection, object: descriptor.object,
                          partition: descriptor.partition)
        }
        try await applyHeldSweepIfRequested(target, router: router, report: &report, logger: logger)
        guard isDue(plan, cursor: cursor, at: now()) else { return }
        do {
            try await sweep(target, router: router, report: &report, logger: logger)
            retry.withLock { $0 = RetryState() }
        } catch let error where Self.isSweepFailure(error) {
            let failures = retry.withLock { state -> Int in
                state.failures += 1
                return state.failures
            }
            let exponent = Double(min(failures, 16))
            var wait = max(plan.interval.seconds, 1) * pow(2, exponent)
            if let every = plan.reconcileEvery { wait = min(wait, max(every.seconds, 1)) }
            let notBefore = now().addingTimeInterval(wait)
            retry.withLock { $0.notBefore = notBefore }
            report.reconcileError = String(describing: error)
            logger.error("reconciliation sweep failed; no deletes inferred", ["RETRY_IN_SECONDS": String(Int(wait))],
                         error: error)
        }
    }

    /// Provider answers and listing bugs abandon the sweep; rate limits (connection-wide waits), store errors
    /// and cancellation end the cycle.
    static func isSweepFailure(_ error: any Error) -> Bool {
        if error is EngineError { return true }
        guard let providerError = error as? ProviderError else { return false }
        if case .rateLimited = providerError { return false }
        return true
    }

    /// A full sweep now: lists every id (marking them seen), then — only if the listing completed — commits
    /// `deleted` events for live snapshots the listing did not contain, one transaction per page of ids, and
    /// records the sweep's start as `lastReconcileAt`.
    ///
    /// When the plan's delete guard holds the result (rule 17), nothing is deleted: the sweep is stored as held
    /// (`report.sweepHeld`, `status`), logged, and still recorded as the last sweep, so the next one comes a
    /// period later rather than every cycle. A later sweep that is not held replaces the held verdict.
    /// - Throws: the listing's error; nothing is inferred then.
    public func sweep(_ target: PollTarget, router: EventRouter, report: inout CycleReport, logger: Logger)
        async throws
    {
        let plan = target.plan
        let descriptor = plan.descriptor
        let (connection, object) = (descriptor.connection, descriptor.object)
        let sweepStart = now()
        var token: String? = nil
        var tokens = Set<String>()
        var listed = 0
        repeat {
            try Task.checkCancellation()
            let page = try await target.source.fetchIDs(after: token, pageSize: plan.pageSize)
            listed += page.ids.count
            let ids = page.ids
            if !ids.isEmpty {
                try await store.perform { try $0.markSeen(connection: connection, object: object, ids: ids,
                                                          sweep: sweepStart) }
                try await repairTombstoned(among: ids, target: target, router: router, report: &report,
                                           logger: logger)
            }
            if let next = page.next, !tokens.insert(next).inserted {
                throw EngineError.idListingStalled(connection: connection, object: object, token: next)
            }
            token = page.next
        } while token != nil
        report.reconcileIDs = listed
        let deletionsBefore = report.deletions

        // The listing is complete: every live snapshot it did not see is gone — unless that is too many to trust.
        if let policy = plan.deleteGuard {
            let counts = try await store.perform {
                try $0.sweepCounts(connection: connection, object: object, sweep: sweepStart)
            }
            if policy.holds(wouldDelete: counts.unseen, live: counts.live, listed: listed) {
                let held = HeldSweep(connection: connection, object: object, sweepStarted: sweepStart, heldAt: now(),
                                     wouldDelete: counts.unseen, live: counts.live, listed: listed)
                try await store.perform { try $0.holdSweep(held) }
                try await recordSweep(descriptor, at: sweepStart)
                report.sweepHeld = held
                metrics.sweepHeld(descriptor)
                logger.warning("sweep held: it would delete too many live records at once; nothing was deleted", [
                    "WOULD_DELETE": String(counts.unseen), "LIVE": String(counts.live), "LISTED": String(listed),
                    "HINT": "run `deltahook reconcile --connection \(connection) --object \(object) --apply-held` "
                        + "if the source really lost them; otherwise fix the provider-side access (ACL, role, scope)",
                ])
                return
            }
        }
        var after: String? = nil
        while true {
            try Task.checkCancellation()
            let from = after
            let ids = try await store.perform {
                try $0.unseenLiveIDs(connection: connection, object: object, sweep: sweepStart, after: from,
                                     limit: plan.pageSize)
            }
            guard let last = ids.last else { break }
            after = last
            try await tombstone(ids, descriptor: descriptor, router: router, report: &report)
        }
        // This verdict supersedes an older held one (the records came back, or the operator raised the guard).
        _ = try await store.perform { try $0.clearHeldSweep(connection: connection, object: object) }
        try await recordSweep(descriptor, at: sweepStart)
        report.reconciled = true
        logger.info("reconciliation sweep complete", ["IDS": String(listed), "DELETED": String(report.deletions - deletionsBefore)])
    }

    /// Records `sweepStart` as the object's last complete sweep (held or applied).
    func recordSweep(_ descriptor: ObjectDescriptor, at sweepStart: Date) async throws {
        let (connection, object, partition) = (descriptor.connection, descriptor.object, descriptor.partition)
        try await store.perform { store in
            var cursor = try store.cursor(connection: connection, object: object, partition: partition)
                ?? CursorState(connection: connection, object: object, partition: partition)
            cursor.lastReconcileAt = sweepStart
            try store.setCursor(cursor, now: sweepStart)
        }
    }

    // MARK: - Helpers

    static func tombstone(_ snapshot: Snapshot) -> SnapshotWrite {
        SnapshotWrite(recordID: snapshot.recordID, contentHash: snapshot.contentHash, record: snapshot.record,
                      raw: snapshot.raw, sourceTimestamp: snapshot.sourceTimestamp, tombstoned: true)
    }

    /// Commits a `deleted` event and a tombstone for each of `ids` that is live, in one page transaction (the
    /// sweep's inferred deletes and an applied held sweep).
    func tombstone(_ ids: [String], descriptor: ObjectDescriptor, router: EventRouter,
                   report: inout CycleReport) async throws {
        guard !ids.isEmpty else { return }
        let (connection, object) = (descriptor.connection, descriptor.object)
        let snapshots = try await store.perform { try $0.snapshots(connection: connection, object: object, ids: ids) }
        let differ = Differ(descriptor: descriptor)
        let detectedAt = now()
        var writes: [SnapshotWrite] = []
        var events: [ChangeEvent] = []
        for id in ids {
            guard let snapshot = snapshots[id], !snapshot.tombstoned else { continue }
            let prior = PriorState(contentHash: snapshot.contentHash, record: snapshot.record, tombstoned: false)
            events.append(differ.deletionEvent(recordID: id, prior: prior, raw: snapshot.raw, deletedAt: nil,
                                               detectedAt: detectedAt))
            writes.append(Self.tombstone(snapshot))
        }
        try await commit(descriptor, ReconcileChanges(writes: writes, events: events), cursor: nil, router: router,
                         now: detectedAt, report: &report)
    }

    /// Commits `changes` (and `cursor`, when given) in one page transaction and counts them in `report`; nil when
    /// there is nothing to write.
    @discardableResult
    func commit(_ descriptor: ObjectDescriptor, _ changes: ReconcileChanges, cursor: CursorState?,
                router: EventRouter, now: Date, report: inout CycleReport) async throws -> PageCommitResult? {
        let (writes, events) = (changes.writes, changes.events)
        guard !writes.isEmpty || !events.isEmpty || cursor != nil || !changes.quarantine.isEmpty else { return nil }
        let commit = PageCommit(connection: descriptor.connection, object: descriptor.object, snapshots: writes,
                                events: events.map { OutgoingEvent(event: $0, subscribers: router($0)) },
                                cursor: cursor, now: now, quarantine: changes.quarantine,
                                acceptedIDs: changes.acceptedIDs)
        let result = try await store.perform { try $0.commitPage(commit) }
        report.snapshotsWritten += result.snapshotsWritten
        let duplicates = Set(result.duplicateEventIDs)
        for event in events where !duplicates.contains(event.id) {
            report.add(event)
            metrics.eventCommitted(descriptor, type: event.type)
        }
        report.duplicates += result.duplicateEventIDs
        return result
    }
}

/// What one reconciler transaction writes: tombstones or revived snapshots, the events they carry, and (sweep
/// repair) the records the adapter rejected beside the ids it accepted.
struct ReconcileChanges {
    var writes: [SnapshotWrite]
    var events: [ChangeEvent]
    var quarantine: [RejectedRecord] = []
    var acceptedIDs: [String] = []
}
