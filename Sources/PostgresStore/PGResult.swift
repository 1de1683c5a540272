// PGResult: the values of one query result, copied out of libpq's PGresult before it is freed.
//
// A PGresult must be released with PQclear (libpq — "Command Execution Functions", "Main Functions"), and
// Swift cannot tie that to a value's lifetime without a class and deinit; copying the text of every field
// into Swift strings keeps the result a plain value that outlives the C memory. All results are requested in
// text format (libpq — "Retrieving Query Result Information": PQgetvalue returns the text representation), so
// each field is a `String?` here and the typed accessors parse PostgreSQL's text output.
import CPostgres

/// A copied query result: `rowCount` × `columnCount` text fields (nil for SQL NULL) and the affected-row count.
public struct PGResult: Sendable {
    /// Number of rows returned (PQntuples).
    public let rowCount: Int
    /// Number of columns (PQnfields).
    public let columnCount: Int
    /// Rows affected by INSERT/UPDATE/DELETE/MERGE/SELECT/MOVE/FETCH/COPY (PQcmdTuples), 0 for other commands.
    public let affectedRows: Int
    /// Column names in order (PQfname).
    public let columnNames: [String]
    /// Row-major fields: `values[row * columnCount + column]`.
    private let values: [String?]

    /// Copies everything needed out of `result`; the caller still owns and clears it.
    init(copying result: OpaquePointer) {
        let rows = Int(PQntuples(result))
        let columns = Int(PQnfields(result))
        var names: [String] = []
        names.reserveCapacity(columns)
        for column in 0..<columns {
            names.append(PQfname(result, Int32(column)).map { String(cString: $0) } ?? "")
        }
        var copied: [String?] = []
        copied.reserveCapacity(rows * columns)
        for row in 0..<rows {
            for column in 0..<columns {
                // PQgetisnull tells NULL from the empty string: PQgetvalue returns "" for both.
                if PQgetisnull(result, Int32(row), Int32(column)) != 0 {
                    copied.append(nil)
                } else if let value = PQgetvalue(result, Int32(row), Int32(column)) {
                    copied.append(String(cString: value))
                } else {
                    copied.append(nil)
                }
            }
        }
        rowCount = rows
        columnCount = columns
        columnNames = names
        values = copied
        affectedRows = PQcmdTuples(result).flatMap { Int(String(cString: $0)) } ?? 0
    }

    /// True for SQL NULL, and for a row or column outside the result.
    public func isNull(_ row: Int, _ column: Int) -> Bool { text(row, column) == nil }

    /// The field's text, nil for NULL (or out of range).
    public func text(_ row: Int, _ column: Int) -> String? {
        guard row >= 0, row < rowCount, column >= 0, column < columnCount else { return nil }
        return values[row * columnCount + column]
    }

    /// An integer column (int2/int4/int8, or numeric without fraction), nil for NULL or non-integer text.
    public func int64(_ row: Int, _ column: Int) -> Int64? { text(row, column).flatMap { Int64($0) } }

    /// A float4/float8/numeric column; PostgreSQL's "NaN", "Infinity" and "-Infinity" are parsed too.
    public func double(_ row: Int, _ column: Int) -> Double? { text(row, column).flatMap { Double($0) } }

    /// A boolean column: PostgreSQL's text output is "t" or "f".
    public func bool(_ row: Int, _ column: Int) -> Bool? {
        switch text(row, column) {
        case "t", "true": return true
        case "f", "false": return false
        default: return nil
        }
    }

    /// A bytea column decoded from its text output: the hex form `\x4142…` (the default `bytea_output`), or the
    /// legacy escape form (`bytea_output = escape`) where bytes are `\\` or `\ooo` octal (PostgreSQL docs —
    /// "Binary Data Types", "bytea Hex Format" / "bytea Escape Format"). Nil for NULL or malformed text.
    public func bytes(_ row: Int, _ column: Int) -> [UInt8]? {
        guard let text = text(row, column) else { return nil }
        return PGText.decodeBytea(text)
    }
}

/// Text-format encodings of parameter values that are not plain strings.
public enum PGText {
    /// The hex input form of bytea, `\x` followed by two lowercase hex digits per byte (PostgreSQL docs —
    /// "bytea Hex Format"), to send bytes as an untyped text parameter of a bytea column.
    public static func bytea(_ bytes: [UInt8]) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "x")]
        out.reserveCapacity(2 + bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes bytea text output (hex or escape form); nil when malformed.
    public static func decodeBytea(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        if utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x") {
            return decodeHex(utf8[2...])
        }
        return decodeEscape(utf8)
    }

    private static func decodeHex(_ digits: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        var high: UInt8?
        for character in digits {
            guard let nibble = hexValue(character) else {
                // The hex input form allows whitespace between digit pairs; the output form never has any.
                if character == UInt8(ascii: " ") || character == UInt8(ascii: "\n"), high == nil { continue }
                return nil
            }
            if let pending = high {
                out.append(pending << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return high == nil ? out : nil
    }

    private static func hexValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return character - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static func decodeEscape(_ text: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var index = 0
        while index < text.count {
            let character = text[index]
            guard character == UInt8(ascii: "\\") else {
                out.append(character)
                index += 1
                continue
            }
            if index + 1 < text.count, text[index + 1] == UInt8(ascii: "\\") {
                out.append(UInt8(ascii: "\\"))
                index += 2
                continue
            }
            guard index + 3 < text.count else { return nil }
            var value = 0
            for offset in 1...3 {
                let digit = text[index + offset]
                guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "7") else { return nil }
                value = value * 8 + Int(digit - UInt8(ascii: "0"))
            }
            guard value <= 255 else { return nil }
            out.append(UInt8(value))
            index += 4
        }
        return out
    }
}
