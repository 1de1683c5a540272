// The SuiteQL subset deltahook sends, parsed and evaluated by the NetSuite emulator. Anything outside the
// subset is rejected loudly (400 with the reason) so an adapter change that sends new syntax fails its tests
// instead of silently matching nothing.
//
// Subset: SELECT (`*` | `table.*` | expr [AS alias]) list, FROM one table, optional WHERE with AND / OR / NOT,
// parentheses, comparisons (= <> != < <= > >=) and IN (…) over column references (optionally qualified with
// the table name), 'string' and integer literals, TO_TIMESTAMP('text', 'YYYY-MM-DD HH24:MI:SS') and
// TO_CHAR(column, 'YYYY-MM-DD HH24:MI:SS' | 'YYYY-MM-DD'); ORDER BY column [ASC|DESC] list.
public import Foundation

/// A value stored in or computed by the emulator.
public enum NetSuiteValue: Sendable, Hashable {
    case text(String)
    case number(Int64)
    /// A date-and-time column (`lastmodifieddate`, `deleteddate`), stored as a UTC instant.
    case instant(Date)
    /// A date-only column (`trandate`), `YYYY-MM-DD`.
    case day(String)
}

struct SuiteQLError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

indirect enum SQLExpr {
    case column(String)
    case text(String)
    case number(Int64)
    case toTimestamp(text: String, format: String)
    /// A literal already evaluated (TO_TIMESTAMP folded once per query, not once per row).
    case constant(NetSuiteValue)
    case toChar(column: String, format: String)
    case compare(SQLExpr, String, SQLExpr)
    case inList(SQLExpr, [SQLExpr])
    case and(SQLExpr, SQLExpr)
    case or(SQLExpr, SQLExpr)
    case not(SQLExpr)
}

enum SelectItem {
    case allColumns
    case expression(SQLExpr, name: String)
}

struct SuiteQLQuery {
    var table: String
    var select: [SelectItem]
    var filter: SQLExpr?
    var order: [(column: String, descending: Bool)]
}

enum SQLToken: Equatable {
    case word(String)      // identifiers and keywords, lower-cased
    case string(String)
    case number(Int64)
    case symbol(String)
}

enum SuiteQLParser {
    static let timestampFormat = "YYYY-MM-DD HH24:MI:SS"
    static let dayFormat = "YYYY-MM-DD"

