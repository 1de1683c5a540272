// The provider's delete feed (docs/DESIGN.md §2 rules 6, 6a): ServiceNow `sys_audit_delete`, NetSuite
// `DeletedRecord`. Each notice of a live record commits a `deleted` event and a tombstone with the feed position in
// the same transaction; a notice older than the record's last seen state is stale and skipped, one in the same
// second is checked with the provider. Not guarded by the mass-delete guard: the feed names each delete.
public import Core
import Foundation
public import Logging
import Store

extension Reconciler {
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
                try await commit(descriptor, ReconcileChanges(writes: writes, events: events), cursor: cursor,
                                 router: router, now: detectedAt, report: &report)
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
}
