// Applying a held sweep (docs/DESIGN.md §2 rule 17): the mass-delete guard held a sweep for an operator; once the
// operator asks (`reconcile --apply-held`, alone or beside a running daemon), the ids it held that are still
// unseen and live are tombstoned with a `deleted` event each. The sweep itself and the guard are in Reconciler.swift.
public import Core
import Foundation
public import Logging
import Store

extension Reconciler {
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
}
