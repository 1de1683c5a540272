// The `deliveries` and `attempts` tables on the dispatcher's path: which deliveries are due (head of record
// only, ARCHITECTURE.md invariant 6), claims as leases, and attempt results written under the claim's
// lease token. Listings, replay and redelivery are in DeliveryListings.swift and Redelivery.swift.
public import Foundation
import Core

extension StateStore {
    /// The head-of-record rule (ARCHITECTURE.md invariant 6, docs/DESIGN.md §5), the one place it is written:
    /// delivery `d` is the head of its record's queue when no earlier pending delivery of the same
    /// (subscriber, record_key) exists — due or not. Only heads are claimable, so a record's events arrive in
    /// order while other records flow; `failed`, `delivered` and `orphaned` rows do not block later ones.
    ///
    /// A predicate for a WHERE clause over `deliveries d` whose subscriber is bound as `?1`, served by the
    /// `deliveries_pending_record` index (Schema). Used by ``dueSQL``, ``claimSQL`` and
    /// ``nextDueAt(subscriber:)``.
    static let isHeadOfRecordSQL = """
        NOT EXISTS (SELECT 1 FROM deliveries p
                    WHERE p.subscriber = ?1 AND p.record_key = d.record_key AND p.state = 'pending'
                      AND p.event_seq < d.event_seq)
        """

    /// Pending deliveries of `subscriber` due at `now`, in event order, keeping only the head of each record's
    /// queue: a delivery is returned only if no earlier pending delivery exists for the same
    /// (subscriber, record_key), even one not yet due. So events of one record arrive in order, and a failing
    /// record (whose head waits for its retry) does not block other records (docs/DESIGN.md §5). `failed` deliveries
    /// are terminal and do not block later ones.
    static let dueSQL = dueQuery()

    /// The due query, with `condition` ANDed to its WHERE clause and `locking` after its LIMIT. ?1 subscriber,
    /// ?2 now, ?3 limit.
    private static func dueQuery(_ condition: String = "", locking: String = "") -> String {
        """
        SELECT \(DeliveryRow.columns.sql), \(EventRow.columns.sql)
        FROM deliveries d JOIN events e ON e.seq = d.event_seq
        WHERE d.subscriber = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2
          AND \(isHeadOfRecordSQL)
          \(condition)
        ORDER BY d.event_seq
        LIMIT ?3
        \(locking)
        """
    }

    /// Due head-of-record deliveries of `subscriber` (see the ordering rule above), without changing them.
    public func dueDeliveries(subscriber: String, now: Date, limit: Int = 100) throws -> [DueDelivery] {
        try database.read { db in
            try db.queryAll(Self.dueSQL, [.text(subscriber), .date(now), .integer(Int64(limit))], Self.dueRow)
        }
    }

    /// ``dueSQL`` without the records of deliveries the caller still has in flight (`?4`, a JSON array of
    /// delivery ids). A `redeliver`/`replay` can make an in-flight delivery, or an older event of its record,
    /// pending and due again; it waits until the attempt in flight has ended, so one record never has two
    /// deliveries in flight (docs/DESIGN.md §5, ARCHITECTURE.md invariant 6).
    /// On PostgreSQL the claimed rows are locked, skipping rows another node is claiming (``SQLDialect``).
    static func claimSQL(_ dialect: SQLDialect) -> String {
        dueQuery("""
            AND d.record_key NOT IN (SELECT h.record_key FROM deliveries h
                                     WHERE h.id IN (\(dialect.integersOfJSONArray("?4"))))
            """, locking: dialect.skippingLockedRows(of: "d"))
    }

    /// Like ``dueDeliveries(subscriber:now:limit:)`` but also leases them: their `next_attempt_at` moves to
    /// `leaseUntil` in the same transaction, so the next call does not return them again while they are in
    /// flight, and after a crash they become due again when the lease ends (at-least-once). Each claim bumps
    /// the row's `lease_token`; the returned ``Delivery/leaseToken`` goes back with the attempt's result.
    ///
    /// - Parameter inFlight: deliveries the caller claimed earlier and has not recorded yet; their records are
    ///   skipped even if a re-arm made one of them due (see ``claimSQL``).
    public func claimDueDeliveries(subscriber: String, now: Date, leaseUntil: Date, limit: Int = 100,
                                   inFlight: Set<Int64> = []) throws -> [DueDelivery]
    {
        let held = JSONValue.array(inFlight.map { .integer($0) }).serialized()
        let dialect = database.dialect
        return try database.write { db in
            let due = try db.queryAll(Self.claimSQL(dialect), [.text(subscriber), .date(now), .integer(Int64(limit)), .text(held)],
                                      Self.dueRow)
            guard !due.isEmpty else { return [] }
            // One statement leases the whole batch (the rows are locked by the claim query on PostgreSQL, so no
            // other node changes them in between): a statement per delivery was a fixed cost per send.
            let ids = JSONValue.array(due.map { .integer($0.delivery.id) }).serialized()
            try db.execute("""
                UPDATE deliveries SET next_attempt_at = ?, updated_at = ?, lease_token = lease_token + 1
                WHERE id IN (\(dialect.integersOfJSONArray("?")))
                """, [.date(leaseUntil), .date(now), .text(ids)])
            return due.map { item in
                var item = item
                item.delivery.nextAttemptAt = leaseUntil
                item.delivery.leaseToken += 1
                return item
            }
        }
    }

