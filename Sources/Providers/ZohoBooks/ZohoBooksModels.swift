// Zoho Books values: its `last_modified_time` form and the normalized `invoice` and `customer` models
// (docs/models-zoho.md; wire facts in docs/providers.md "Zoho Books").
public import Core
public import Foundation

public enum ZohoBooksTime {
    /// Parses Zoho's `2026-11-29T10:15:30+0530` (an offset without a colon, in the organization's time zone) into
    /// a UTC instant (docs/DESIGN.md §2 rule 7). RFC 3339 forms (`+05:30`, `Z`) are accepted too. nil for
    /// anything else, and outside years 1970–9999 (rule 12), so a hostile value is refused rather than trapped on.
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count <= 40 else { return nil }
        if bytes.count >= 5 {
            let tail = bytes.suffix(5)
            let sign = tail[tail.startIndex]
            if sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-"),
               tail.dropFirst().allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                var fixed = Array(bytes.dropLast(2))
                fixed.append(UInt8(ascii: ":"))
                fixed += bytes.suffix(2)
                return Timestamps.parseRFC3339(String(decoding: fixed, as: UTF8.self))
            }
        }
        return Timestamps.parseRFC3339(text)
    }

    /// `date` in Zoho's form at `offsetSeconds` east of UTC (the emulator's organization zone).
    public static func format(_ date: Date, offsetSeconds: Int) -> String {
        let local = Timestamps.rfc3339(date.addingTimeInterval(Double(offsetSeconds)))
        let sign = offsetSeconds < 0 ? "-" : "+"
        let minutes = abs(offsetSeconds) / 60
        return String(local.dropLast()) + sign + String(format: "%02d%02d", minutes / 60, minutes % 60)
    }
}

/// Zoho ids are decimal digit strings (`460000000012345`): checked before one reaches a URL or query
/// (docs/DESIGN.md §2 rule 15). JSON numbers are accepted when integral (older payloads), leading zeros are not.
enum ZohoBooksIDs {
    /// Decimal digits, 1 to 30 of them, no leading zero. Zoho ids fit Int64 today, but nothing documents it, so
    /// longer digit strings are accepted; a sign, spaces, letters or `&`/`/` never are.
    static func isValid(_ text: String) -> Bool {
        let u = text.utf8
        return (1...30).contains(u.count) && u.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } && (u.count == 1 || u.first != 0x30)
    }
}

enum ZohoBooksModels {
    /// The `invoice` model of a row of `GET /invoices` (docs/models-zoho.md).
    static func invoice(_ row: JSONValue, updatedAt: Date) -> JSONValue {
        JSONValue.object(JSONObject([
            ("id", text(row, "invoice_id")),
            ("number", text(row, "invoice_number")),
            ("customer_id", text(row, "customer_id")),
            ("customer_name", text(row, "customer_name")),
            ("status", text(row, "status")),
            ("date", text(row, "date")),
            ("due_date", text(row, "due_date")),
            ("currency_code", text(row, "currency_code")),
            ("total", amount(row, "total")),
            ("balance", amount(row, "balance")),
            ("reference_number", text(row, "reference_number")),
            ("created_at", time(row, "created_time")),
            ("updated_at", .string(Timestamps.rfc3339(updatedAt))),
        ]))
    }

    /// The `customer` model of a row of `GET /contacts` whose `contact_type` is `customer`.
    static func customer(_ row: JSONValue, updatedAt: Date) -> JSONValue {
        JSONValue.object(JSONObject([
            ("id", text(row, "contact_id")),
            ("name", text(row, "contact_name")),
            ("company_name", text(row, "company_name")),
            ("email", text(row, "email")),
            ("phone", text(row, "phone")),
            ("status", text(row, "status")),
            ("currency_code", text(row, "currency_code")),
            ("outstanding_receivable_amount", amount(row, "outstanding_receivable_amount")),
            ("created_at", time(row, "created_time")),
            ("updated_at", .string(Timestamps.rfc3339(updatedAt))),
        ]))
    }

    /// A string field; "" and absent are null (Zoho sends "" for unset text fields).
    static func text(_ row: JSONValue, _ key: String) -> JSONValue {
        switch row[key] {
        case .string(let s) where !s.isEmpty: .string(s)
        case .integer(let i): .string(String(i))
        default: .null
        }
    }

    /// Amounts come as JSON numbers; kept as they came (integer or double), anything else null.
    static func amount(_ row: JSONValue, _ key: String) -> JSONValue {
        switch row[key] {
        case .integer(let i): .integer(i)
        case .double(let d): .double(d)
        default: .null
        }
    }

    /// A Zoho time as RFC 3339 UTC, null when absent or unreadable (only the cursor field is required).
    static func time(_ row: JSONValue, _ key: String) -> JSONValue {
        guard let text = row[key]?.stringValue, let date = ZohoBooksTime.parse(text) else { return .null }
        return .string(Timestamps.rfc3339(date))
    }
}
