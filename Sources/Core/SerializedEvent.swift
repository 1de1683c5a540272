// A change event as the outbox stores it, ready to send: the address and timestamps decoded, the JSON members
// (record, changes, raw, changed_fields) kept as the serialized text the page commit wrote. The dispatcher
// renders the webhook body from these bytes instead of parsing every member into a `JSONValue` tree and
// serializing it again (issue 17: the parse + re-serialize was most of the claim path's CPU).
//
// Byte identity with `ChangeEvent.webhookBody(includeRaw:)`: the commit stores each member as
// `JSONValue.serialized()` (CommitPage.eventArguments; changes with sorted keys, changed_fields as a string
// array), and serialize ∘ parse ∘ serialize == serialize for this writer (compact, member order kept, integral
// doubles below 9e15 written as integers, the rest in shortest round-trip form, minimal string escapes), so
// splicing the stored text gives the bytes that parsing it and rendering `webhookBody` gives.
// Tests/CoreTests/SerializedEventTests.swift pins that for raw/changes/changed_fields present or not, unicode
// and escapes.
public import Foundation

public struct SerializedEvent: Sendable, Hashable {
    /// The event id (`evt_…`), the `webhook-id`.
    public var id: String
    public var model: String
    public var kind: ChangeKind
    public var connection: String
    public var provider: String
    public var object: String
    public var recordID: String
    public var occurredAt: Date?
    public var detectedAt: Date
    /// Serialized JSON of the normalized record.
    public var recordJSON: String
    /// Serialized JSON object of the field changes (keys sorted, `{"from","to"}` each), nil when not stored.
    public var changesJSON: String?
    /// Serialized JSON of the provider record.
    public var rawJSON: String
    /// Serialized JSON array of changed provider field names, nil when not stored.
    public var changedFieldsJSON: String?

    public init(id: String, model: String, kind: ChangeKind, subject: ChangeEvent.Subject, occurredAt: Date?,
                detectedAt: Date, recordJSON: String, changesJSON: String?, rawJSON: String,
                changedFieldsJSON: String?) {
        self.id = id
        self.model = model
        self.kind = kind
        self.connection = subject.connection
        self.provider = subject.provider
        self.object = subject.object
        self.recordID = subject.recordID
        self.occurredAt = occurredAt
        self.detectedAt = detectedAt
        self.recordJSON = recordJSON
        self.changesJSON = changesJSON
        self.rawJSON = rawJSON
        self.changedFieldsJSON = changedFieldsJSON
    }

    /// The form the outbox would store for `event` (tests, benchmarks, callers holding a `ChangeEvent`).
    public init(_ event: ChangeEvent) {
        var changes: String?
        if let fieldChanges = event.changes {
            var object = JSONObject()
            for key in fieldChanges.keys.sorted() {
                guard let change = fieldChanges[key] else { continue }
                object[key] = .object(JSONObject([("from", change.from), ("to", change.to)]))
            }
            changes = JSONValue.object(object).serialized()
        }
        self.init(id: event.id, model: event.model, kind: event.kind, subject: event.subject,
                  occurredAt: event.occurredAt, detectedAt: event.detectedAt, recordJSON: event.record.serialized(),
                  changesJSON: changes, rawJSON: event.raw.serialized(),
                  changedFieldsJSON: event.changedFields.map { JSONValue.array($0.map(JSONValue.string)).serialized() })
    }

    /// `<model>.<kind>`, e.g. `ticket.updated`.
    public var type: String { "\(model).\(kind.rawValue)" }

    /// The bytes of `ChangeEvent.webhookBody(includeRaw:).serializedBytes()` for this event, spliced from the
    /// stored member texts (same key order: type, timestamp, data{event_id, connection, provider, object,
    /// record_id, occurred_at, record, changes, changed_fields, raw}).
    public func webhookBody(includeRaw: Bool) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(160 + id.utf8.count + connection.utf8.count + object.utf8.count + recordID.utf8.count
                            + recordJSON.utf8.count + (changesJSON?.utf8.count ?? 0)
                            + (changedFieldsJSON?.utf8.count ?? 0) + (includeRaw ? rawJSON.utf8.count : 0))
        func key(_ name: StaticString) {
            out.append(UInt8(ascii: "\""))
            name.withUTF8Buffer { out.append(contentsOf: $0) }
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        func string(_ text: String) { JSONValue.writeString(text, into: &out) }
        func comma() { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "{"))
        key("type"); string(type); comma()
        key("timestamp"); string(Timestamps.rfc3339(detectedAt)); comma()
        key("data"); out.append(UInt8(ascii: "{"))
        key("event_id"); string(id); comma()
        key("connection"); string(connection); comma()
        key("provider"); string(provider); comma()
        key("object"); string(object); comma()
        key("record_id"); string(recordID); comma()
        key("occurred_at")
        if let occurredAt { string(Timestamps.rfc3339(occurredAt)) } else { out.append(contentsOf: "null".utf8) }
        comma()
        key("record"); out.append(contentsOf: recordJSON.utf8)
        if kind == .updated, let changesJSON { comma(); key("changes"); out.append(contentsOf: changesJSON.utf8) }
        if kind == .updated, let changedFieldsJSON {
            comma(); key("changed_fields"); out.append(contentsOf: changedFieldsJSON.utf8)
        }
        if includeRaw { comma(); key("raw"); out.append(contentsOf: rawJSON.utf8) }
        out.append(contentsOf: [UInt8(ascii: "}"), UInt8(ascii: "}")])
        return out
    }

    /// The full event, parsing the stored members (operators' tools and tests; the send path never needs it).
    public func decoded() throws -> ChangeEvent {
        var changes: [String: FieldChange]?
        if let changesJSON {
            var result = [String: FieldChange]()
            for (key, change) in try JSONValue.parse(changesJSON).objectValue ?? JSONObject() {
                result[key] = FieldChange(from: change["from"] ?? .null, to: change["to"] ?? .null)
            }
            changes = result
        }
        let changedFields = try changedFieldsJSON.map { try JSONValue.parse($0).arrayValue?.compactMap(\.stringValue) ?? [] }
        return ChangeEvent(id: id, model: model, kind: kind,
                           subject: .init(connection: connection, provider: provider, object: object, recordID: recordID),
                           occurredAt: occurredAt, detectedAt: detectedAt,
                           content: .init(record: try JSONValue.parse(recordJSON), changes: changes,
                                          raw: try JSONValue.parse(rawJSON), changedFields: changedFields))
    }
}
