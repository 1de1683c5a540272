// NetSuite rows → deltahook's normalized models (docs/DESIGN.md §4). Field by field in docs/models-netsuite.md.
// SuiteQL returns every column as a string with a lower-case key and omits nothing we rely on; a column that
// is absent maps to null. Booleans are NetSuite's "T"/"F". Dates are read only through TO_CHAR aliases
// (never the preference-formatted columns).
public import Foundation
public import Core

public enum NetSuiteModels {
    /// Columns excluded from the content hash and from `changes`: the cursor field in both its forms, the
    /// per-item `links` envelope member (always `[]`), and the normalized `updated_at` (docs/DESIGN.md §4).
    public static let volatileFields: Set<String> = ["lastmodifieddate", NetSuiteSQL.cursorAlias, "links", "updated_at"]

    /// Builds the normalized record for `model` from a SuiteQL row.
    public static func normalize(model: String, row: JSONValue, id: String, updatedAt: Date) -> JSONValue {
        switch model {
        case "customer": return customer(row, id: id, updatedAt: updatedAt)
        case "employee": return employee(row, id: id, updatedAt: updatedAt)
        case "invoice": return invoice(row, id: id, updatedAt: updatedAt)
        default:
            // `record`: the row's own columns, minus the `links` envelope member.
            guard case .object(var object) = row else { return row }
            object["links"] = nil
            return .object(object)
        }
    }

    static func customer(_ row: JSONValue, id: String, updatedAt: Date) -> JSONValue {
        let isPerson = flag(row, "isperson")
        let first = text(row, "firstname"), last = text(row, "lastname"), company = text(row, "companyname")
        let personName = [first, last].compactMap { $0 }.joined(separator: " ")
        let name = isPerson == true && !personName.isEmpty ? personName
            : company ?? text(row, "altname") ?? (personName.isEmpty ? text(row, "entityid") : personName)
        return object([
            ("id", .string(id)),
            ("entity_id", value(text(row, "entityid"))),
            ("name", value(name)),
            ("company_name", value(company)),
            ("first_name", value(first)),
            ("last_name", value(last)),
            ("is_person", isPerson.map(JSONValue.bool) ?? .null),
            ("email", value(text(row, "email"))),
            ("phone", value(text(row, "phone"))),
            ("status_id", value(text(row, "entitystatus"))),
            ("sales_rep_id", value(text(row, "salesrep"))),
            ("currency_id", value(text(row, "currency"))),
            ("external_id", value(text(row, "externalid"))),
            ("inactive", flag(row, "isinactive").map(JSONValue.bool) ?? .null),
            ("updated_at", .string(Timestamps.rfc3339(updatedAt))),
        ])
    }

    static func employee(_ row: JSONValue, id: String, updatedAt: Date) -> JSONValue {
        let first = text(row, "firstname"), last = text(row, "lastname")
        let full = [first, last].compactMap { $0 }.joined(separator: " ")
        return object([
            ("id", .string(id)),
            ("entity_id", value(text(row, "entityid"))),
            ("name", value(full.isEmpty ? text(row, "entityid") : full)),
            ("first_name", value(first)),
            ("last_name", value(last)),
            ("email", value(text(row, "email"))),
            ("phone", value(text(row, "phone"))),
            ("title", value(text(row, "title"))),
            ("department_id", value(text(row, "department"))),
            ("supervisor_id", value(text(row, "supervisor"))),
            ("subsidiary_id", value(text(row, "subsidiary"))),
            ("external_id", value(text(row, "externalid"))),
            ("inactive", flag(row, "isinactive").map(JSONValue.bool) ?? .null),
            ("updated_at", .string(Timestamps.rfc3339(updatedAt))),
        ])
    }

    /// Invoice status letters of `transaction.status` for type CustInvc (NetSuite "CustInvc:A" Open, "B" Paid
    /// In Full, "D" Pending Approval, "E" Rejected, "V" Voided). Unknown letters pass through as given.
    public static func invoiceStatus(_ code: String) -> String {
        let letter = code.split(separator: ":").last.map(String.init) ?? code
        switch letter {
        case "A": return "open"
        case "B": return "paid"
        case "D": return "pending_approval"
        case "E": return "rejected"
        case "V": return "voided"
        default: return code
        }
    }

    static func invoice(_ row: JSONValue, id: String, updatedAt: Date) -> JSONValue {
        let status = text(row, "status")
        return object([
            ("id", .string(id)),
            ("number", value(text(row, "tranid"))),
            ("transaction_number", value(text(row, "transactionnumber"))),
            ("customer_id", value(text(row, "entity"))),
            ("status", value(status.map(invoiceStatus))),
            ("status_code", value(status)),
            ("date", value(text(row, NetSuiteSQL.tranDateAlias))),
            ("due_date", value(text(row, NetSuiteSQL.dueDateAlias))),
            ("total", value(text(row, "foreigntotal"))),
            ("amount_remaining", value(text(row, "foreignamountremaining"))),
            ("currency_id", value(text(row, "currency"))),
            ("memo", value(text(row, "memo"))),
            ("external_id", value(text(row, "externalid"))),
            ("updated_at", .string(Timestamps.rfc3339(updatedAt))),
        ])
    }

    // MARK: helpers

    static func text(_ row: JSONValue, _ key: String) -> String? {
        switch row[key] {
        case .string(let s) where !s.isEmpty: return s
        case .integer(let i): return String(i)
        case .double(let d): return String(d)
        default: return nil
        }
    }

    /// NetSuite booleans are "T"/"F" in SuiteQL output.
    static func flag(_ row: JSONValue, _ key: String) -> Bool? {
        switch text(row, key) {
        case "T"?, "true"?: return true
        case "F"?, "false"?: return false
        default: return nil
        }
    }

    static func value(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }

    static func object(_ pairs: [(String, JSONValue)]) -> JSONValue { .object(JSONObject(pairs)) }
}
