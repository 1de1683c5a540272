// What one poll cycle did, for `deltahook poll-once` (printed), status and tests.
public import Core
public import Foundation
public import Store

/// One event a cycle committed (or, in a dry run, would commit).
public struct CycleEvent: Sendable, Hashable {
    public var id: String
    public var type: String
    public var kind: ChangeKind
    public var recordID: String
    /// Field names in `changes` (updated only), sorted.
    public var changedFields: [String]

    public init(_ event: ChangeEvent) {
        id = event.id
        type = event.type
        kind = event.kind
        recordID = event.recordID
        changedFields = (event.changes ?? [:]).keys.sorted()
    }
}

/// The outcome of one cycle of one object: the delta scan, then the delete feed, then reconciliation when due.
public struct CycleReport: Sendable {
    /// At most this many events are listed in ``events`` and ``previewEvents``; ``eventCount`` counts all.
    public static let eventListLimit = 1000

    public var connection: String
    public var object: String
    public var dryRun: Bool
    /// What started the cycle (a label only: a hinted cycle reads and emits what a scheduled one would).
    public var trigger: CycleTrigger = .schedule
    /// This scan is the object's first complete scan (no cursor existed when it started).
    public var initialSync = false
    /// Set when the cycle did not poll because another node holds the object's lease (or this node is at its
    /// fair share): then nothing else in the report is meaningful.
    public var leaseOutcome: PollLeaseOutcome?
    /// The cycle started under a lease but a write found it lost (fencing): what it had not committed is dropped.
    public var leaseLost = false
    /// Events are suppressed because this is the initial sync in `silent` mode.
    public var silent = false
    /// The scan continued an unfinished one from its persisted position.
    public var resumed = false
    /// Provider pages read by the delta scan.
    public var pages = 0
    /// Records read by the delta scan.
    public var records = 0
    /// Records whose content hash matched the snapshot (re-reads through the inclusive bound or lookback).
    public var unchanged = 0
    /// Created/updated records whose snapshot was written without an event (silent initial sync,
    /// `emits == false` records such as GitHub pull requests, typed-model changes with no visible field).
    public var suppressed = 0
    public var snapshotsWritten = 0
    /// Committed events (would-be events in a dry run), in commit order, up to ``eventListLimit``.
    public var events: [CycleEvent] = []
    /// All events, including deletions.
    public var eventCount = 0
    /// Event ids the store already had (a re-poll after a crash) and skipped with their deliveries.
    public var duplicates: [String] = []
    /// Provider warnings (also logged).
    public var warnings: [String] = []
    /// The first page answered "not modified" (GitHub 304): the cycle ended without writes.
    public var notModified = false
    /// `deleted` events from the delete feed and the reconciliation sweep.
    public var deletions = 0
    /// The delete feed was read (the plan asks for it and the source has one).
    public var deleteFeedRead = false
    /// A reconciliation sweep ran to completion this cycle.
    public var reconciled = false
    /// Ids listed by the sweep.
    public var reconcileIDs = 0
    /// Why a due sweep failed (it inferred nothing); the next attempt comes later.
    public var reconcileError: String?
    /// Changed records dated beyond scan start + `max_clock_skew`: emitted, left out of the watermark (rule 14).
    public var futureRecords = 0
    /// Records the adapter rejected this cycle (docs/DESIGN.md §2 rule 16); in a dry run they are only reported.
    public var rejected = 0
    /// Of those, records put in quarantine for the first time (re-sightings only raise their count).
    public var quarantined = 0
    /// Quarantined records that arrived valid this cycle and left quarantine.
    public var releasedFromQuarantine = 0
    /// The sweep completed but the mass-delete guard held it: nothing was deleted (rule 17).
    public var sweepHeld: HeldSweep?
    /// `deleted` events committed by applying a held sweep this cycle (`reconcile --apply-held`), nil if none.
    public var heldSweepApplied: Int?
    /// The watermark after the cycle.
    public var watermark: Date?
    /// Dry run only: the full events that would be committed, up to ``eventListLimit``.
    public var previewEvents: [ChangeEvent] = []

    public init(connection: String, object: String, dryRun: Bool) {
        self.connection = connection
        self.object = object
        self.dryRun = dryRun
    }

    /// Committed events per type (`ticket.created` → 2), counted from the listed events.
    public var eventTypes: [String: Int] {
        events.reduce(into: [:]) { $0[$1.type, default: 0] += 1 }
    }

    /// Committed events per kind (all of them, not only the listed ones).
    public var created = 0
    public var updated = 0

    mutating func add(_ event: ChangeEvent) {
        eventCount += 1
        switch event.kind {
        case .created: created += 1
        case .updated: updated += 1
        case .deleted: deletions += 1
        }
        guard events.count < Self.eventListLimit else { return }
        events.append(CycleEvent(event))
        if dryRun { previewEvents.append(event) }
    }
}

extension CycleReport: CustomStringConvertible {
    /// One line for `poll-once` and logs, e.g.
    /// `acme/incident: 3 pages, 250 records (240 unchanged), 10 events (ticket.created 2, ticket.updated 8), …`.
    public var description: String {
        var parts = ["\(pages) page\(pages == 1 ? "" : "s")", "\(records) records (\(unchanged) unchanged)"]
        let types = eventTypes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        parts.append("\(eventCount) event\(eventCount == 1 ? "" : "s")\(dryRun ? " would be committed" : "")"
                     + (types.isEmpty ? "" : " (\(types))"))
        if notModified { parts.append("not modified (304)") }
        if silent { parts.append("silent initial sync") } else if initialSync { parts.append("initial sync") }
        if resumed { parts.append("resumed an unfinished scan") }
        if suppressed > 0 { parts.append("\(suppressed) changes without events") }
        if !duplicates.isEmpty { parts.append("\(duplicates.count) already committed") }
        if deleteFeedRead { parts.append("delete feed read") }
        if reconciled { parts.append("reconciled \(reconcileIDs) ids") }
        if let reconcileError { parts.append("reconciliation failed: \(reconcileError)") }
        if let sweepHeld { parts.append("sweep held: would delete \(sweepHeld.wouldDelete) of \(sweepHeld.live)") }
        if let heldSweepApplied { parts.append("held sweep applied: \(heldSweepApplied) deleted") }
        if rejected > 0 {
            parts.append("\(rejected) rejected record\(rejected == 1 ? "" : "s")"
                         + (dryRun ? " (not quarantined: dry run)" : " (\(quarantined) newly quarantined)"))
        }
        if releasedFromQuarantine > 0 { parts.append("\(releasedFromQuarantine) released from quarantine") }
        if !warnings.isEmpty { parts.append("\(warnings.count) warning\(warnings.count == 1 ? "" : "s")") }
        if let watermark { parts.append("watermark \(Timestamps.rfc3339(watermark))") }
        return "\(connection)/\(object): " + parts.joined(separator: ", ")
    }
}

/// What started a cycle: its interval, a push hint (docs/DESIGN.md §2 rule 23) or an operator.
public enum CycleTrigger: String, Sendable, Hashable {
    case schedule
    case hint
    case `operator`
}
