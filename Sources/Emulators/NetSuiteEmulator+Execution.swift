// The NetSuite emulator's SuiteQL execution: running a parsed query against the tables, paging, the response
// shape, display formats and the WHERE evaluator. Split from NetSuiteEmulator.swift to keep each file readable.
import Core
import Foundation
import HTTPServer

extension NetSuiteEmulator {
    // MARK: execution

    static func execute(_ query: SuiteQLQuery, in s: inout State, limit: Int, offset: Int, selfURL: String) throws
        -> HTTPServerResponse
    {
        guard s.tables[query.table] != nil || knownEmptyTables.contains(query.table) else {
            throw SuiteQLError(message: "Record '\(query.table)' was not found.")
        }
        let zone = s.options.timeZone
        let evaluator = Evaluator(zone: zone, ambiguous: s.options.ambiguousReading)
        let orderKey = query.order.map { "\($0.column) \($0.descending)" }.joined(separator: ",")
        let ordered: [Row]
        if let cached = s.tables[query.table]?.sorted[orderKey] {
            ordered = cached
        } else {
            let order = query.order
            ordered = (s.tables[query.table]?.rows.values ?? [:].values).sorted { a, b in
                for (column, descending) in order {
                    let c = compareForSort(a.value(column), b.value(column))
                    if c != 0 { return descending ? c > 0 : c < 0 }
                }
                return a.id < b.id
            }
            s.tables[query.table]?.sorted[orderKey] = ordered
        }
        var matched = [Row]()
        if let filter = try query.filter.map(evaluator.fold) {
            for row in ordered where try evaluator.truth(filter, row) {
                matched.append(row)
                if matched.count >= s.options.rowCap { break }
            }
        } else {
            matched = Array(ordered.prefix(s.options.rowCap))
        }
        let total = matched.count
        let pageRows = offset < total ? Array(matched[offset..<min(total, offset + limit)]) : []
        var items = [JSONValue]()
        items.reserveCapacity(pageRows.count)
        for row in pageRows {
            var object = JSONObject()
            object["links"] = .array([])
            for item in query.select {
                switch item {
                case .allColumns:
                    for column in row.columns { object[column.name] = .string(display(column.value, zone: zone)) }
                case .expression(let expr, let name):
                    if let value = try evaluator.value(expr, row) { object[name] = .string(display(value, zone: zone)) }
                }
            }
            items.append(.object(object))
        }
        let hasMore = offset + pageRows.count < total
        let base = selfURL.split(separator: "?", maxSplits: 1).first.map(String.init) ?? selfURL
        func link(_ rel: String, _ o: Int) -> JSONValue {
            .object(JSONObject([("rel", .string(rel)), ("href", .string("\(base)?limit=\(limit)&offset=\(o)"))]))
        }
        var links = [JSONValue]()
        if offset > 0 { links += [link("previous", max(0, offset - limit)), link("first", 0)] }
        if hasMore { links += [link("next", offset + limit), link("last", max(0, (total - 1) / limit * limit))] }
        links.append(link("self", offset))
        let body = JSONValue.object(JSONObject([
            ("links", .array(links)), ("count", .integer(Int64(items.count))), ("hasMore", .bool(hasMore)),
            ("items", .array(items)), ("offset", .integer(Int64(offset))), ("totalResults", .integer(Int64(total))),
        ]))
        return .json(body.serializedBytes())
    }

    /// Tables that exist in every account even when the emulator holds no rows for them.
    static let knownEmptyTables: Set<String> = ["customer", "employee", "vendor", "transaction", "item", "deletedrecord"]

    static func display(_ value: NetSuiteValue, zone: TimeZone) -> String {
        switch value {
        case .text(let s): return s
        case .number(let n): return String(n)
        case .instant(let d): return preferenceFormat(d, zone: zone)
        case .day(let day):
            let parts = day.split(separator: "-").compactMap { Int($0) }
            return parts.count == 3 ? "\(parts[1])/\(parts[2])/\(parts[0])" : day
        }
    }

    /// Sort order with NULLs last, numbers numerically, instants chronologically.
    static func compareForSort(_ a: NetSuiteValue?, _ b: NetSuiteValue?) -> Int {
        switch (a, b) {
        case (nil, nil): return 0
        case (nil, _): return 1
        case (_, nil): return -1
        case (.number(let x)?, .number(let y)?): return x < y ? -1 : (x > y ? 1 : 0)
        case (.instant(let x)?, .instant(let y)?): return x < y ? -1 : (x > y ? 1 : 0)
        case (let x?, let y?):
            let sx = display(x, zone: .gmt), sy = display(y, zone: .gmt)
            return sx < sy ? -1 : (sx > sy ? 1 : 0)
        }
    }

