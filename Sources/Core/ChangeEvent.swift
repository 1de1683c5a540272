// The change event: what the differ produces, the outbox stores and subscribers receive (docs/DESIGN.md §4).
public import Foundation
internal import Crypto

/// What happened to a record.
public enum ChangeKind: String, Sendable, Codable, CaseIterable {
    case created, updated, deleted
}

/// One field's change in an `updated` event: `{"from": …, "to": …}`.
public struct FieldChange: Sendable, Hashable {
    public var from: JSONValue
    public var to: JSONValue
    public init(from: JSONValue, to: JSONValue) {
        self.from = from
        self.to = to
    }
}

/// A detected change, as stored in the outbox. The wire body is rendered per subscriber
/// (`raw` only when the subscriber sets `include_raw`) by `webhookBody(includeRaw:)`.
public struct ChangeEvent: Sendable, Hashable {
    /// Deterministic id (`evt_…`), the `webhook-id` (docs/DESIGN.md §2 rule 8).
    public var id: String
    /// Normalized model name: `ticket`, `user`, `customer`, … or `record`.
    public var model: String
    public var kind: ChangeKind
    public var connection: String
    public var provider: String
    public var object: String
    public var recordID: String
    /// The record's source timestamp (its cursor field), when the provider has one.
    public var occurredAt: Date?
    /// When deltahook detected the change.
    public var detectedAt: Date
    /// The normalized record (for model `record`, the raw fields). For `deleted`, the last known record.
    public var record: JSONValue
    /// Field-level changes keyed by `record`'s field names; `updated` only. May be empty: the provider record
    /// changed outside the normalized model (docs/DESIGN.md §2 rule 5a).
    public var changes: [String: FieldChange]?
    /// The provider field names (top-level keys of `raw`) whose values changed, sorted, without volatile fields;
    /// `updated` only. Names, never values: a subscriber without `include_raw` learns which fields moved without
    /// receiving provider data the normalized model leaves out (rule 5a). nil when the prior raw record was not
    /// known. Not an input of ``makeID(connection:object:recordID:sourceTimestamp:contentHash:kind:)``.
    public var changedFields: [String]?
    /// The record exactly as the provider returned it.
    public var raw: JSONValue

    /// Which record changed, where: the event's address. Grouped so the initializer stays short and a caller
    /// cannot swap two of these same-typed strings unnoticed among a dozen positional arguments.
    public struct Subject: Sendable, Hashable {
        public var connection: String
        public var provider: String
        public var object: String
        public var recordID: String
        public init(connection: String, provider: String, object: String, recordID: String) {
            self.connection = connection
            self.provider = provider
            self.object = object
            self.recordID = recordID
        }
    }

    /// What the event carries about the record: its normalized and raw forms and, for `updated`, what moved.
    /// See the stored properties of the same names for their meaning.
    public struct Content: Sendable, Hashable {
        public var record: JSONValue
        public var changes: [String: FieldChange]?
        public var raw: JSONValue
        public var changedFields: [String]?
        public init(record: JSONValue, changes: [String: FieldChange]? = nil, raw: JSONValue,
                    changedFields: [String]? = nil) {
            self.record = record
            self.changes = changes
            self.raw = raw
            self.changedFields = changedFields
        }
    }

    /// The stored properties stay flat (every reader, the stores and `webhookBody` use them by name); only
    /// construction goes through `Subject` and `Content`.
    public init(id: String, model: String, kind: ChangeKind, subject: Subject, occurredAt: Date?, detectedAt: Date,
                content: Content) {
        self.id = id
        self.model = model
        self.kind = kind
        self.connection = subject.connection
        self.provider = subject.provider
        self.object = subject.object
        self.recordID = subject.recordID
        self.occurredAt = occurredAt
        self.detectedAt = detectedAt
        self.record = content.record
        self.changes = content.changes
        self.raw = content.raw
        self.changedFields = content.changedFields
    }

    /// The event's address as one value (what ``init(id:model:kind:subject:occurredAt:detectedAt:content:)`` took).
    public var subject: Subject {
        Subject(connection: connection, provider: provider, object: object, recordID: recordID)
    }

    /// The event's record data as one value.
    public var content: Content {
        Content(record: record, changes: changes, raw: raw, changedFields: changedFields)
    }

    /// `<model>.<kind>`, e.g. `ticket.updated`.
    public var type: String { "\(model).\(kind.rawValue)" }

    /// The event id is a function of (connection, object, record id, source timestamp, content hash, kind),
    /// so a re-poll after a crash yields the same `webhook-id` while A→B→A→B still yields distinct events
    /// (the source timestamp differs). docs/DESIGN.md §2 rule 8.
    public static func makeID(connection: String, object: String, recordID: String, sourceTimestamp: Date?,
                              contentHash: String, kind: ChangeKind) -> String {
        let stamp = sourceTimestamp.map { String(Timestamps.saturatingInt64(($0.timeIntervalSince1970 * 1000).rounded())) } ?? "-"
        // Unit separators (0x1F) cannot appear ambiguously: ids are length-prefixed. The bytes are those of
        // `parts.map { "\(utf8 count):\(part)" }.joined(separator: "\u{1F}")`, written into one buffer.
        var material = [UInt8]()
        material.reserveCapacity(192)
        for (index, part) in [connection, object, recordID, stamp, contentHash, kind.rawValue].enumerated() {
            if index > 0 { material.append(0x1F) }
            material.append(contentsOf: String(part.utf8.count).utf8)
            material.append(UInt8(ascii: ":"))
            material.append(contentsOf: part.utf8)
        }
        return "evt_" + Digest.sha256(material).prefix(16).hexString
    }

