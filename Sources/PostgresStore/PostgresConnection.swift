// The store's `SQLConnection` over one libpq connection: the tables' SQL (written once in the Store module, in the
// common subset of SQLite and PostgreSQL) runs here unchanged except for its placeholders, which PostgreSQL spells
// `$n` (``PlaceholderTranslation``), and its values, which travel as text (``SQLValue/postgresText``).
import Foundation
import Store
import Synchronization

/// One row of a PostgreSQL result, read the way the store reads SQLite rows.
struct PostgresRow: Row {
    let result: PGResult
    let row: Int

    func isNull(_ column: Int32) -> Bool { result.isNull(row, Int(column)) }

    /// Integers come back as text; booleans (a `NOT EXISTS … AND …` column) as `t`/`f`, read as 1/0 like SQLite's.
    func int64(_ column: Int32) -> Int64 {
        guard let text = result.text(row, Int(column)) else { return 0 }
        if let value = Int64(text) { return value }
        switch text {
        case "t": return 1
        case "f": return 0
        default:
            // numeric aggregates (SUM over BIGINT) arrive as "123" or "123.0"; doubles are truncated like SQLite's.
            return Double(text).map { Int64(exactly: $0.rounded(.towardZero)) ?? 0 } ?? 0
        }
    }

    func double(_ column: Int32) -> Double { result.double(row, Int(column)) ?? 0 }
    func string(_ column: Int32) -> String? { result.text(row, Int(column)) }
    func data(_ column: Int32) -> Data? { result.bytes(row, Int(column)).map { Data($0) } }
}

/// `?` and `?N` placeholders → `$n`, outside string literals, quoted identifiers and comments. SQLite's rule for
/// mixing them is kept: a bare `?` takes the largest number used so far plus one.
/// Related SQLite documentation: <https://www.sqlite.org/lang_expr.html#varparam>
enum PlaceholderTranslation {
    static func translate(_ sql: String) -> String {
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        let chars = Array(sql.unicodeScalars)
        var index = 0
        var largest = 0
        while index < chars.count {
            let c = chars[index]
            switch c {
            case "'", "\"":
                // A literal or quoted identifier runs to the matching quote; a doubled quote is an escaped one.
                out.unicodeScalars.append(c)
                index += 1
                while index < chars.count {
                    out.unicodeScalars.append(chars[index])
                    if chars[index] == c {
                        if index + 1 < chars.count, chars[index + 1] == c {
                            out.unicodeScalars.append(chars[index + 1])
                            index += 2
                            continue
                        }
                        index += 1
                        break
                    }
                    index += 1
                }
            case "-" where index + 1 < chars.count && chars[index + 1] == "-":
                while index < chars.count, chars[index] != "\n" {
                    out.unicodeScalars.append(chars[index])
                    index += 1
                }
            case "?":
                index += 1
                var digits = ""
                while index < chars.count, chars[index].properties.numericType == .decimal, chars[index].isASCII {
                    digits.unicodeScalars.append(chars[index])
                    index += 1
                }
                let number = Int(digits) ?? (largest + 1)
                largest = max(largest, number)
                out += "$\(number)"
            default:
                out.unicodeScalars.append(c)
                index += 1
            }
        }
        return out
    }
}

extension SQLValue {
    /// The value as PostgreSQL's text input format (nil for NULL). PostgreSQL text cannot hold NUL: one in a
    /// stored text (a receiver's response excerpt, an error message) becomes U+FFFD rather than failing the write.
    var postgresText: String? {
        switch self {
        case .null: nil
        case .integer(let value): String(value)
        case .double(let value): value.isFinite ? String(value) : (value.isNaN ? "NaN" : (value > 0 ? "Infinity" : "-Infinity"))
        case .text(let value): value.utf8.contains(0) ? value.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : value
        case .blob(let value): PGText.bytea(Array(value))
        }
    }
}

/// The connection a ``PostgresDatabase`` transaction hands to the store's table code.
final class PostgresConnection: SQLConnection {
    let connection: PGConnection
    let location: String
    private let translations: TranslationCache

    init(connection: PGConnection, location: String, translations: TranslationCache) {
        self.connection = connection
        self.location = location
        self.translations = translations
    }

    var dialect: SQLDialect { .postgres }

    @discardableResult
    func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int {
        try run(sql, arguments).affectedRows
    }

    func executeScript(_ sql: String) throws {
        do {
            try connection.executeScript(sql)
        } catch let error as PGError {
            throw PostgresDatabase.storeError(error, location: location, sql: sql)
        }
    }

    func query(_ sql: String, _ arguments: [SQLValue], _ body: (any Row) throws -> Void) throws {
        let result = try run(sql, arguments)
        for row in 0..<result.rowCount { try body(PostgresRow(result: result, row: row)) }
    }

    private func run(_ sql: String, _ arguments: [SQLValue]) throws -> PGResult {
        do {
            return try connection.execute(translations.translated(sql), arguments.map(\.postgresText))
        } catch let error as PGError {
            throw PostgresDatabase.storeError(error, location: location, sql: sql)
        }
    }
}

/// Translated SQL by original text: the store issues a small fixed set of statements.
final class TranslationCache: Sendable {
    private let cache = Mutex<[String: String]>([:])

    func translated(_ sql: String) -> String {
        if let hit = cache.withLock({ $0[sql] }) { return hit }
        let translated = PlaceholderTranslation.translate(sql)
        cache.withLock { cache in
            if cache.count > 2000 { cache.removeAll() }
            cache[sql] = translated
        }
        return translated
    }
}
