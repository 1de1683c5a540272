// The `events` table (the outbox): every change event once, keyed by its deterministic id, in `seq` order.
// Inserted by the page commit (CommitPage.swift); pruned by retention (Retention.swift).
public import Foundation
import Core

extension StateStore {
    /// The event with this id (`evt_…`), nil when unknown.
    public func event(id: String) throws -> StoredEvent? {
        try database.read { db in
            try db.queryOne("SELECT \(EventRow.columns.sql) FROM events e WHERE e.event_id = ?", [.text(id)]) {
                try EventRow($0).stored
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
        let sql = "SELECT \(EventRow.columns.sql) FROM events e \(whereClause) ORDER BY e.seq "
            + (query.newestFirst ? "DESC" : "ASC") + " LIMIT ?"
        return try database.read { db in try db.queryAll(sql, arguments) { try EventRow($0).stored } }
    }

    /// Events with seq in `range`, ascending, at most `limit`.
    public func events(seqIn range: ClosedRange<Int64>, limit: Int = 1000) throws -> [StoredEvent] {
        try database.read { db in
            try db.queryAll("""
                SELECT \(EventRow.columns.sql) FROM events e WHERE e.seq BETWEEN ? AND ? ORDER BY e.seq LIMIT ?
                """, [.integer(range.lowerBound), .integer(range.upperBound), .integer(Int64(limit))]) {
                try EventRow($0).stored
            }
        }
    }

    /// Routing columns of events detected at or after `since` with seq > `afterSeq`, ascending (keyset pages).
    public func eventSummaries(since: Date?, afterSeq: Int64 = 0, limit: Int = 1000) throws -> [EventSummary] {
        try database.read { db in
            try db.queryAll("""
                SELECT \(EventSummaryRow.columns.sql) FROM events
                WHERE seq > ? AND detected_at >= ? ORDER BY seq LIMIT ?
                """, [.integer(afterSeq), .date(since ?? Date(timeIntervalSince1970: 0)), .integer(Int64(limit))]) {
                EventSummaryRow($0).summary
            }
        }
    }
}

/// A row of `events` (alias `e`): a whole stored event.
struct EventRow {
    enum Column: String, ColumnList {
        case seq = "e.seq", eventID = "e.event_id", model = "e.model", kind = "e.kind", connection = "e.connection"
        case provider = "e.provider", object = "e.object", recordID = "e.record_id", occurredAt = "e.occurred_at"
        case detectedAt = "e.detected_at", record = "e.record", changes = "e.changes", raw = "e.raw"
        case changedFields = "e.changed_fields"
    }
    static let columns = Columns<Column>()

    let stored: StoredEvent

    /// Decodes the event whose ``columns`` start at `offset`.
    init(_ row: any Row, at offset: Int32 = 0) throws {
        let column = Self.columns.reader(row, at: offset)
        let id = column.text(.eventID)
        let context = "event \(id)"
        guard let kind = ChangeKind(rawValue: column.text(.kind)) else {
            throw StoreError(code: .corruptData, message: "\(context) has unknown kind")
        }
        var changes: [String: FieldChange]?
        if let text = column.string(.changes) {
            let value = try StateStore.parseJSON(text, "\(context) changes")
            var result = [String: FieldChange]()
            for (key, change) in value.objectValue ?? JSONObject() {
                result[key] = FieldChange(from: change["from"] ?? .null, to: change["to"] ?? .null)
            }
            changes = result
        }
        var changedFields: [String]?
        if let text = column.string(.changedFields) {
            let value = try StateStore.parseJSON(text, "\(context) changed_fields")
            guard let names = value.arrayValue?.compactMap(\.stringValue), names.count == value.arrayValue?.count
            else {
                throw StoreError(code: .corruptData, message: "\(context) changed_fields is not an array of names")
            }
            changedFields = names
        }
        let event = ChangeEvent(
            id: id, model: column.text(.model), kind: kind,
            subject: ChangeEvent.Subject(connection: column.text(.connection), provider: column.text(.provider),
                                         object: column.text(.object), recordID: column.text(.recordID)),
            occurredAt: column.date(.occurredAt),
            detectedAt: column.date(.detectedAt) ?? Date(timeIntervalSince1970: 0),
            content: ChangeEvent.Content(
                record: try StateStore.parseJSON(column.text(.record), "\(context) record"), changes: changes,
                raw: try StateStore.parseJSON(column.text(.raw), "\(context) raw"), changedFields: changedFields))
        stored = StoredEvent(seq: column.int64(.seq), event: event)
    }
}

extension EventRow {
    /// The event whose ``columns`` start at `offset`, its JSON members left as stored text (the send path:
    /// no parse, docs/DESIGN.md §4 body bytes unchanged — see ``SerializedEvent``).
    static func serialized(_ row: any Row, at offset: Int32 = 0) throws -> SerializedEvent {
        let column = columns.reader(row, at: offset)
        guard let kind = ChangeKind(rawValue: column.text(.kind)) else {
            throw StoreError(code: .corruptData, message: "event \(column.text(.eventID)) has unknown kind")
        }
        return SerializedEvent(
            id: column.text(.eventID), model: column.text(.model), kind: kind,
            subject: ChangeEvent.Subject(connection: column.text(.connection), provider: column.text(.provider),
                                         object: column.text(.object), recordID: column.text(.recordID)),
            occurredAt: column.date(.occurredAt),
            detectedAt: column.date(.detectedAt) ?? Date(timeIntervalSince1970: 0),
            recordJSON: column.text(.record), changesJSON: column.string(.changes), rawJSON: column.text(.raw),
            changedFieldsJSON: column.string(.changedFields))
    }
}

/// The routing columns of an `events` row (no alias): what `replay` filters on.
struct EventSummaryRow {
    enum Column: String, ColumnList {
        case seq, eventID = "event_id", type, connection, object, recordID = "record_id", detectedAt = "detected_at"
    }
    static let columns = Columns<Column>()

    let summary: EventSummary

    init(_ row: any Row) {
        let column = Self.columns.reader(row)
        summary = EventSummary(seq: column.int64(.seq), id: column.text(.eventID), type: column.text(.type),
                               connection: column.text(.connection), object: column.text(.object),
                               recordID: column.text(.recordID),
                               detectedAt: column.date(.detectedAt) ?? Date(timeIntervalSince1970: 0))
    }
}