    /// The JSON body a subscriber receives. Key order is fixed so the same event renders to the same bytes.
    public func webhookBody(includeRaw: Bool) -> JSONValue {
        var data = JSONObject()
        data["event_id"] = .string(id)
        data["connection"] = .string(connection)
        data["provider"] = .string(provider)
        data["object"] = .string(object)
        data["record_id"] = .string(recordID)
        data["occurred_at"] = occurredAt.map { .string(Timestamps.rfc3339($0)) } ?? .null
        data["record"] = record
        if kind == .updated, let changes {
            var object = JSONObject()
            for key in changes.keys.sorted() {
                guard let change = changes[key] else { continue }
                object[key] = .object(JSONObject([("from", change.from), ("to", change.to)]))
            }
            data["changes"] = .object(object)
        }
        if kind == .updated, let changedFields { data["changed_fields"] = .array(changedFields.map(JSONValue.string)) }
        if includeRaw { data["raw"] = raw }
        return .object(JSONObject([
            ("type", .string(type)),
            ("timestamp", .string(Timestamps.rfc3339(detectedAt))),
            ("data", .object(data)),
        ]))
    }
}

/// Content hashing for change detection (docs/DESIGN.md §2 rule 5).
public enum ContentHash {
    /// SHA-256 (hex) of the canonical JSON of `record` without the `ignoring` top-level fields.
    public static func of(_ record: JSONValue, ignoring volatile: Set<String> = []) -> String {
        Digest.sha256(canonicalBytes(record, ignoring: volatile)).hexString
    }

    /// Canonical bytes of `record` minus volatile top-level fields.
    public static func canonicalBytes(_ record: JSONValue, ignoring volatile: Set<String>) -> [UInt8] {
        record.canonicalBytes(skipping: volatile)
    }

    /// Field-level changes between two normalized records (top-level keys), skipping `ignoring`.
    public static func changes(from old: JSONValue, to new: JSONValue, ignoring volatile: Set<String> = [])
        -> [String: FieldChange]
    {
        var result = [String: FieldChange]()
        forEachDifference(from: old, to: new, ignoring: volatile, absentIsNull: true) { key, from, to in
            result[key] = FieldChange(from: from, to: to)
        }
        return result
    }

    /// The sorted names of the top-level fields whose values differ between two provider records, skipping
    /// `ignoring` (the volatile fields the content hash ignores): an `updated` event's `changed_fields`
    /// (docs/DESIGN.md §2 rule 5a). Names only, so no raw value leaks to a subscriber without `include_raw`.
    public static func changedFields(from old: JSONValue, to new: JSONValue, ignoring volatile: Set<String> = [])
        -> [String]
    {
        var names: [String] = []
        // A field that appears or disappears counts even when its value is `null`: the hash saw it too.
        forEachDifference(from: old, to: new, ignoring: volatile, absentIsNull: false) { key, _, _ in
            names.append(key)
        }
        return names.sorted()
    }

    /// Calls `body` once per top-level key whose value differs; a key missing on one side is passed as `null`
    /// and, unless `absentIsNull`, differs even from an explicit `null`.
    private static func forEachDifference(from old: JSONValue, to new: JSONValue, ignoring volatile: Set<String>,
                                          absentIsNull: Bool, _ body: (String, JSONValue, JSONValue) -> Void) {
        let oldObject = old.objectValue ?? JSONObject()
        let newObject = new.objectValue ?? JSONObject()
        // Compare canonical forms, as the content hash does, so 1 vs 1.0 is not reported as a change (and
        // two strings Swift calls equal but whose bytes differ are). Two buffers serve every field.
        var before = [UInt8]()
        var after = [UInt8]()
        func compare(_ key: String, _ from: JSONValue, _ to: JSONValue, oneSided: Bool = false) {
            guard !volatile.contains(key) else { return }
            if oneSided && !absentIsNull { return body(key, from, to) }
            before.removeAll(keepingCapacity: true)
            after.removeAll(keepingCapacity: true)
            from.write(into: &before, sortKeys: true)
            to.write(into: &after, sortKeys: true)
            if before != after { body(key, from, to) }
        }
        for (key, value) in newObject.members {
            if let prior = oldObject[key] { compare(key, prior, value) } else { compare(key, .null, value, oneSided: true) }
        }
        for (key, value) in oldObject.members where !newObject.contains(key) { compare(key, value, .null, oneSided: true) }
    }
}
