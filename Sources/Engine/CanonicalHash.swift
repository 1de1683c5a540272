// The differ's hot path: the content hash of every record read (DESIGN §2 rule 5). An unchanged re-read costs
// exactly one of these plus a batched head lookup, so it must be cheap (DESIGN §9: ≥ 100k records/s).
//
// It produces the SAME bytes as `ContentHash.canonicalBytes(_:ignoring:)` in Core (members sorted by UTF-8
// key bytes, no whitespace, integers without a fraction, other numbers in shortest round-trip form, minimal
// string escapes) — EngineTests pin that equality on awkward values — but skips volatile top-level members
// while writing instead of copying and rebuilding the object, sorts member indices instead of member
// tuples, and copies unescaped strings in one block.
import Core
import Crypto

enum CanonicalHash {
    /// Hex SHA-256 of the canonical bytes of `value` minus the `volatile` top-level members; equal to
    /// `ContentHash.of(value, ignoring: volatile)`.
    static func of(_ value: JSONValue, ignoring volatile: Set<String>) -> String {
        var out = [UInt8]()
        out.reserveCapacity(512)
        write(value, ignoring: volatile, into: &out)
        return Digest.sha256(out).hexString
    }

    /// The canonical bytes (exposed for the equality tests).
    static func bytes(_ value: JSONValue, ignoring volatile: Set<String>) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(512)
        write(value, ignoring: volatile, into: &out)
        return out
    }

    private static let empty = Set<String>()

    static func write(_ value: JSONValue, ignoring volatile: Set<String>, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .integer(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d):
            if d.isNaN || d.isInfinite {
                out.append(contentsOf: "null".utf8)
            } else if d.rounded() == d && abs(d) < 9.0e15 {
                out.append(contentsOf: String(Int64(d)).utf8)
            } else {
                out.append(contentsOf: d.description.utf8)
            }
        case .string(let s): writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(item, ignoring: empty, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            let members = object.members
            var order: [Int] = []
            order.reserveCapacity(members.count)
            for index in members.indices where volatile.isEmpty || !volatile.contains(members[index].key) {
                order.append(index)
            }
            order.sort { precedes(members[$0].key, members[$1].key) }
            out.append(UInt8(ascii: "{"))
            var first = true
            for index in order {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                writeString(members[index].key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(members[index].value, ignoring: empty, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// UTF-8 byte order, as Core sorts canonical members.
    @inline(__always)
    static func precedes(_ a: String, _ b: String) -> Bool {
        let fast = a.utf8.withContiguousStorageIfAvailable { pa in
            b.utf8.withContiguousStorageIfAvailable { pb -> Bool in
                let n = min(pa.count, pb.count)
                for i in 0..<n where pa[i] != pb[i] { return pa[i] < pb[i] }
                return pa.count < pb.count
            }
        }
        if let result = fast ?? nil { return result }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        let copied = s.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            for byte in bytes where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                return false
            }
            out.append(contentsOf: bytes)
            return true
        } ?? false
        if !copied {
            for byte in s.utf8 {
                switch byte {
                case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
                case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
                case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
                case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
                case 0x00..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)],
                                            hex[Int(byte & 0xF)]])
                default: out.append(byte)
                }
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
