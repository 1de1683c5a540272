// The subset of ServiceNow encoded-query syntax the emulator understands (wire facts §1.2), and nothing
// more: whatever else arrives is rejected loudly so a test notices the adapter sent something the emulator
// cannot judge, instead of passing on a silently ignored condition.
//
// Semantics modelled (ServiceNow SDK "Encoded Queries" guide, KB0564887):
//   `^`        AND between terms of one query group
//   `^OR`      OR with the single condition right before it (binds tighter than `^`)
//   `^NQ`      starts a new, independent query group; a row matches if ANY group matches, and a group's
//              conditions do not carry over into the other groups
//   `ORDERBYf` / `ORDERBYDESCf` order the whole result, whichever group they are written in, in the order given
//   operators  `=`, `>`, `>=` (compared as strings: sys_id hex and `YYYY-MM-DD HH:MM:SS` order correctly)

/// A parsed encoded query.
public struct ServiceNowEncodedQuery: Sendable, Equatable {
    public enum Operator: String, Sendable, Equatable {
        case equals = "="
        case greater = ">"
        case greaterOrEqual = ">="
    }

    public struct Condition: Sendable, Equatable {
        public var field: String
        public var op: Operator
        public var value: String
    }

    public struct Order: Sendable, Equatable {
        public var field: String
        public var descending: Bool
    }

    /// `^NQ` groups → `^`-joined terms → `^OR` alternatives.
    public var groups: [[[Condition]]]
    public var orderBy: [Order]

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Parses `text`. `isField` says whether a column exists; `isDateTime` whether its literals must be
    /// `YYYY-MM-DD HH:MM:SS`.
    public static func parse(_ text: String, isField: (String) -> Bool, isDateTime: (String) -> Bool) throws(ParseError)
        -> ServiceNowEncodedQuery
    {
        var groups: [[[Condition]]] = []
        var orderBy: [Order] = []
        if text.isEmpty { return ServiceNowEncodedQuery(groups: [], orderBy: []) }
        for groupText in text.components(separatedBy: "^NQ") {
            var terms: [[Condition]] = []
            for (index, term) in groupText.components(separatedBy: "^").enumerated() {
                if term.isEmpty {
                    throw ParseError(message: "empty term in encoded query \"\(text)\" (a doubled or trailing ^)")
                }
                if term.hasPrefix("ORDERBYDESC") || term.hasPrefix("ORDERBY") {
                    let descending = term.hasPrefix("ORDERBYDESC")
                    let field = String(term.dropFirst(descending ? 11 : 7))
                    guard isField(field) else { throw ParseError(message: "ORDERBY on unknown field \"\(field)\"") }
                    orderBy.append(Order(field: field, descending: descending))
                    continue
                }
                if term.hasPrefix("OR") {
                    guard index > 0, !terms.isEmpty else {
                        throw ParseError(message: "^OR without a condition before it in \"\(text)\"")
                    }
                    terms[terms.count - 1].append(try condition(String(term.dropFirst(2)), isField: isField,
                                                                isDateTime: isDateTime))
                    continue
                }
                terms.append([try condition(term, isField: isField, isDateTime: isDateTime)])
            }
            if !terms.isEmpty { groups.append(terms) }
        }
        return ServiceNowEncodedQuery(groups: groups, orderBy: orderBy)
    }

    private static func condition(_ term: String, isField: (String) -> Bool, isDateTime: (String) -> Bool) throws(ParseError)
        -> Condition
    {
        let fieldChars = term.prefix { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }
        let field = String(fieldChars)
        let rest = term.dropFirst(fieldChars.count)
        guard !field.isEmpty else { throw ParseError(message: "cannot read a field name in \"\(term)\"") }
        let op: Operator
        if rest.hasPrefix(">=") { op = .greaterOrEqual }
        else if rest.hasPrefix(">") { op = .greater }
        else if rest.hasPrefix("=") { op = .equals }
        else {
            throw ParseError(message: "operator in \"\(term)\" is not modelled by the emulator (only =, >, >=)")
        }
        let value = String(rest.dropFirst(op.rawValue.count))
        guard isField(field) else { throw ParseError(message: "unknown field \"\(field)\" in \"\(term)\"") }
        if value.hasPrefix("javascript:") {
            throw ParseError(message: "\"\(term)\": javascript: values (gs.dateGenerate is in the user's time zone) are "
                             + "not modelled; send a bare UTC literal")
        }
        if isDateTime(field), !isDateTimeLiteral(value) {
            throw ParseError(message: "\"\(term)\": datetime literals must be UTC YYYY-MM-DD HH:MM:SS")
        }
        return Condition(field: field, op: op, value: value)
    }

    static func isDateTimeLiteral(_ value: String) -> Bool {
        let bytes = Array(value.utf8)
        guard bytes.count == 19 else { return false }
        for (i, b) in bytes.enumerated() {
            switch i {
            case 4, 7: if b != UInt8(ascii: "-") { return false }
            case 10: if b != 0x20 { return false }
            case 13, 16: if b != UInt8(ascii: ":") { return false }
            default: if b < 0x30 || b > 0x39 { return false }
            }
        }
        return true
    }

    /// Whether `row` (every value a string; a missing one reads as "") satisfies the query.
    public func matches(_ row: [String: String]) -> Bool {
        if groups.isEmpty { return true }
        return groups.contains { terms in
            terms.allSatisfy { alternatives in
                alternatives.contains { c in
                    let v = row[c.field] ?? ""
                    switch c.op {
                    case .equals: return v == c.value
                    case .greater: return v > c.value
                    case .greaterOrEqual: return v >= c.value
                    }
                }
            }
        }
    }

    /// Whether `a` sorts before `b` under `orderBy` (nil when they tie on every key).
    public func precedes(_ a: [String: String], _ b: [String: String]) -> Bool? {
        for order in orderBy {
            let x = a[order.field] ?? "", y = b[order.field] ?? ""
            if x != y { return order.descending ? x > y : x < y }
        }
        return nil
    }
}
