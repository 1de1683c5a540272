// Encoded queries and URLs for the ServiceNow Table API (provider-wire-facts §1.2, §1.3).
//
// Keyset form. The issue suggested `sys_updated_on>T^NQsys_updated_on=T^sys_id>ID^ORDERBY…`. We send the
// equivalent single-group form instead:
//
//     sys_updated_on>=T^sys_updated_on>T^ORsys_id>ID^ORDERBYsys_updated_on^ORDERBYsys_id
//
// because `^OR` binds only the condition right before it (ServiceNow SDK "Encoded Queries" guide:
// "^OR binds only to the single condition immediately before and after it"), so this reads
// `ts >= T AND (ts > T OR sys_id > ID)` = `(ts, sys_id) > (T, ID)`, while `^NQ` starts an independent query
// whose conditions do not carry over from the other group (KB0564887: a filter added to a `^NQ` query
// applies only to its first part) — one group keeps the lower bound, the keyset condition and the ORDERBY
// clauses unambiguously together. ORDERBY is a clause of the whole query, placed last as in the Table API
// docs (`active=true^ORDERBYnumber^ORDERBYDESCcategory`).
public import Foundation
public import Core
import Crypto

/// Builds `sysparm_query` strings. Datetime literals are bare UTC `YYYY-MM-DD HH:MM:SS` (a bare literal is
/// compared as UTC; `gs.dateGenerate` would be the session user's zone — wire facts §1.3).
public enum ServiceNowQuery {
    /// The UTC literal for `date`, truncated to the second (ServiceNow's granule), so an inclusive bound
    /// never skips the second it falls in.
    public static func literal(_ date: Date) -> String { Timestamps.sqlStyle(date) }

    /// Delta query on `field` (`sys_updated_on`, or `sys_created_on` for `sys_audit_delete`) ordered by
    /// (`field`, `sys_id`): records with `field >= lowerBound` and, when `after` is given, strictly after
    /// that keyset position. `prefix` holds extra leading conditions (`tablename=incident`).
    ///
    /// `after.recordID` goes into the query only when it is a sys_id (`^[0-9a-f]{32}$`, docs/DESIGN.md §2 rule 15):
    /// ServiceNow decodes the URL before parsing the encoded query, so a stored id holding `^OR…` or `^NQ…` would
    /// rewrite it. A position with any other id (one stored before ids were checked) degrades to the inclusive
    /// bound on its timestamp: that second is re-read (re-reads are suppressed by content hash), nothing skipped.
    public static func delta(field: String, lowerBound: Date?, after: ScanPosition?, prefix: [String] = []) -> String {
        var terms = prefix
        if let after, !ProviderIDs.isSysID(after.recordID) {
            terms.append("\(field)>=\(literal(lowerBound.map { max($0, after.timestamp) } ?? after.timestamp))")
        } else if let after {
            // (field, sys_id) > (T, ID), with the lower bound folded into the first condition: when the
            // bound lies above T every row >= bound is already > T, so the OR term changes nothing.
            let t = after.timestamp
            let bound = lowerBound.map { max($0, t) } ?? t
            terms.append("\(field)>=\(literal(bound))")
            terms.append("\(field)>\(literal(t))")
            terms.append("ORsys_id>\(after.recordID)")
        } else if let lowerBound {
            terms.append("\(field)>=\(literal(lowerBound))")
        }
        terms.append("ORDERBY\(field)")
        terms.append("ORDERBYsys_id")
        return terms.joined(separator: "^")
    }

    /// The id sweep: every sys_id ascending, strictly after `after` when given. nil when `after` is not a sys_id
    /// (docs/DESIGN.md §2 rule 15): it must never reach the encoded query.
    public static func idSweep(after: String?) -> String? {
        guard let after else { return "ORDERBYsys_id" }
        guard ProviderIDs.isSysID(after) else { return nil }
        return "sys_id>\(after)^ORDERBYsys_id"
    }

    /// `sysparm_fields` for an object that lists fields: the listed ones plus what the adapter needs
    /// (`sys_id` for the record id, `sys_updated_on` for the cursor), without duplicates, in order.
    public static func fieldList(_ fields: [String], required: [String] = ["sys_id", "sys_updated_on"]) -> String {
        var seen = Set<String>()
        var out: [String] = []
        for field in required + fields where seen.insert(field).inserted { out.append(field) }
        return out.joined(separator: ",")
    }

    /// Percent-encodes a query component: everything but RFC 3986 unreserved characters, so `^`, `=`,
    /// `>`, spaces, `:` and `,` never reach the server raw.
    public static func encode(_ text: String) -> String { PercentEncoding.rfc3986(text) }

    /// `name=value&…` with both sides encoded.
    public static func queryString(_ items: [(String, String)]) -> String {
        items.map { "\(encode($0.0))=\(encode($0.1))" }.joined(separator: "&")
    }
}
