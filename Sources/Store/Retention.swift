// Bounded storage (docs/DESIGN.md §5 `orphaned`, §6 `retention`, §7 `prune`): what retention removes, in
// short write transactions so the engine's page commits interleave, and how the file gives the space back.
//
// - Deliveries still pending for a subscriber that left the config become `orphaned`; nothing would ever send
//   them, and while pending they kept their events forever.
// - An event goes when none of its deliveries is pending and each is past its class's retention, counted from
//   when it reached its state (`updated_at`): `delivered` rows after `retention.delivered`, `failed` and
//   `orphaned` ones after `retention.failed`. An event routed to nobody goes `retention.delivered` after its
//   detection. Its deliveries and attempts go with it (ON DELETE CASCADE). Pending deliveries are never pruned.
// - Tombstones go `retention.tombstones` after the delete. A record that comes back afterwards looks new and
//   emits `created` — which an undelete emits anyway.
// - Freed pages return to the file system with `PRAGMA incremental_vacuum` (files created since schema v3 are
//   `auto_vacuum = INCREMENTAL`; older ones are switched by one VACUUM, see Schema.enableIncrementalVacuum),
//   then a WAL checkpoint truncates the log.
public import Foundation

/// How long finished rows are kept (`retention` in the config, docs/DESIGN.md §6).
public struct RetentionPolicy: Sendable, Hashable {
    /// Events whose deliveries were all delivered, counted from the last delivery.
    public var delivered: TimeInterval
    /// Failed and orphaned deliveries (and so their events), counted from when they failed or were orphaned.
    public var failed: TimeInterval
    /// Tombstoned snapshots, counted from the delete.
    public var tombstones: TimeInterval

    /// 7 days covers the longest default retry schedule (about 28 h) plus a weekend of `replay --since`; failed
    /// deliveries wait a month for an operator's `replay`; tombstones outlive late delete-feed entries.
    public static let defaults = RetentionPolicy(delivered: 7 * 86_400, failed: 30 * 86_400, tombstones: 90 * 86_400)

    public init(delivered: TimeInterval, failed: TimeInterval, tombstones: TimeInterval) {
        self.delivered = delivered
        self.failed = failed
        self.tombstones = tombstones
    }
}

/// What one retention run removed (or, for a dry run, would remove).
public struct PruneReport: Sendable, Hashable {
    /// Pending deliveries made `orphaned`, by subscriber.
    public var orphaned: [String: Int] = [:]
    public var events = 0
    public var deliveries = 0
    public var attempts = 0
    public var tombstones = 0
    /// False when the run was told to stop before it finished.
    public var complete = true

    public init() {}

    public var orphanedTotal: Int { orphaned.values.reduce(0, +) }
    public var removedAnything: Bool { events > 0 || tombstones > 0 }
}

/// One page of ``StateStore/pruneEventPage(policy:now:afterSeq:scan:dryRun:)``.
public struct EventPrunePage: Sendable, Hashable {
    public var events = 0
    public var deliveries = 0
    public var attempts = 0
    /// Where the next page starts; nil when the walk is done.
    public var nextAfterSeq: Int64?
}

/// The store's size and its oldest rows, for `status`.
public struct StorageSummary: Sendable, Hashable {
    public var path: String
    /// The main database file.
    public var fileBytes: Int64
    /// The write-ahead log (`-wal`), which a checkpoint folds back and truncates.
    public var walBytes: Int64
    /// Free pages inside the file: reusable, returned to the file system by an incremental vacuum.
    public var freeBytes: Int64
    /// `none`, `full` or `incremental`.
    public var autoVacuum: String
    /// Detection time of the oldest event in the outbox.
    public var oldestEventAt: Date?
    /// Delete time of the oldest tombstone.
    public var oldestTombstoneAt: Date?

    public var totalBytes: Int64 { fileBytes + walBytes }
}

extension StateStore {
    // MARK: - Orphaned deliveries

    /// Marks every pending delivery to a subscriber not in `configured` as `orphaned` (or, with `dryRun`, only
    /// counts them). A delivery in flight keeps its lease token, so a result that comes back still records
    /// what happened. `replay`/`redeliver` make an orphaned delivery pending again.
    /// - Returns: the count per subscriber.
    @discardableResult
    public func orphanDeliveries(keeping configured: [String], now: Date, dryRun: Bool = false) throws
        -> [String: Int]
    {
        let keep = Self.jsonArray(configured)
        let dialect = database.dialect
        let count = """
            SELECT subscriber, COUNT(*) FROM deliveries\(dialect.indexedBy("deliveries_pending"))
            WHERE state = 'pending' AND subscriber NOT IN (\(dialect.textsOfJSONArray()))
            GROUP BY subscriber ORDER BY subscriber LIMIT 100000
            """
        func counts(_ db: any SQLConnection) throws -> [String: Int] {
            var result: [String: Int] = [:]
            try db.query(count, [.text(keep)]) { result[$0.text(0)] = $0.int(1) }
            return result
        }
        if dryRun { return try database.read(counts) }
        return try database.write { db in
            let found = try counts(db)
            guard !found.isEmpty else { return found }
            try db.execute("""
                UPDATE deliveries SET state = 'orphaned', next_attempt_at = NULL, updated_at = ?
                WHERE state = 'pending' AND subscriber NOT IN (\(dialect.textsOfJSONArray()))
                """, [.date(now), .text(keep)])
            return found
        }
    }