    private static func dueRow(_ row: any Row) throws -> DueDelivery {
        // The event's columns follow the delivery's in ``dueSQL``; its JSON members stay serialized.
        DueDelivery(delivery: try DeliveryRow(row).delivery,
                    event: try EventRow.serialized(row, at: DeliveryRow.columns.count))
    }

    /// Records one HTTP attempt and the delivery's new state in one transaction.
    /// - Throws: ``StoreError`` `.notFound` when the delivery does not exist.
    public func recordAttempt(_ result: AttemptResult) throws {
        try recordAttempts([result])
    }

    /// Records several attempts in one transaction (the dispatcher batches completions for throughput).
    ///
    /// A result carrying a ``AttemptResult/leaseToken`` changes the delivery only while the row still holds
    /// that token. When a `redeliver` or `replay` re-armed the row during the attempt (or it was claimed
    /// again), the result is superseded: its attempt is still logged in `attempts` (the receiver may have got
    /// it), but state, attempt count and schedule stay as the re-arm left them, so the redelivery happens.
    /// - Returns: the ids of the deliveries whose result was superseded.
    @discardableResult
    public func recordAttempts(_ results: [AttemptResult]) throws -> [Int64] {
        guard !results.isEmpty else { return [] }
        return try database.write { db in
            var superseded: [Int64] = []
            for result in results {
                let at = Millis.from(result.attemptedAt)
                let state: DeliveryState
                var next: SQLValue = .null
                var deliveredAt: SQLValue = .null
                switch result.outcome {
                case .delivered: state = .delivered; deliveredAt = .integer(at)
                case .retry(let when): state = .pending; next = .date(when)
                case .failed: state = .failed
                }
                let changed = try db.execute("""
                    UPDATE deliveries SET attempts = attempts + 1, state = ?, next_attempt_at = ?, last_status = ?,
                        last_error = ?, updated_at = ?, delivered_at = COALESCE(?, delivered_at)
                    WHERE id = ? AND (CAST(?8 AS BIGINT) IS NULL OR lease_token = ?8)
                    """, [
                        .text(state.rawValue), next, .integer(result.httpStatus.map(Int64.init)), .text(result.error),
                        .integer(at), deliveredAt, .integer(result.deliveryID), .integer(result.leaseToken),
                    ])
                if changed != 1 {
                    let exists = try db.queryOne("SELECT 1 FROM deliveries WHERE id = ?",
                                                 [.integer(result.deliveryID)]) { _ in true } ?? false
                    guard exists else {
                        throw StoreError(code: .notFound, message: "delivery \(result.deliveryID) does not exist",
                                         hint: "it was pruned by retention while the attempt was in flight")
                    }
                    superseded.append(result.deliveryID)
                }
                try db.execute("""
                    INSERT INTO attempts (delivery_id, attempted_at, http_status, latency_ms, response_excerpt, error)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """, [
                        .integer(result.deliveryID), .integer(at), .integer(result.httpStatus.map(Int64.init)),
                        .integer(result.latencyMilliseconds),
                        .text(result.responseExcerpt.map { Self.truncateUTF8($0, to: Self.responseExcerptLimit) }),
                        .text(result.error),
                    ])
            }
            return superseded
        }
    }


    /// When the earliest head-of-record pending delivery of `subscriber` becomes due (nil when nothing is
    /// pending), so the dispatcher can sleep until then. Only heads count: a later event of a record whose head
    /// waits for a retry is not due before that head, and counting it would wake the dispatcher for nothing.
    public func nextDueAt(subscriber: String) throws -> Date? {
        try database.read { db in
            try db.queryOne("""
                SELECT MIN(d.next_attempt_at) FROM deliveries d
                WHERE d.subscriber = ?1 AND d.state = 'pending' AND \(Self.isHeadOfRecordSQL)
                """, [.text(subscriber)]) { $0.date(0) } ?? nil
        }
    }
}

/// A row of `deliveries d` joined with `events e` (for the event's id and type).
struct DeliveryRow {
    enum Column: String, ColumnList {
        case id = "d.id", eventSeq = "d.event_seq", eventID = "e.event_id", eventType = "e.type"
        case subscriber = "d.subscriber", recordKey = "d.record_key", state = "d.state", attempts = "d.attempts"
        case nextAttemptAt = "d.next_attempt_at", lastStatus = "d.last_status", lastError = "d.last_error"
        case createdAt = "d.created_at", updatedAt = "d.updated_at", deliveredAt = "d.delivered_at"
        case leaseToken = "d.lease_token"
    }
    static let columns = Columns<Column>()

    let delivery: Delivery

    init(_ row: any Row) throws {
        let column = Self.columns.reader(row)
        guard let state = DeliveryState(rawValue: column.text(.state)) else {
            throw StoreError(code: .corruptData, message: "delivery \(column.int64(.id)) has unknown state")
        }
        delivery = Delivery(
            id: column.int64(.id), eventSeq: column.int64(.eventSeq), eventID: column.text(.eventID),
            eventType: column.text(.eventType), subscriber: column.text(.subscriber),
            recordKey: column.text(.recordKey), state: state, attempts: column.int(.attempts),
            nextAttemptAt: column.date(.nextAttemptAt), lastStatus: column.optionalInt64(.lastStatus).map(Int.init),
            lastError: column.string(.lastError), createdAt: column.date(.createdAt) ?? Date(timeIntervalSince1970: 0),
            updatedAt: column.date(.updatedAt) ?? Date(timeIntervalSince1970: 0),
            deliveredAt: column.date(.deliveredAt), leaseToken: column.int64(.leaseToken))
    }
}
