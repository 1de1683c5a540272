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

    private let store: StateStore
    private let now: @Sendable () -> Date
    private let metrics: EngineMetrics
    private let retry = Mutex(RetryState())
    /// The source answered `unsupported` to a single-record read: said once, not on every sweep.
    private let singleReadsUnsupportedLogged = Mutex(false)

    public init(store: StateStore, metrics: MetricsRegistry? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
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
    private func recordSweep(_ descriptor: ObjectDescriptor, at sweepStart: Date) async throws {
        let (connection, object, partition) = (descriptor.connection, descriptor.object, descriptor.partition)
        try await store.perform { store in
            var cursor = try store.cursor(connection: connection, object: object, partition: partition)
                ?? CursorState(connection: connection, object: object, partition: partition)
            cursor.lastReconcileAt = sweepStart
            try store.setCursor(cursor, now: sweepStart)
        }
    }

    // MARK: - Held sweeps (rule 17)

    /// Applies the object's held sweep when an operator asked for it (`reconcile --apply-held` beside a running
    /// daemon sets the request; the daemon applies it here, at the object's next cycle).
    func applyHeldSweepIfRequested(_ target: PollTarget, router: EventRouter, report: inout CycleReport,
                                   logger: Logger) async throws {
        let descriptor = target.plan.descriptor
        let (connection, object) = (descriptor.connection, descriptor.object)
        let held = try await store.perform { try $0.heldSweep(connection: connection, object: object) }
        guard let held, held.applyRequested else { return }
        try await applyHeldSweep(target, router: router, report: &report, logger: logger)
    }

    /// Applies the object's held sweep once: a `deleted` event (with its deliveries) and a tombstone for each id
    /// it held that is still live and has been neither listed by a sweep nor written by a page since the held
    /// sweep started — a record that came back is not deleted. Then removes the held sweep. Returns the number
    /// of records deleted, nil when the object has no held sweep. Safe to repeat after a crash: ids already
    /// tombstoned are skipped.
    @discardableResult
    public func applyHeldSweep(_ target: PollTarget, router: EventRouter, report: inout CycleReport, logger: Logger)
        async throws -> Int?
    {
        let plan = target.plan
        let descriptor = plan.descriptor
        let (connection, object) = (descriptor.connection, descriptor.object)
        let found = try await store.perform { store -> (HeldSweep, [String])? in
            guard let held = try store.heldSweep(connection: connection, object: object) else { return nil }
            return (held, try store.heldSweepIDs(connection: connection, object: object))
        }
        guard let (held, heldIDs) = found else { return nil }
        let deletionsBefore = report.deletions
        var start = 0
        while start < heldIDs.count {
            try Task.checkCancellation()
            let chunk = Array(heldIDs[start..<min(heldIDs.count, start + plan.pageSize)])
            start += chunk.count
            let ids = try await store.perform {
                try $0.stillUnseenLiveIDs(connection: connection, object: object, since: held.sweepStarted,
                                          among: chunk)
            }
            try await tombstone(ids, descriptor: descriptor, router: router, report: &report)
        }
        _ = try await store.perform { try $0.clearHeldSweep(connection: connection, object: object) }
        let deleted = report.deletions - deletionsBefore
        report.heldSweepApplied = deleted
        logger.notice("held sweep applied by the operator", [
            "DELETED": String(deleted), "HELD": String(held.wouldDelete),
            "SWEEP_STARTED": Timestamps.rfc3339(held.sweepStarted),
        ])
        return deleted
    }

    // MARK: - Delete feed

    /// Reads the provider's delete feed from where the last read ended and commits a `deleted` event per
    /// notice whose record is live in the snapshots (tombstoning it), with the feed position in the same
    /// transaction. A notice older than the record's last seen source timestamp is stale (the record was
    /// re-created or undeleted after it) and emits nothing. Does nothing when the plan does not use the
    /// feed or the source has none.
    public func readDeleteFeed(_ target: PollTarget, router: EventRouter, dryRun: Bool, report: inout CycleReport,
                               logger: Logger) async throws {
        let plan = target.plan
        guard plan.useDeleteFeed else { return }
        let descriptor = plan.descriptor
        let (connection, object, partition) = (descriptor.connection, descriptor.object, descriptor.partition)
        guard var cursor = try await store.perform({
            try $0.cursor(connection: connection, object: object, partition: partition)
        }) else { return }
        var state: DeleteFeedState
        if let decoded = DeleteFeedState.decode(cursor.deleteFeedCursor) {
            state = decoded
        } else {
            logger.warning("unreadable delete-feed position; re-reading the feed from its start")
            state = DeleteFeedState()
        }
        let since: Date?
        if state.position != nil {
            since = state.readSince
        } else if let newest = state.newest {
            since = newest.addingTimeInterval(-max(descriptor.granularity.seconds, 0))
        } else {
            // First read: the feed's history before the delta watermark cannot hold a delete of a record the
            // scan snapshotted (it was read alive, so its delete came later); start there, not at the feed's
            // beginning (ServiceNow keeps years of sys_audit_delete rows). Sweeps cover anything else.
            since = plan.lowerBound(fromWatermark: cursor.watermark)
        }
        var position = state.position
        var seen = Set<ScanPosition>()
        if let position { seen.insert(position) }
        var deletedHere = Set<String>()
        let differ = Differ(descriptor: descriptor)

        while true {
            try Task.checkCancellation()
            guard let page = try await target.source.fetchDeletions(since: since, after: position,
                                                                     pageSize: plan.pageSize) else { return }
            report.deleteFeedRead = true
            if let next = page.next, !seen.insert(next).inserted {
                throw EngineError.deleteFeedStalled(connection: connection, object: object, position: next.summary)
            }
            var ids: [String] = []
            var queued = Set<String>()
            for notice in page.deletions where !deletedHere.contains(notice.id) && queued.insert(notice.id).inserted {
                ids.append(notice.id)
            }
            let lookup = ids
            let snapshots = lookup.isEmpty ? [:] : try await store.perform {
                try $0.snapshots(connection: connection, object: object, ids: lookup)
            }
            let detectedAt = now()
            var writes: [SnapshotWrite] = []
            var events: [ChangeEvent] = []
            for notice in page.deletions {
                if state.newest.map({ notice.deletedAt > $0 }) ?? true { state.newest = notice.deletedAt }
                guard !deletedHere.contains(notice.id), let snapshot = snapshots[notice.id], !snapshot.tombstoned
                else { continue }
                if let seenAlive = snapshot.sourceTimestamp,
                   try await !deleteStillHolds(notice, seenAlive: seenAlive, source: target.source,
                                               granularity: descriptor.granularity, logger: logger) {
                    continue
                }
                deletedHere.insert(notice.id)
                let prior = PriorState(contentHash: snapshot.contentHash, record: snapshot.record, tombstoned: false)
                events.append(differ.deletionEvent(recordID: notice.id, prior: prior, raw: snapshot.raw,
                                                   deletedAt: notice.deletedAt, detectedAt: detectedAt))
                writes.append(Self.tombstone(snapshot))
            }
            state.position = page.next
            state.readSince = page.next == nil ? nil : since
            cursor.deleteFeedCursor = state.encoded()
            if dryRun {
                for event in events { report.add(event) }
            } else {
                try await commit(descriptor, writes: writes, events: events, cursor: cursor, router: router,
                                 now: detectedAt, report: &report)
            }
            guard let next = page.next else { return }
            position = next
        }
    }

    /// Whether a feed entry still means `deleted` for a live snapshot last seen at `seenAlive` (docs/DESIGN.md §2
    /// rule 6a). Seen later than the delete (in a later granule): the record came back and its newer state was
    /// already emitted, so the entry is stale. Seen in the same granule: the order inside one second is unknown
    /// (ServiceNow and NetSuite times have one-second granularity), so the provider is asked whether the record
    /// exists now — if so the delta scan emits its state and the entry is skipped. A source that cannot read
    /// single records keeps the feed's word (`deleted`); a sweep repairs it if wrong.
    func deleteStillHolds(_ notice: DeletedRecordNotice, seenAlive: Date, source: any ObjectSource,
                          granularity: Duration, logger: Logger) async throws -> Bool {
        let seen = Self.granule(seenAlive, granularity), deleted = Self.granule(notice.deletedAt, granularity)
        if seen > deleted {
            logger.debug("stale delete-feed entry skipped: the record was seen alive after it (rule 6a)",
                         [.recordID: notice.id, "DELETED_AT": Timestamps.rfc3339(notice.deletedAt),
                          "SEEN_ALIVE_AT": Timestamps.rfc3339(seenAlive)])
            return false
        }
        guard seen == deleted else { return true }
        switch try await source.fetchRecord(id: notice.id) {
        case .found, .rejected:
            logger.debug("delete-feed entry in the same second as the record's last state skipped: the record exists (rule 6a)", [.recordID: notice.id, "DELETED_AT": Timestamps.rfc3339(notice.deletedAt)])
            return false
        case .gone:
            return true
        case .unsupported:
            return true
        }
    }

    /// `date` floored to whole granules (whole seconds for a one-second provider).
    static func granule(_ date: Date, _ granularity: Duration) -> Int64 {
        let size = max(granularity.seconds, 0.001)
        let units = (date.timeIntervalSince1970 / size).rounded(.down)
        return units.isFinite && abs(units) < 9e15 ? Int64(units) : 0
    }

    // MARK: - Sweep repair (rule 6a)

    /// Reads every id of a sweep page whose snapshot is tombstoned and commits what the source holds now: a
    /// `created` event per record (through the normal diff, with delivery rows), quarantine for one the adapter
    /// rejects (rule 16), nothing for one gone meanwhile — in one transaction for the page. A wrong `deleted` is so
    /// corrected by the next sweep at the latest. A source without single-record reads is logged once and left to
    /// the next delta read of the record. Provider errors other than rate limits skip the id (the next sweep asks
    /// again) rather than abandon the sweep: deletes of other records must not wait for one unreadable record.
    func repairTombstoned(among ids: [String], target: PollTarget, router: EventRouter, report: inout CycleReport,
                          logger: Logger) async throws {
        let descriptor = target.plan.descriptor
        let (connection, object) = (descriptor.connection, descriptor.object)
        let heads = try await store.perform { try $0.snapshotHeads(connection: connection, object: object, ids: ids) }
        let tombstoned = ids.filter { heads[$0]?.tombstoned == true }
        guard !tombstoned.isEmpty else { return }
        var found: [SourceRecord] = []
        var rejected: [RejectedRecord] = []
        for id in tombstoned {
            try Task.checkCancellation()
            let lookup: RecordLookup
            do {
                lookup = try await target.source.fetchRecord(id: id)
            } catch let error as ProviderError {
                if case .rateLimited = error { throw error }
                logger.warning("sweep could not read a deleted record it listed; the next sweep asks again",
                               [.recordID: id], error: error)
                continue
            }
            switch lookup {
            case .found(let record): found.append(record)
            case .rejected(let record): rejected.append(record)
            case .gone: continue
            case .unsupported:
                let first = singleReadsUnsupportedLogged.withLock { logged in
                    defer { logged = true }
                    return !logged
                }
                if first {
                    logger.info("sweep lists records that were deleted, but this source cannot read single records; they come back with their next change (rule 6a)",
                                [.recordID: id])
                }
                return
            }
        }
        guard !found.isEmpty || !rejected.isEmpty else { return }
        let differ = Differ(descriptor: descriptor)
        let hashes = differ.contentHashes(of: found)
        let priorIDs = found.map(\.id)
        let snapshots = try await store.perform {
            try $0.snapshots(connection: connection, object: object, ids: priorIDs)
        }
        let detectedAt = now()
        var writes: [SnapshotWrite] = []
        var events: [ChangeEvent] = []
        for (index, record) in found.enumerated() {
            let prior = snapshots[record.id].map {
                PriorState(contentHash: $0.contentHash, record: $0.record, tombstoned: $0.tombstoned)
            }
            let outcome = differ.diff(record, contentHash: hashes[index], prior: prior)
            guard let hash = outcome.contentHash else { continue }
            writes.append(SnapshotWrite(recordID: record.id, contentHash: hash, record: record.record, raw: record.raw,
                                        sourceTimestamp: record.updatedAt))
            guard var event = differ.event(for: record, outcome: outcome, detectedAt: detectedAt) else { continue }
            if let prior = snapshots[record.id], prior.tombstoned {
                event.id = Self.revivalID(of: event, contentHash: hash, tombstonedAt: prior.tombstonedAt)
            }
            events.append(event)
        }
        let result = try await commit(descriptor, writes: writes, events: events, cursor: nil, router: router,
                                      now: detectedAt, report: &report, quarantine: rejected,
                                      acceptedIDs: found.map(\.id))
        report.rejected += rejected.count
        report.releasedFromQuarantine += result?.releasedFromQuarantine ?? 0
        if let fresh = result?.newlyQuarantined, !fresh.isEmpty {
            report.quarantined += fresh.count
            metrics.quarantined(descriptor, fresh.count)
            for record in rejected where fresh.contains(record.key) {
                logger.warning("record quarantined: the adapter could not accept it; the sweep goes on without it",
                               ["RECORD_ID": record.key, "POSITION": record.position, "REASON": record.reason,
                                "HINT": "see `deltahook quarantine list`; it leaves quarantine when it arrives valid"])
            }
        }
        if !events.isEmpty {
            logger.info("sweep found deleted records alive again; emitted created (rule 6a)",
                        ["COUNT": String(events.count)])
        }
    }

    /// The id of a `created` event for a record whose snapshot is a tombstone. A wrongly deleted record that never
    /// changed comes back with the state and source timestamp of its first `created`, so rule 8's id would repeat
    /// that event's id and the outbox would drop it as a re-poll — the subscriber would keep believing it deleted.
    /// The id is therefore derived from the later of the record's timestamp and the tombstone's time: still
    /// deterministic (a crash before the commit re-derives it), and distinct for each delete-and-return.
    static func revivalID(of event: ChangeEvent, contentHash: String, tombstonedAt: Date?) -> String {
        var stamp = event.occurredAt
        if let tombstonedAt, stamp.map({ tombstonedAt > $0 }) ?? true { stamp = tombstonedAt }
        return ChangeEvent.makeID(connection: event.connection, object: event.object, recordID: event.recordID,
                                  sourceTimestamp: stamp, contentHash: contentHash, kind: event.kind)
    }

    // MARK: - Helpers

    static func tombstone(_ snapshot: Snapshot) -> SnapshotWrite {
        SnapshotWrite(recordID: snapshot.recordID, contentHash: snapshot.contentHash, record: snapshot.record,
                      raw: snapshot.raw, sourceTimestamp: snapshot.sourceTimestamp, tombstoned: true)
    }

    /// Commits a `deleted` event and a tombstone for each of `ids` that is live, in one page transaction (the
    /// sweep's inferred deletes and an applied held sweep).
    private func tombstone(_ ids: [String], descriptor: ObjectDescriptor, router: EventRouter,
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
        try await commit(descriptor, writes: writes, events: events, cursor: nil, router: router, now: detectedAt,
                         report: &report)
    }

    @discardableResult
    private func commit(_ descriptor: ObjectDescriptor, writes: [SnapshotWrite], events: [ChangeEvent],
                        cursor: CursorState?, router: EventRouter, now: Date, report: inout CycleReport,
                        quarantine: [RejectedRecord] = [], acceptedIDs: [String] = []) async throws
        -> PageCommitResult?
    {
        guard !writes.isEmpty || !events.isEmpty || cursor != nil || !quarantine.isEmpty else { return nil }
        let commit = PageCommit(connection: descriptor.connection, object: descriptor.object, snapshots: writes,
                                events: events.map { OutgoingEvent(event: $0, subscribers: router($0)) },
                                cursor: cursor, now: now, quarantine: quarantine, acceptedIDs: acceptedIDs)
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