    // MARK: - Events

    /// One page of the event walk: looks at up to `scan` events after `afterSeq` old enough for the shorter
    /// retention and deletes those that are done (see the file comment), in one write transaction — or only
    /// counts them with `dryRun`. Call again with `nextAfterSeq` until it is nil. seq is AUTOINCREMENT, so the
    /// walk never meets a reused seq.
    public func pruneEventPage(policy: RetentionPolicy, now: Date, afterSeq: Int64 = 0,
                               scan: Int = RetentionRun.eventScan, dryRun: Bool = false) throws -> EventPrunePage
    {
        let deliveredCutoff = Millis.from(now.addingTimeInterval(-policy.delivered))
        let failedCutoff = Millis.from(now.addingTimeInterval(-policy.failed))
        let dialect = database.dialect
        let body = { (db: any SQLConnection) throws -> EventPrunePage in
            var page = EventPrunePage()
            var doomed: [Int64] = []
            var last: Int64?
            try db.query(Self.prunePageSQL(dialect), [
                .integer(afterSeq), .integer(deliveredCutoff), .integer(failedCutoff),
                .integer(Int64(max(1, scan))),
            ]) { row in
                last = row.int64(0)
                guard row.bool(1) else { return }
                doomed.append(row.int64(0))
                page.deliveries += row.int(2)
                page.attempts += row.int(3)
            }
            page.events = doomed.count
            page.nextAfterSeq = last
            if !dryRun, !doomed.isEmpty {
                // Re-checked in the DELETE: on a shared store a replay on another node may have re-armed one since.
                try db.execute("""
                    DELETE FROM events WHERE seq IN (\(dialect.integersOfJSONArray()))
                      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq AND d.state = 'pending')
                    """, [.text(JSONValueText.integers(doomed))])
            }
            return page
        }
        return dryRun ? try database.read(body) : try database.write(body)
    }

    /// ?1 after seq, ?2 delivered cutoff, ?3 failed cutoff, ?4 page size. Columns: seq, prunable, deliveries,
    /// attempts (the counts only for prunable rows: CASE evaluates lazily).
    static func prunePageSQL(_ dialect: SQLDialect) -> String { """
        SELECT p.seq, p.prunable,
               CASE WHEN p.prunable THEN (SELECT COUNT(*) FROM deliveries d WHERE d.event_seq = p.seq) ELSE 0 END,
               CASE WHEN p.prunable THEN (SELECT COUNT(*) FROM deliveries d JOIN attempts a ON a.delivery_id = d.id
                                          WHERE d.event_seq = p.seq) ELSE 0 END
        FROM (SELECT e.seq AS seq,
                     NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq
                                   AND (d.state = 'pending'
                                        OR (d.state = 'delivered' AND d.updated_at >= ?2)
                                        OR (d.state IN ('failed', 'orphaned') AND d.updated_at >= ?3)))
                     AND (e.detected_at < ?2 OR EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq))
                     AS prunable
              FROM events e
              WHERE e.seq > ?1 AND e.detected_at < \(dialect.greatest("?2", "?3"))
              ORDER BY e.seq LIMIT ?4) AS p
        ORDER BY p.seq
        """ }

    // MARK: - Tombstones

    /// Deletes up to `limit` tombstones deleted before `cutoff` (or, with `dryRun`, counts all of them).
    public func purgeTombstones(before cutoff: Date, limit: Int = RetentionRun.tombstoneBatch,
                                dryRun: Bool = false) throws -> Int {
        if dryRun {
            return try database.read { db in
                try db.queryOne("SELECT COUNT(*) FROM snapshots WHERE tombstoned = 1 AND tombstoned_at < ?",
                                [.date(cutoff)]) { $0.int(0) } ?? 0
            }
        }
        return try database.write { db in
            try db.execute("""
                DELETE FROM snapshots WHERE (connection, object, record_id) IN (
                    SELECT connection, object, record_id FROM snapshots
                    WHERE tombstoned = 1 AND tombstoned_at < ? LIMIT ?)
                """, [.date(cutoff), .integer(Int64(max(1, limit)))])
        }
    }

    // MARK: - A whole run

    /// Orphans (when `configuredSubscribers` is given), prunes events and purges tombstones in short
    /// transactions, then returns the freed space to the file system. `shouldContinue` is asked between
    /// transactions. For the CLI and tests; the daemon's maintenance loop steps the same ``RetentionRun``
    /// through ``perform(_:)`` so page commits interleave.
    public func applyRetention(_ policy: RetentionPolicy, configuredSubscribers: [String]?, now: Date,
                               dryRun: Bool = false, shouldContinue: () -> Bool = { true }) throws -> PruneReport
    {
        var run = RetentionRun(policy: policy, configuredSubscribers: configuredSubscribers, now: now, dryRun: dryRun)
        while !run.isDone {
            guard shouldContinue() else {
                run.report.complete = false
                break
            }
            try run.step(self)
        }
        return run.report
    }

