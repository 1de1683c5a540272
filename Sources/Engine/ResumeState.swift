// The JSON the engine keeps in a cursor row: the resume state of an unfinished delta scan and the delete-feed
// position. Written in the same transaction as the page it covers (docs/DESIGN.md §2 rule 1), read back on restart.
// Instants are stored as Unix seconds in shortest round-trip Double form, so a ScanPosition survives exactly
// (a rounded keyset position could skip records).
import Core
import Foundation

/// The `resume_state` column: where an unfinished scan stands, and the conditional-request validator of the
/// last idle poll.
struct ResumeState: Equatable {
    /// Keyset position after the last committed page; nil when no scan is in progress.
    var position: ScanPosition?
    /// The inclusive lower bound the unfinished scan was started with (kept so a resumed scan asks the
    /// same query).
    var scanLowerBound: Date?
    /// The unfinished scan is the object's initial sync (no cursor existed when it started): in `silent`
    /// mode it keeps writing snapshots only after a restart.
    var initial: Bool = false
    /// GitHub ETag of the first page of the last complete scan, and the lower bound it was answered for:
    /// sent as If-None-Match only when the next scan asks the same first page (docs/DESIGN.md §2 rule 9).
    var validator: String?
    var validatorLowerBound: Date?

    static let empty = ResumeState()

    var isEmpty: Bool { self == .empty }

    func encoded() -> String? {
        if isEmpty { return nil }
        var object = JSONObject()
        object["v"] = .integer(1)
        if let position { object["position"] = Self.encode(position) }
        if let scanLowerBound { object["lower_bound"] = Self.encode(scanLowerBound) }
        if initial { object["initial"] = .bool(true) }
        if let validator { object["validator"] = .string(validator) }
        if let validatorLowerBound { object["validator_lower_bound"] = Self.encode(validatorLowerBound) }
        return JSONValue.object(object).serialized()
    }

    /// nil when the text is not a resume state this version wrote (the caller logs and restarts the scan
    /// from the watermark: safe, because re-reads are suppressed by hash).
    static func decode(_ text: String?) -> ResumeState? {
        guard let text, !text.isEmpty else { return .empty }
        guard let value = try? JSONValue.parse(text), let object = value.objectValue else { return nil }
        var state = ResumeState()
        if let position = object["position"] {
            guard let decoded = decodePosition(position) else { return nil }
            state.position = decoded
        }
        if let bound = object["lower_bound"] {
            guard let date = decodeDate(bound) else { return nil }
            state.scanLowerBound = date
        }
        state.initial = object["initial"]?.boolValue ?? false
        state.validator = object["validator"]?.stringValue
        if let bound = object["validator_lower_bound"] { state.validatorLowerBound = decodeDate(bound) }
        return state
    }

    static func encode(_ date: Date) -> JSONValue { .double(date.timeIntervalSince1970) }

    static func decodeDate(_ value: JSONValue) -> Date? {
        value.doubleValue.map { Date(timeIntervalSince1970: $0) }
    }

    static func encode(_ position: ScanPosition) -> JSONValue {
        var object = JSONObject()
        object["ts"] = encode(position.timestamp)
        object["id"] = .string(position.recordID)
        if !position.hints.isEmpty {
            var hints = JSONObject()
            for key in position.hints.keys.sorted() { hints[key] = .string(position.hints[key] ?? "") }
            object["hints"] = .object(hints)
        }
        return .object(object)
    }

    static func decodePosition(_ value: JSONValue) -> ScanPosition? {
        guard let ts = value["ts"].flatMap(decodeDate), let id = value["id"]?.stringValue else { return nil }
        var hints: [String: String] = [:]
        if let object = value["hints"]?.objectValue {
            for (key, hint) in object {
                guard let text = hint.stringValue else { return nil }
                hints[key] = text
            }
        }
        return ScanPosition(timestamp: ts, recordID: id, hints: hints)
    }
}

/// The `delete_cursor` column: how far the provider's delete feed has been read.
struct DeleteFeedState: Equatable {
    /// The newest deletion time committed. The next read starts one granule below it (inclusive overlap;
    /// re-read notices find their record already tombstoned and emit nothing).
    var newest: Date?
    /// The lower bound of an unfinished read, kept so its later pages ask the same query.
    var readSince: Date?
    /// Position inside an unfinished read.
    var position: ScanPosition?

    func encoded() -> String? {
        if newest == nil && readSince == nil && position == nil { return nil }
        var object = JSONObject()
        object["v"] = .integer(1)
        if let newest { object["newest"] = ResumeState.encode(newest) }
        if let readSince { object["read_since"] = ResumeState.encode(readSince) }
        if let position { object["position"] = ResumeState.encode(position) }
        return JSONValue.object(object).serialized()
    }

    /// nil when the text is not a state this version wrote.
    static func decode(_ text: String?) -> DeleteFeedState? {
        guard let text, !text.isEmpty else { return DeleteFeedState() }
        guard let value = try? JSONValue.parse(text), value.objectValue != nil else { return nil }
        var state = DeleteFeedState()
        for (key, path) in [("newest", \DeleteFeedState.newest), ("read_since", \DeleteFeedState.readSince)] {
            guard let field = value[key] else { continue }
            guard let date = ResumeState.decodeDate(field) else { return nil }
            state[keyPath: path] = date
        }
        if let position = value["position"] {
            guard let decoded = ResumeState.decodePosition(position) else { return nil }
            state.position = decoded
        }
        return state
    }
}
