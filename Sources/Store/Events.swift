// The `events` table (the outbox): every change event once, keyed by its deterministic id, in `seq` order.
// Inserted by the page commit (CommitPage.swift); pruned by retention (Retention.swift).
public import Foundation
import Core

extension StateStore {
    static let eventColumns = """
        e.seq, e.event_id, e.model, e.kind, e.connection, e.provider, e.object, e.record_id, e.occurred_at,
        e.detected_at, e.record, e.changes, e.raw, e.changed_fields
        """

    /// The event with this id (`evt_…`), nil when unknown.
    public func event(id: String) throws -> StoredEvent? {
        try database.read { db in
            try db.queryOne("SELECT \(Self.eventColumns) FROM events e WHERE e.event_id = ?", [.text(id)]) {
                try Self.eventRow($0, offset: 0)
            }
        }
    }

    /// Events matching `query`, ordered by seq, at most `query.limit`.
    public func events(_ query: EventQuery) throws -> [StoredEvent] {
        var conditions: [String] = []
        var arguments: [SQLValue] = []
        if let connection = query.connection { conditions.append("e.connection = ?"); arguments.append(.text(connection)) }
        if let object = query.object { conditions.append("e.object = ?"); arguments.append(.text(object)) }
        if let type = query.type { conditions.append("e.type = ?"); arguments.append(.text(type)) }
        if let since = query.since { conditions.append("e.detected_at >= ?"); arguments.append(.date(since)) }
        if let until = query.until { conditions.append("e.detected_at < ?"); arguments.append(.date(until)) }
        if let after = query.afterSeq { conditions.append("e.seq > ?"); arguments.append(.integer(after)) }
        if let before = query.beforeSeq { conditions.append("e.seq < ?"); arguments.append(.integer(before)) }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments.append(.integer(Int64(max(0, query.limit))))
        let sql = "SELECT \(Self.eventColumns) FROM events e \(whereClause) ORDER BY e.seq "
            + (query.newestFirst ? "DESC" : "ASC") + " LIMIT ?"
        return try database.read { db in try db.queryAll(sql, arguments) { try Self.eventRow($0, offset: 0) } }
    }

    /// Events with seq in `range`, ascending, at most `limit`.
    public func events(seqIn range: ClosedRange<Int64>, limit: Int = 1000) throws -> [StoredEvent] {
        try database.read { db in
            try db.queryAll("""
                SELECT \(Self.eventColumns) FROM events e WHERE e.seq BETWEEN ? AND ? ORDER BY e.seq LIMIT ?
                """, [.integer(range.lowerBound), .integer(range.upperBound), .integer(Int64(limit))]) {
                try Self.eventRow($0, offset: 0)
            }
        }
    }

    /// Routing columns of events detected at or after `since` with seq > `afterSeq`, ascending (keyset pages).
    public func eventSummaries(since: Date?, afterSeq: Int64 = 0, limit: Int = 1000) throws -> [EventSummary] {
        try database.read { db in
            try db.queryAll("""
                SELECT seq, event_id, type, connection, object, record_id, detected_at FROM events
                WHERE seq > ? AND detected_at >= ? ORDER BY seq LIMIT ?
                """, [.integer(afterSeq), .date(since ?? Date(timeIntervalSince1970: 0)), .integer(Int64(limit))]) { row in
                EventSummary(seq: row.int64(0), id: row.text(1), type: row.text(2), connection: row.text(3),
                             object: row.text(4), recordID: row.text(5),
                             detectedAt: row.date(6) ?? Date(timeIntervalSince1970: 0))
            }
        }
    }

    /// Decodes the 14 ``eventColumns`` starting at `offset`.
    static func eventRow(_ row: Row, offset: Int32) throws -> StoredEvent {
        let seq = row.int64(offset)
        let id = row.text(offset + 1)
        let context = "event \(id)"
        guard let kind = ChangeKind(rawValue: row.text(offset + 3)) else {
            throw StoreError(code: .corruptData, message: "\(context) has unknown kind")
        }
        var changes: [String: FieldChange]?
        if let text = row.string(offset + 11) {
            let value = try parseJSON(text, "\(context) changes")
            var result = [String: FieldChange]()
            for (key, change) in value.objectValue ?? JSONObject() {
                result[key] = FieldChange(from: change["from"] ?? .null, to: change["to"] ?? .null)
            }
            changes = result
        }
        var changedFields: [String]?
        if let text = row.string(offset + 13) {
            let value = try parseJSON(text, "\(context) changed_fields")
            guard let names = value.arrayValue?.compactMap(\.stringValue), names.count == value.arrayValue?.count
            else {
                throw StoreError(code: .corruptData, message: "\(context) changed_fields is not an array of names")
            }
            changedFields = names
        }
        let event = ChangeEvent(
            id: id, model: row.text(offset + 2), kind: kind, connection: row.text(offset + 4),
            provider: row.text(offset + 5), object: row.text(offset + 6), recordID: row.text(offset + 7),
            occurredAt: row.date(offset + 8), detectedAt: row.date(offset + 9) ?? Date(timeIntervalSince1970: 0),
            record: try parseJSON(row.text(offset + 10), "\(context) record"), changes: changes,
            raw: try parseJSON(row.text(offset + 12), "\(context) raw"), changedFields: changedFields)
        return StoredEvent(seq: seq, event: event)
    }
}
