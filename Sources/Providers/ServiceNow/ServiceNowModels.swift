// Normalized models for ServiceNow records (docs/DESIGN.md §4; field-by-field table in docs/models.md).
//
// Raw Table API values are all strings, empty = "" (wire facts §1.4). A reference field arrives in one of
// three shapes depending on the request and release — "" (empty), a plain sys_id
// (`sysparm_exclude_reference_link=true`), or `{"link","value"}` (links on) / `{"display_value",…,"value"}`
// (`sysparm_display_value=all`) — and every shape normalizes to the referenced sys_id or null.
public import Core
import Foundation

public enum ServiceNowModel: String, Sendable, CaseIterable {
    case ticket, user, group, record

    /// Incident `state` choice values (ServiceNow base system): 1 New, 2 In Progress, 3 On Hold,
    /// 6 Resolved, 7 Closed, 8 Canceled.
    public static let incidentStatus: [String: String] = [
        "1": "open", "2": "in_progress", "3": "on_hold", "6": "resolved", "7": "closed", "8": "canceled",
    ]

    /// Bookkeeping fields a change in which alone emits nothing (docs/DESIGN.md §4): the cursor field, the update
    /// counter and who touched the record last, plus the normalized form of the cursor (`updated_at`).
    public static let defaultVolatileFields: Set<String> = ["sys_updated_on", "sys_mod_count", "sys_updated_by", "updated_at"]

    /// The normalized record for `raw`, a row of `table` on the instance at `baseURL`.
    public func normalize(_ raw: JSONValue, table: String, baseURL: String) -> JSONValue {
        guard case .object(let row) = raw else { return raw }
        let id = Self.text(row["sys_id"])
        let url: JSONValue = id.map { .string("\(baseURL)/\(table).do?sys_id=\($0)") } ?? .null
        switch self {
        case .record:
            return raw
        case .ticket:
            let state = Self.text(row["state"])
            let status: JSONValue
            if let state {
                // The incident codes are the brief's; other task tables have their own choice lists, so their
                // raw state value is passed through rather than guessed.
                status = .string(table == "incident" ? (Self.incidentStatus[state] ?? "unknown") : state)
            } else {
                status = .null
            }
            return .object(JSONObject([
                ("id", Self.string(id)),
                ("number", Self.string(Self.text(row["number"]))),
                ("title", Self.string(Self.text(row["short_description"]))),
                ("description", Self.string(Self.text(row["description"]))),
                ("status", status),
                ("state_code", Self.string(state)),
                ("priority", Self.integer(row["priority"])),
                ("assignee_id", Self.string(Self.reference(row["assigned_to"]))),
                ("group_id", Self.string(Self.reference(row["assignment_group"]))),
                ("caller_id", Self.string(Self.reference(row["caller_id"]))),
                ("opened_at", Self.time(row["opened_at"])),
                ("resolved_at", Self.time(row["resolved_at"])),
                ("closed_at", Self.time(row["closed_at"])),
                ("created_at", Self.time(row["sys_created_on"])),
                ("updated_at", Self.time(row["sys_updated_on"])),
                ("url", url),
            ]))
        case .user:
            return .object(JSONObject([
                ("id", Self.string(id)),
                ("user_name", Self.string(Self.text(row["user_name"]))),
                ("name", Self.string(Self.text(row["name"]))),
                ("first_name", Self.string(Self.text(row["first_name"]))),
                ("last_name", Self.string(Self.text(row["last_name"]))),
                ("email", Self.string(Self.text(row["email"]))),
                ("title", Self.string(Self.text(row["title"]))),
                ("phone", Self.string(Self.text(row["phone"]))),
                ("mobile_phone", Self.string(Self.text(row["mobile_phone"]))),
                ("active", Self.boolean(row["active"])),
                ("department_id", Self.string(Self.reference(row["department"]))),
                ("manager_id", Self.string(Self.reference(row["manager"]))),
                ("created_at", Self.time(row["sys_created_on"])),
                ("updated_at", Self.time(row["sys_updated_on"])),
                ("url", url),
            ]))
        case .group:
            return .object(JSONObject([
                ("id", Self.string(id)),
                ("name", Self.string(Self.text(row["name"]))),
                ("description", Self.string(Self.text(row["description"]))),
                ("email", Self.string(Self.text(row["email"]))),
                ("active", Self.boolean(row["active"])),
                ("manager_id", Self.string(Self.reference(row["manager"]))),
                ("parent_id", Self.string(Self.reference(row["parent"]))),
                ("created_at", Self.time(row["sys_created_on"])),
                ("updated_at", Self.time(row["sys_updated_on"])),
                ("url", url),
            ]))
        }
    }

    // MARK: value helpers

    /// A non-empty string value; for `{"display_value","value"}` objects (display_value=all) the raw value.
    static func text(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let s)?: return s.isEmpty ? nil : s
        case .object(let o)?: return text(o["value"])
        case .integer(let i)?: return String(i)
        default: return nil
        }
    }

    /// The referenced sys_id from any of the three reference shapes, or nil when empty.
    public static func reference(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let s)?: return s.isEmpty ? nil : s
        case .object(let o)?:
            if let v = o["value"]?.stringValue { return v.isEmpty ? nil : v }
            // `{"link": ".../sys_user/<sys_id>"}` without a value member: the id is the link's last segment.
            if let link = o["link"]?.stringValue, let last = link.split(separator: "/").last, !last.isEmpty {
                return String(last)
            }
            return nil
        default: return nil
        }
    }

    static func string(_ text: String?) -> JSONValue { text.map { .string($0) } ?? .null }

    static func integer(_ value: JSONValue?) -> JSONValue {
        guard let text = text(value) else { return .null }
        return Int64(text).map { .integer($0) } ?? .string(text)
    }

    static func boolean(_ value: JSONValue?) -> JSONValue {
        switch text(value) {
        case "true"?: return .bool(true)
        case "false"?: return .bool(false)
        case let other?: return .string(other)
        case nil: return .null
        }
    }

    /// `YYYY-MM-DD HH:MM:SS` (UTC) → RFC 3339; unparseable text is kept as it came rather than dropped.
    static func time(_ value: JSONValue?) -> JSONValue {
        guard let text = text(value) else { return .null }
        guard let date = Timestamps.parseSQLStyle(text) else { return .string(text) }
        return .string(Timestamps.rfc3339(date))
    }
}