    struct Evaluator {
        var zone: TimeZone
        var ambiguous: AmbiguousReading

        /// Evaluates row-independent literals once.
        func fold(_ expr: SQLExpr) throws -> SQLExpr {
            switch expr {
            case .toTimestamp:
                guard let value = try value(expr, Row(id: 0, columns: [])) else { return expr }
                return .constant(value)
            case .compare(let a, let op, let b): return .compare(try fold(a), op, try fold(b))
            case .inList(let a, let list): return .inList(try fold(a), try list.map(fold))
            case .and(let a, let b): return .and(try fold(a), try fold(b))
            case .or(let a, let b): return .or(try fold(a), try fold(b))
            case .not(let a): return .not(try fold(a))
            default: return expr
            }
        }

        func value(_ expr: SQLExpr, _ row: Row) throws -> NetSuiteValue? {
            switch expr {
            case .constant(let value): return value
            case .column(let name): return row.value(name)
            case .text(let s): return .text(s)
            case .number(let n): return .number(n)
            case .toTimestamp(let text, _):
                guard let naive = Timestamps.parseSQLStyle(text) else {
                    throw SuiteQLError(message: "Parse of date/time \"\(text)\" failed with date format \"YYYY-MM-DD HH24:MI:SS\"")
                }
                let all = NetSuiteEmulator.readings(naive, zone: zone)
                guard let instant = ambiguous == .earlier ? all.first : all.last else {
                    throw SuiteQLError(message: "Parse of date/time \"\(text)\" failed: the time does not exist in time zone \(zone.identifier)")
                }
                return .instant(instant)
            case .toChar(let column, let format):
                switch row.value(column) {
                case nil: return nil
                case .instant(let d)?:
                    let local = Timestamps.sqlStyle(d, in: zone)
                    return .text(format == SuiteQLParser.dayFormat ? String(local.prefix(10)) : local)
                case .day(let day)?:
                    return .text(format == SuiteQLParser.dayFormat ? day : day + " 00:00:00")
                default:
                    throw SuiteQLError(message: "TO_CHAR(\(column)) needs a date column")
                }
            default:
                return .text(try truth(expr, row) ? "T" : "F")
            }
        }

        func truth(_ expr: SQLExpr, _ row: Row) throws -> Bool {
            switch expr {
            case .and(let a, let b): return try truth(a, row) && truth(b, row)
            case .or(let a, let b): return try truth(a, row) || truth(b, row)
            case .not(let a): return try !truth(a, row)
            case .inList(let left, let list):
                guard let l = try value(left, row) else { return false }
                for item in list { if let r = try value(item, row), try compare(l, r) == 0 { return true } }
                return false
            case .compare(let left, let op, let right):
                guard let l = try value(left, row), let r = try value(right, row) else { return false }
                let c = try compare(l, r)
                switch op {
                case "=": return c == 0
                case "<>", "!=": return c != 0
                case "<": return c < 0
                case "<=": return c <= 0
                case ">": return c > 0
                default: return c >= 0
                }
            default:
                throw SuiteQLError(message: "a condition was expected")
            }
        }

        func compare(_ a: NetSuiteValue, _ b: NetSuiteValue) throws -> Int {
            func cmp<T: Comparable>(_ x: T, _ y: T) -> Int { x < y ? -1 : (x > y ? 1 : 0) }
            switch (a, b) {
            case (.number(let x), .number(let y)): return cmp(x, y)
            case (.number(let x), .text(let t)), (.text(let t), .number(let x)):
                guard let y = Int64(t) else { throw SuiteQLError(message: "cannot compare a number with '\(t)'") }
                return if case .number = a { cmp(x, y) } else { cmp(y, x) }
            case (.instant(let x), .instant(let y)): return cmp(x, y)
            case (.text(let x), .text(let y)): return cmp(x, y)
            case (.day(let x), .day(let y)): return cmp(x, y)
            default:
                throw SuiteQLError(message: "cannot compare \(a) with \(b); wrap date literals in TO_TIMESTAMP")
            }
        }
    }
}