    static func tokenize(_ text: String) throws -> [SQLToken] {
        var tokens = [SQLToken]()
        let chars = Array(text.unicodeScalars)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == " " || c == "\n" || c == "\t" || c == "\r" { i += 1; continue }
            if c == "'" {
                var value = ""
                i += 1
                while true {
                    guard i < chars.count else { throw SuiteQLError(message: "unterminated string literal") }
                    if chars[i] == "'" {
                        if i + 1 < chars.count && chars[i + 1] == "'" { value.unicodeScalars.append("'"); i += 2; continue }
                        i += 1
                        break
                    }
                    value.unicodeScalars.append(chars[i])
                    i += 1
                }
                tokens.append(.string(value))
                continue
            }
            if c.properties.isASCIIHexDigit && ("0"..."9").contains(c) {
                var digits = ""
                while i < chars.count, ("0"..."9").contains(chars[i]) { digits.unicodeScalars.append(chars[i]); i += 1 }
                guard let n = Int64(digits) else { throw SuiteQLError(message: "number \(digits) out of range") }
                tokens.append(.number(n))
                continue
            }
            if c == "_" || (c.isASCII && c.properties.isAlphabetic) {
                var word = ""
                while i < chars.count, chars[i] == "_" || (chars[i].isASCII && (chars[i].properties.isAlphabetic || ("0"..."9").contains(chars[i]))) {
                    word.unicodeScalars.append(chars[i])
                    i += 1
                }
                tokens.append(.word(word.lowercased()))
                continue
            }
            let two = i + 1 < chars.count ? String(c) + String(chars[i + 1]) : ""
            if ["<=", ">=", "<>", "!="].contains(two) { tokens.append(.symbol(two)); i += 2; continue }
            if "(),.*=<>".unicodeScalars.contains(c) { tokens.append(.symbol(String(c))); i += 1; continue }
            throw SuiteQLError(message: "unexpected character '\(c)'")
        }
        return tokens
    }

    static func parse(_ text: String) throws -> SuiteQLQuery {
        var p = Parser(tokens: try tokenize(text))
        return try p.query()
    }

    struct Parser {
        var tokens: [SQLToken]
        var i = 0
        var table = ""

        mutating func peek() -> SQLToken? { i < tokens.count ? tokens[i] : nil }
        mutating func next() -> SQLToken? { defer { i += 1 }; return peek() }
        mutating func accept(_ word: String) -> Bool {
            if peek() == .word(word) { i += 1; return true }
            return false
        }
        mutating func acceptSymbol(_ s: String) -> Bool {
            if peek() == .symbol(s) { i += 1; return true }
            return false
        }
        mutating func expect(_ word: String) throws {
            guard accept(word) else { throw SuiteQLError(message: "expected \(word.uppercased()) near \(describe(peek()))") }
        }
        mutating func expectSymbol(_ s: String) throws {
            guard acceptSymbol(s) else { throw SuiteQLError(message: "expected '\(s)' near \(describe(peek()))") }
        }
        func describe(_ t: SQLToken?) -> String {
            switch t {
            case .word(let w)?: "'\(w)'"
            case .string(let s)?: "'\(s)' (string)"
            case .number(let n)?: "\(n)"
            case .symbol(let s)?: "'\(s)'"
            case nil: "the end of the query"
            }
        }
        mutating func identifier() throws -> String {
            guard case .word(let w)? = next() else { throw SuiteQLError(message: "expected a name near \(describe(tokens.indices.contains(i - 1) ? tokens[i - 1] : nil))") }
            return w
        }

        mutating func query() throws -> SuiteQLQuery {
            try expect("select")
            // Find the table first so qualified names can be checked.
            guard let fromIndex = tokens.firstIndex(of: .word("from")), fromIndex + 1 < tokens.count,
                  case .word(let t) = tokens[fromIndex + 1] else { throw SuiteQLError(message: "expected FROM <table>") }
            table = t
            var select = [SelectItem]()
            repeat {
                if acceptSymbol("*") { select.append(.allColumns); continue }
                if case .word(let w)? = peek(), w == table, i + 2 < tokens.count, tokens[i + 1] == .symbol("."),
                   tokens[i + 2] == .symbol("*") {
                    i += 3
                    select.append(.allColumns)
                    continue
                }
                let expr = try operand()
                var name: String
                switch expr {
                case .column(let c): name = c
                default: name = "expr\(select.count + 1)"
                }
                if accept("as") { name = try identifier() }
                select.append(.expression(expr, name: name))
            } while acceptSymbol(",")
            try expect("from")
            _ = try identifier()
            var filter: SQLExpr?
            if accept("where") { filter = try orExpr() }
            var order = [(column: String, descending: Bool)]()
            if accept("order") {
                try expect("by")
                repeat {
                    let c = try columnName()
                    var descending = false
                    if accept("desc") { descending = true } else { _ = accept("asc") }
                    order.append((c, descending))
                } while acceptSymbol(",")
            }
            guard peek() == nil else { throw SuiteQLError(message: "unsupported syntax near \(describe(peek()))") }
            return SuiteQLQuery(table: table, select: select, filter: filter, order: order)
        }

        mutating func columnName() throws -> String {
            let first = try identifier()
            if acceptSymbol(".") {
                guard first == table else { throw SuiteQLError(message: "unknown table qualifier '\(first)'") }
                return try identifier()
            }
            return first
        }

        mutating func orExpr() throws -> SQLExpr {
            var left = try andExpr()
            while accept("or") { left = .or(left, try andExpr()) }
            return left
        }

        mutating func andExpr() throws -> SQLExpr {
            var left = try notExpr()
            while accept("and") { left = .and(left, try notExpr()) }
            return left
        }

        mutating func notExpr() throws -> SQLExpr {
            if accept("not") { return .not(try notExpr()) }
            if acceptSymbol("(") {
                let inner = try orExpr()
                try expectSymbol(")")
                return inner
            }
            let left = try operand()
            if accept("in") {
                try expectSymbol("(")
                var list = [SQLExpr]()
                repeat { list.append(try operand()) } while acceptSymbol(",")
                try expectSymbol(")")
                return .inList(left, list)
            }
            guard case .symbol(let op)? = next(), ["=", "<>", "!=", "<", "<=", ">", ">="].contains(op) else {
                throw SuiteQLError(message: "expected a comparison operator near \(describe(tokens.indices.contains(i - 1) ? tokens[i - 1] : nil))")
            }
            return .compare(left, op, try operand())
        }

        mutating func operand() throws -> SQLExpr {
            switch peek() {
            case .string(let s)?: i += 1; return .text(s)
            case .number(let n)?: i += 1; return .number(n)
            case .word("to_timestamp")?:
                i += 1
                try expectSymbol("(")
                guard case .string(let text)? = next(), acceptSymbol(","), case .string(let format)? = next() else {
                    throw SuiteQLError(message: "TO_TIMESTAMP takes ('text', 'format')")
                }
                try expectSymbol(")")
                guard format.uppercased() == SuiteQLParser.timestampFormat else {
                    throw SuiteQLError(message: "TO_TIMESTAMP format '\(format)' is not supported by the emulator")
                }
                return .toTimestamp(text: text, format: format)
            case .word("to_char")?:
                i += 1
                try expectSymbol("(")
                let column = try columnName()
                guard acceptSymbol(","), case .string(let format)? = next() else {
                    throw SuiteQLError(message: "TO_CHAR takes (column, 'format')")
                }
                try expectSymbol(")")
                guard [SuiteQLParser.timestampFormat, SuiteQLParser.dayFormat].contains(format.uppercased()) else {
                    throw SuiteQLError(message: "TO_CHAR format '\(format)' is not supported by the emulator")
                }
                return .toChar(column: column, format: format.uppercased())
            case .word(let w)? where !["select", "from", "where", "and", "or", "not", "order", "by", "in", "as"].contains(w):
                return .column(try columnName())
            default:
                throw SuiteQLError(message: "unsupported expression near \(describe(peek()))")
            }
        }
    }
}
