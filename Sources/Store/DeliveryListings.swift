// Reading the `deliveries` and `attempts` tables for operators (`deliveries list`, `events show`, `status`):
// bounded, keyset-paged listings and per-subscriber backlog counts.
public import Foundation

extension StateStore {
    /// Deliveries newest first, optionally of one subscriber and/or in one state (`deliveries list [--failed]`);
    /// page with `beforeID` = the last id of the previous page.
    public func deliveries(subscriber: String? = nil, state: DeliveryState? = nil, beforeID: Int64? = nil,
                           limit: Int = 100) throws -> [Delivery]
    {
        var conditions: [String] = []
        var arguments: [SQLValue] = []
        if let subscriber { conditions.append("d.subscriber = ?"); arguments.append(.text(subscriber)) }
        if let state { conditions.append("d.state = ?"); arguments.append(.text(state.rawValue)) }
        if let beforeID { conditions.append("d.id < ?"); arguments.append(.integer(beforeID)) }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments.append(.integer(Int64(max(0, limit))))
        return try database.read { db in
            try db.queryAll("""
                SELECT \(DeliveryRow.columns.sql) FROM deliveries d JOIN events e ON e.seq = d.event_seq
                \(whereClause) ORDER BY d.id DESC LIMIT ?
                """, arguments) { try DeliveryRow($0).delivery }
        }
    }

    /// The deliveries of one event (one per subscriber it was routed to).
    public func deliveries(eventID: String) throws -> [Delivery] {
        try database.read { db in
            try db.queryAll("""
                SELECT \(DeliveryRow.columns.sql) FROM deliveries d JOIN events e ON e.seq = d.event_seq
                WHERE e.event_id = ? ORDER BY d.subscriber LIMIT 10000
                """, [.text(eventID)]) { try DeliveryRow($0).delivery }
        }
    }

    /// The most recent attempts of a delivery, newest first.
    public func attempts(deliveryID: Int64, limit: Int = 20) throws -> [Attempt] {
        try database.read { db in
            try db.queryAll("""
                SELECT \(AttemptRow.columns.sql)
                FROM attempts WHERE delivery_id = ? ORDER BY id DESC LIMIT ?
                """, [.integer(deliveryID), .integer(Int64(limit))]) { AttemptRow($0).attempt }
        }
    }

    /// Pending and failed counts and the oldest pending delivery's creation time of one subscriber.
    /// Cost is proportional to that subscriber's pending + failed rows (partial indexes), not the table.
    public func backlog(subscriber: String) throws -> SubscriberBacklog {
        try database.read { db in
            let pending = try db.queryOne(
                "SELECT COUNT(*) FROM deliveries WHERE subscriber = ? AND state = 'pending'", [.text(subscriber)]
            ) { $0.int(0) } ?? 0
            let oldest = try db.queryOne("""
                SELECT created_at FROM deliveries WHERE subscriber = ? AND state = 'pending'
                ORDER BY event_seq LIMIT 1
                """, [.text(subscriber)]) { $0.date(0) } ?? nil
            let failed = try db.queryOne(
                "SELECT COUNT(*) FROM deliveries WHERE subscriber = ? AND state = 'failed'", [.text(subscriber)]
            ) { $0.int(0) } ?? 0
            let orphaned = try db.queryOne(
                "SELECT COUNT(*) FROM deliveries WHERE subscriber = ? AND state = 'orphaned'", [.text(subscriber)]
            ) { $0.int(0) } ?? 0
            return SubscriberBacklog(subscriber: subscriber, pending: pending, oldestPendingCreatedAt: oldest,
                                     failed: failed, orphaned: orphaned)
        }
    }

    /// Pending deliveries across all subscribers.
    public func pendingCount() throws -> Int {
        let dialect = database.dialect
        return try database.read { db in
            try db.queryOne(
                "SELECT COUNT(*) FROM deliveries\(dialect.indexedBy("deliveries_pending")) WHERE state = 'pending'"
            ) { $0.int(0) } ?? 0
        }
    }
}

/// A row of `attempts` (no alias): one HTTP attempt of a delivery.
struct AttemptRow {
    enum Column: String, ColumnList {
        case id, deliveryID = "delivery_id", attemptedAt = "attempted_at", httpStatus = "http_status"
        case latencyMilliseconds = "latency_ms", responseExcerpt = "response_excerpt", error
    }
    static let columns = Columns<Column>()

    let attempt: Attempt

    init(_ row: any Row) {
        let column = Self.columns.reader(row)
        attempt = Attempt(id: column.int64(.id), deliveryID: column.int64(.deliveryID),
                          attemptedAt: column.date(.attemptedAt) ?? Date(timeIntervalSince1970: 0),
                          httpStatus: column.optionalInt64(.httpStatus).map(Int.init),
                          latencyMilliseconds: column.int64(.latencyMilliseconds),
                          responseExcerpt: column.string(.responseExcerpt), error: column.string(.error))
    }
}
