// A JSON value with exact, order-preserving parsing and a canonical serialization.
//
// deltahook parses provider responses and config files itself (instead of JSONSerialization) for three
// reasons: errors must name a line and column (config) or a JSON path (provider data); integers must
// survive exactly (GitHub ids exceed 2^53 one day); and the canonical form used for content hashes
// (docs/DESIGN.md §2 rule 5) must not depend on Foundation's number formatting.

/// A parsed JSON value. Objects keep their members in source order; `canonical` sorts them.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o } else { return nil } }
    public var isNull: Bool { if case .null = self { return true } else { return false } }
    public var int64Value: Int64? {
        switch self {
        case .integer(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9.0e15: return Int64(d)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// A short name of the JSON type, for error messages ("expected a string, found an array").
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// An ordered JSON object. Lookup is linear for small objects and hashed for large ones: provider records
/// are mostly small, and building a dictionary per object (hashing every key) cost more than it saved.
public struct JSONObject: Sendable, Hashable, Sequence {
    public private(set) var members: [(key: String, value: JSONValue)]
    /// Key → position in `members`; nil until the object grows past ``indexThreshold`` members.
    private var index: [String: Int]?

    /// Objects with more members than this get a hash index.
    static let indexThreshold = 12

    public init() { members = []; index = nil }

    /// Members in order; a later duplicate key replaces the earlier value (as assigning would).
    public init(_ pairs: [(String, JSONValue)]) {
        self.init()
        members.reserveCapacity(pairs.count)
        for (k, v) in pairs { self[k] = v }
    }

    public var count: Int { members.count }
    public var keys: [String] { members.map(\.key) }

    /// The position of `key` in `members`.
    func position(of key: String) -> Int? {
        if let index { return index[key] }
        for position in members.indices where members[position].key == key { return position }
        return nil
    }

    /// Whether the object has a member `key`.
    public func contains(_ key: String) -> Bool { position(of: key) != nil }

    /// Appends a member whose key the caller knows is not present yet (the parser checks for duplicates
    /// first), without a second lookup.
    mutating func appendNew(_ key: String, _ value: JSONValue) {
        members.append((key, value))
        if index != nil {
            index?[key] = members.count - 1
        } else if members.count > Self.indexThreshold {
            rebuildIndex()
        }
    }

    private mutating func rebuildIndex() {
        var built = [String: Int](minimumCapacity: members.count)
        for (i, m) in members.enumerated() { built[m.key] = i }
        index = built
    }

    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { members[$0].value } }
        set {
            if let position = position(of: key) {
                if let newValue { members[position].value = newValue } else {
                    members.remove(at: position)
                    if index != nil { rebuildIndex() }
                }
            } else if let newValue {
                appendNew(key, newValue)
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: JSONValue)]> { members.makeIterator() }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.members.count == rhs.members.count else { return false }
        for (key, value) in lhs.members where rhs[key] != value { return false }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        for (key, value) in members.sorted(by: { $0.key < $1.key }) {
            hasher.combine(key)
            hasher.combine(value)
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}

// MARK: - Serialization

extension JSONValue {
    /// Compact JSON in member order (what deltahook sends on the wire).
    public func serialized() -> String {
        var out = [UInt8]()
        out.reserveCapacity(256)
        write(into: &out, sortKeys: false)
        return String(decoding: out, as: UTF8.self)
    }

    /// Canonical JSON: members sorted by key (UTF-8 byte order), no whitespace, integers without a fraction,
    /// other numbers in Swift's shortest round-trip form, strings with minimal escapes. Two values that are
    /// equal as data always give the same bytes (docs/DESIGN.md §2 rule 5).
    public func canonicalBytes() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(256)
        write(into: &out, sortKeys: true)
        return out
    }

    public func canonicalString() -> String { String(decoding: canonicalBytes(), as: UTF8.self) }

    public func serializedBytes() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(256)
        write(into: &out, sortKeys: false)
        return out
    }

    func write(into out: inout [UInt8], sortKeys: Bool) {
        switch self {
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
        case .string(let s): JSONValue.writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out, sortKeys: sortKeys)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            if sortKeys {
                JSONValue.writeSortedObject(object, skipping: [], into: &out)
                return
            }
            out.append(UInt8(ascii: "{"))
            for (i, member) in object.members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(into: &out, sortKeys: false)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// True only if `self` and `other` serialize to the same text: same cases, same member order, same string
    /// bytes, same number bits (so it may say false for a few that would, like 0.0 and -0.0). Stricter than `==`,
    /// which ignores member order and compares strings by Unicode equivalence. Lets a caller render once for both.
    public func serializesIdentically(to other: JSONValue) -> Bool {
        switch (self, other) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.integer(let a), .integer(let b)): return a == b
        case (.double(let a), .double(let b)): return a.bitPattern == b.bitPattern
        case (.string(let a), .string(let b)): return a.utf8.elementsEqual(b.utf8)
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.serializesIdentically(to: $1) }
        case (.object(let a), .object(let b)):
            return a.count == b.count && zip(a.members, b.members).allSatisfy {
                $0.key.utf8.elementsEqual($1.key.utf8) && $0.value.serializesIdentically(to: $1.value)
            }
        default: return false
        }
    }

    /// Canonical bytes of `self`, leaving out the `skipping` members when `self` is an object (top level
    /// only: nested objects keep every member). The content hash's input (docs/DESIGN.md §2 rule 5).
    public func canonicalBytes(skipping volatile: Set<String>) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(512)
        writeCanonical(into: &out, skipping: volatile)
        return out
    }

    /// Appends the canonical bytes of `self` minus the top-level `skipping` members to `out`.
    public func writeCanonical(into out: inout [UInt8], skipping volatile: Set<String>) {
        if case .object(let object) = self {
            JSONValue.writeSortedObject(object, skipping: volatile, into: &out)
        } else {
            write(into: &out, sortKeys: true)
        }
    }

    /// Members sorted by UTF-8 key bytes, `volatile` keys left out. Sorts member positions in a stack buffer
    /// rather than copying the (key, value) pairs.
    static func writeSortedObject(_ object: JSONObject, skipping volatile: Set<String>, into out: inout [UInt8]) {
        let members = object.members
        withUnsafeTemporaryAllocation(of: Int.self, capacity: members.count) { order in
            var count = 0
            for position in members.indices {
                // Few volatile fields: a linear check is cheaper than hashing every key.
                if !volatile.isEmpty && volatile.contains(where: { $0 == members[position].key }) { continue }
                order[count] = position
                count += 1
            }
            var sorted = UnsafeMutableBufferPointer(rebasing: order[0..<count])
            sorted.sort { utf8Precedes(members[$0].key, members[$1].key) }
            out.append(UInt8(ascii: "{"))
            for (i, position) in sorted.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(members[position].key, into: &out)
                out.append(UInt8(ascii: ":"))
                members[position].value.write(into: &out, sortKeys: true)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// UTF-8 byte order (the canonical member order; Swift's `<` on String is not byte order in general).
    @inline(__always)
    static func utf8Precedes(_ a: String, _ b: String) -> Bool {
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

    /// A JSON string with minimal escapes. Runs of bytes that need no escape are appended in one copy.
    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var runStart = 0
            for i in 0..<bytes.count {
                let byte = bytes[i]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i])) }
                appendEscape(byte, into: &out)
                runStart = i + 1
            }
            if runStart < bytes.count {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count]))
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func appendEscape(_ byte: UInt8, into out: inout [UInt8]) {
        switch byte {
        case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
        case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
        case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
        case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
        case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
        case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
        case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
        default:
            let hex = Array("0123456789abcdef".utf8)
            out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
        }
    }
}

extension JSONValue: CustomStringConvertible {
    public var description: String { serialized() }
}