    // MARK: - Space

    /// Retention: deletes up to `limit` events detected before `cutoff` whose deliveries are all delivered (or
    /// that had none), with their deliveries and attempts (ON DELETE CASCADE). Pending and failed deliveries keep
    /// their events. Call repeatedly until it returns 0; each call is one short write transaction. seq is
    /// AUTOINCREMENT, so deleted seqs are never reused and keyset paging stays valid.
    public func pruneEvents(detectedBefore cutoff: Date, limit: Int = 1000) throws -> Int {
        try database.write { db in
            try db.execute("""
                DELETE FROM events WHERE seq IN (
                    SELECT e.seq FROM events e
                    WHERE e.detected_at < ?
                      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq AND d.state != 'delivered')
                    ORDER BY e.seq LIMIT ?)
                """, [.date(cutoff), .integer(Int64(limit))])
        }
    }

    /// Makes committed data durable in its final place (SQLite: a WAL checkpoint, on shutdown or after pruning).
    public func checkpoint() throws { try database.checkpoint() }

    /// Returns the space a prune freed (SQLite: incremental vacuum and a truncating checkpoint).
    public func reclaimSpace() throws { try database.reclaimSpace() }

    /// A full rewrite without free space (`prune --vacuum`; SQLite: VACUUM, which holds the write lock meanwhile).
    public func vacuum() throws { try database.vacuum() }

    /// The store's size, its free space and its oldest rows. Cheap: two index lookups and the backend's figures.
    public func storageSummary() throws -> StorageSummary {
        let figures = try database.storageFigures()
        return try database.read { db in
            let oldestEvent = try db.queryOne("SELECT MIN(detected_at) FROM events") { $0.date(0) } ?? nil
            let oldestTombstone = try db.queryOne(
                "SELECT MIN(tombstoned_at) FROM snapshots WHERE tombstoned = 1") { $0.date(0) } ?? nil
            return StorageSummary(
                path: figures.location, fileBytes: figures.fileBytes, walBytes: figures.walBytes,
                freeBytes: figures.freeBytes, autoVacuum: figures.autoVacuum,
                oldestEventAt: oldestEvent, oldestTombstoneAt: oldestTombstone)
        }
    }
}

/// JSON arrays of integers for `json_each` bindings.
enum JSONValueText {
    static func integers(_ values: [Int64]) -> String {
        "[" + values.map(String.init).joined(separator: ",") + "]"
    }
}

/// One retention run as a sequence of steps, each one short transaction: orphan, event pages, tombstone
/// batches, reclaim. A value, so the daemon can carry it across ``StateStore/perform(_:)`` hops and stop
/// between any two steps.
public struct RetentionRun: Sendable {
    enum Phase: Sendable { case orphan, events(after: Int64), tombstones, reclaim, done }

    public let policy: RetentionPolicy
    public let configuredSubscribers: [String]?
    public let now: Date
    public let dryRun: Bool
    public var report = PruneReport()
    var phase = Phase.orphan

    /// - Parameter configuredSubscribers: nil skips orphaning (the subscriber list is unknown).
    public init(policy: RetentionPolicy, configuredSubscribers: [String]?, now: Date, dryRun: Bool = false) {
        self.policy = policy
        self.configuredSubscribers = configuredSubscribers
        self.now = now
        self.dryRun = dryRun
    }

    public var isDone: Bool {
        if case .done = phase { return true }
        return false
    }

    /// Events examined per step and tombstones purged per step: each step stays one short transaction. Also the
    /// defaults of ``StateStore/pruneEventPage(policy:now:afterSeq:scan:dryRun:)`` and
    /// ``StateStore/purgeTombstones(before:limit:dryRun:)``.
    public static let eventScan = 1000, tombstoneBatch = 1000

    /// Runs the next step (one transaction at most).
    public mutating func step(_ store: some StateStoring) throws {
        switch phase {
        case .orphan:
            if let configuredSubscribers {
                report.orphaned = try store.orphanDeliveries(keeping: configuredSubscribers, now: now, dryRun: dryRun)
            }
            phase = .events(after: 0)
        case .events(let after):
            let page = try store.pruneEventPage(policy: policy, now: now, afterSeq: after, scan: Self.eventScan,
                                                dryRun: dryRun)
            report.events += page.events
            report.deliveries += page.deliveries
            report.attempts += page.attempts
            phase = page.nextAfterSeq.map { .events(after: $0) } ?? .tombstones
        case .tombstones:
            let cutoff = now.addingTimeInterval(-policy.tombstones)
            let n = try store.purgeTombstones(before: cutoff, limit: Self.tombstoneBatch, dryRun: dryRun)
            report.tombstones += n
            if dryRun || n == 0 { phase = .reclaim }
        case .reclaim:
            if !dryRun {
                if report.removedAnything { try store.reclaimSpace() } else { try store.checkpoint() }
            }
            phase = .done
        case .done:
            break
        }
    }
}
