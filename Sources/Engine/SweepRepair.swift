// Sweep repair (docs/DESIGN.md §2 rule 6a): a sweep that lists an id whose snapshot is tombstoned reads the record
// and emits `created`, so a wrong `deleted` (a record hidden from one sweep by a before-query rule, a delete that a
// restore undid) is corrected by the next sweep at the latest.
import Core
import Foundation
import Logging
import Store
import Synchronization

extension Reconciler {
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
        let changes = ReconcileChanges(writes: writes, events: events, quarantine: rejected,
                                       acceptedIDs: found.map(\.id))
        let result = try await commit(descriptor, changes, cursor: nil, router: router, now: detectedAt,
                                      report: &report)
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
}
