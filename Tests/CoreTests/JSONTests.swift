// The exact JSON parser and the canonical form behind content hashes (docs/DESIGN.md §2 rule 5).
import Foundation
import Testing
@testable import Core

@Suite struct JSONParseTests {
    @Test func allValueKinds() throws {
        let value = try JSONValue.parse(#" {"n": null, "t": true, "f": false, "i": -12, "d": 2.5, "s": "x", "a": [1, [], {}], "o": {"k": "v"}} "#)
        #expect(value["n"] == .null)
        #expect(value["t"] == .bool(true))
        #expect(value["f"] == .bool(false))
        #expect(value["i"] == .integer(-12))
        #expect(value["d"] == .double(2.5))
        #expect(value["s"] == .string("x"))
        #expect(value["a"] == .array([.integer(1), .array([]), .object(JSONObject())]))
        #expect(value["o"]?["k"] == .string("v"))
        // Member order is kept for the wire form.
        #expect(value.objectValue?.keys == ["n", "t", "f", "i", "d", "s", "a", "o"])
        #expect(try JSONValue.parse("\"top\"") == .string("top"))
        #expect(try JSONValue.parse("7") == .integer(7))
    }

    @Test func integersAreExactInt64() throws {
        #expect(try JSONValue.parse("9223372036854775807") == .integer(Int64.max))
        #expect(try JSONValue.parse("-9223372036854775808") == .integer(Int64.min))
        // Beyond 2^53 a Double would round; an Int64 must not.
        #expect(try JSONValue.parse("9007199254740993") == .integer(9_007_199_254_740_993))
        #expect(try JSONValue.parse("[9007199254740993]").serialized() == "[9007199254740993]")
        // Beyond Int64 it becomes a Double rather than failing.
        #expect(try JSONValue.parse("9223372036854775808") == .double(9_223_372_036_854_775_808))
        #expect(try JSONValue.parse("-0") == .integer(0))
    }

    @Test func numbersBeyondDoubleRangeAreErrorsNotInfinity() {
        // Otherwise 1e400 would serialize as null and hash like null (rule 5).
        #expect(throws: JSONSyntaxError(line: 1, column: 2, message: "number out of range (beyond the IEEE 754 double range)")) {
            try JSONValue.parse("[1e400]")
        }
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse("-1e400") }
    }

    @Test func doubles() throws {
        #expect(try JSONValue.parse("1.5e3") == .double(1500))
        #expect(try JSONValue.parse("-0.25") == .double(-0.25))
        #expect(try JSONValue.parse("1E-2") == .double(0.01))
        #expect(try JSONValue.parse("2e+2") == .double(200))
        #expect(try JSONValue.parse("1.0") == .double(1))
        #expect(try JSONValue.parse("1.0").int64Value == 1)
    }

    @Test func escapesIncludingSurrogatePairs() throws {
        let value = try JSONValue.parse(#""\"\\\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00 é""#)
        #expect(value == .string("\"\\/\u{8}\u{C}\n\r\tAé😀 é"))
        for bad in [#""\ud83d""#, #""\ude00""#, #""\ud83d\u0041""#, #""\x""#, #""\u12g4""#, #""\u12""#] {
            #expect(throws: JSONSyntaxError.self, "\(bad)") { try JSONValue.parse(bad) }
        }
    }

    @Test func duplicateKeysAreRejectedAtTheSecondKey() {
        #expect(throws: JSONSyntaxError(line: 3, column: 3, message: #"duplicate member name "a""#)) {
            try JSONValue.parse("{\n  \"a\": 1,\n  \"a\": 2\n}")
        }
    }

    @Test func trailingGarbageIsRejected() {
        #expect(throws: JSONSyntaxError(line: 1, column: 5, message: "unexpected 'x' after the end of the JSON value")) {
            try JSONValue.parse("[1] x")
        }
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse("{} {}") }
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse("1 2") }
    }

    @Test func errorsNameLineAndColumnOnMultiLineInput() throws {
        func position(_ text: String) -> (Int, Int)? {
            do {
                _ = try JSONValue.parse(text)
                return nil
            } catch {
                return (error.line, error.column)
            }
        }
        #expect(position("{\n \"a\": tru\n}")! == (2, 7))
        #expect(position("{\n  \"a\": 1,\n  \"b\" 2\n}")! == (3, 7))
        #expect(position("[\n1,\n2,\n]")! == (4, 1))
        // Columns count characters, not UTF-8 bytes.
        #expect(position("[\"é\", x]")! == (1, 7))
        #expect(position("")! == (1, 1))
        #expect(position("{\"a\": \"unterminated")! == (1, 7))
    }

    @Test func malformedInputIsRejected() {
        for bad in ["01", "1.", "-", ".5", "+1", "[1,]", "{,}", "{\"a\"}", "{\"a\":}", "'a'", "[1 2]", "nul", "True",
                    "NaN", "\"tab\there\"", "{\"a\":1,}", "[", "{", "\u{FEFF}"] {
            #expect(throws: JSONSyntaxError.self, "\(bad)") { try JSONValue.parse(bad) }
        }
    }

    @Test func depthLimit() throws {
        let deep = String(repeating: "[", count: 256) + String(repeating: "]", count: 256)
        _ = try JSONValue.parse(deep)
        let tooDeep = String(repeating: "[", count: 257) + String(repeating: "]", count: 257)
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(tooDeep) }
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(Array("{\"a\":{\"b\":[]}}".utf8), maxDepth: 2) }
        _ = try JSONValue.parse(Array("{\"a\":{\"b\":1}}".utf8), maxDepth: 2)
    }

    @Test func leadingByteOrderMarkIsSkipped() throws {
        #expect(try JSONValue.parse([0xEF, 0xBB, 0xBF] + Array("{\"a\":1}".utf8)) == ["a": 1])
        #expect(try JSONValue.parse([0xEF, 0xBB, 0xBF] + Array(" [] ".utf8)) == .array([]))
    }

    @Test func invalidUTF8IsRejected() {
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse([0x22, 0xC3, 0x28, 0x22]) }
    }
}

@Suite struct CanonicalFormTests {
    @Test func rule5SortedKeysAtEveryDepth() throws {
        let value = try JSONValue.parse(#"{"b": {"z": 1, "a": [{"y": 2, "x": 1}]}, "a": true, "B": null}"#)
        #expect(value.canonicalString() == #"{"B":null,"a":true,"b":{"a":[{"x":1,"y":2}],"z":1}}"#)
        // Wire form keeps source order.
        #expect(value.serialized() == #"{"b":{"z":1,"a":[{"y":2,"x":1}]},"a":true,"B":null}"#)
        let reordered = try JSONValue.parse(#"{"a": true, "B": null, "b": {"a": [{"x": 1, "y": 2}], "z": 1}}"#)
        #expect(reordered.canonicalBytes() == value.canonicalBytes())
    }

    @Test func rule5StableNumberForms() throws {
        #expect(try JSONValue.parse("1").canonicalBytes() == JSONValue.parse("1.0").canonicalBytes())
        #expect(try JSONValue.parse("100").canonicalBytes() == JSONValue.parse("1e2").canonicalBytes())
        #expect(try JSONValue.parse("[0.1, -2.5, 1e300]").canonicalString() == "[0.1,-2.5,1e+300]")
        #expect(try JSONValue.parse("0.1").canonicalString() == JSONValue.parse("1e-1").canonicalString())
    }

    @Test func rule5StableStringForms() throws {
        // Escaped and literal spellings of the same text give the same bytes.
        #expect(try JSONValue.parse(#""caf\u00e9 \/ x""#).canonicalBytes() == JSONValue.parse(#""café / x""#).canonicalBytes())
        #expect(JSONValue.string("a\"b\\c\n\u{1F}").canonicalString() == #""a\"b\\c\n\u001f""#)
        // Canonical output parses back to the same value.
        let value: JSONValue = ["k": "line\nbreak \u{0} 😀", "n": [1, 2.5, nil, false]]
        #expect(try JSONValue.parse(value.canonicalString()) == value)
    }

    @Test func rule5ContentHashIgnoresVolatileFields() throws {
        let volatile: Set<String> = ["sys_updated_on", "sys_mod_count"]
        let a = try JSONValue.parse(#"{"sys_id":"1","state":"2","sys_updated_on":"2026-11-29 06:00:00","sys_mod_count":"4"}"#)
        let b = try JSONValue.parse(#"{"sys_mod_count":"5","state":"2","sys_id":"1","sys_updated_on":"2026-11-29 06:05:00"}"#)
        let c = try JSONValue.parse(#"{"sys_id":"1","state":"3","sys_updated_on":"2026-11-29 06:05:00","sys_mod_count":"5"}"#)
        #expect(ContentHash.of(a, ignoring: volatile) == ContentHash.of(b, ignoring: volatile))
        #expect(ContentHash.of(a, ignoring: volatile) != ContentHash.of(c, ignoring: volatile))
        #expect(ContentHash.of(a) != ContentHash.of(b))
        #expect(ContentHash.of(a).count == 64)
        // Only top-level fields are volatile; a nested field of the same name still counts.
        let nestedA: JSONValue = ["x": ["sys_mod_count": "1"]]
        let nestedB: JSONValue = ["x": ["sys_mod_count": "2"]]
        #expect(ContentHash.of(nestedA, ignoring: volatile) != ContentHash.of(nestedB, ignoring: volatile))
    }

    /// A record with every awkward form in one object. The literals were computed outside Swift (Python's
    /// `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` and `hashlib.sha256`), so a
    /// faster serializer cannot silently change stored hashes or event ids.
    static let pinned: JSONValue = [
        "sys_id": "9d385017c611228701d22104cc95c371", "number": "INC0010001",
        "short_description": "Printer \"3rd floor\" jams\nagain\\ – café ✓ 🎉 \u{1}",
        "priority": 2, "impact": -3, "big": .integer(Int64.max), "price": 12.30, "ratio": 1e300, "whole": 4.0,
        "tiny": 0.1, "active": true, "closed_at": nil, "tags": ["b", "a", 1, [:], []],
        "nested": ["z": 1, "a": ["y": 2, "x": 1], "sys_updated_on": "kept"],
        "é": "accent key", "B": "upper", "a\u{0}": "nul key",
        "sys_updated_on": "2026-11-29 06:00:00", "sys_mod_count": 7,
    ]

    @Test func rule5PinnedBytesAndHashes() throws {
        let value = Self.pinned
        #expect(value.canonicalString() == #"{"B":"upper","a\u0000":"nul key","active":true,"big":9223372036854775807,"closed_at":null,"impact":-3,"nested":{"a":{"x":1,"y":2},"sys_updated_on":"kept","z":1},"number":"INC0010001","price":12.3,"priority":2,"ratio":1e+300,"short_description":"Printer \"3rd floor\" jams\nagain\\ – café ✓ 🎉 \u0001","sys_id":"9d385017c611228701d22104cc95c371","sys_mod_count":7,"sys_updated_on":"2026-11-29 06:00:00","tags":["b","a",1,{},[]],"tiny":0.1,"whole":4,"é":"accent key"}"#)
        #expect(value.serialized() == #"{"sys_id":"9d385017c611228701d22104cc95c371","number":"INC0010001","short_description":"Printer \"3rd floor\" jams\nagain\\ – café ✓ 🎉 \u0001","priority":2,"impact":-3,"big":9223372036854775807,"price":12.3,"ratio":1e+300,"whole":4,"tiny":0.1,"active":true,"closed_at":null,"tags":["b","a",1,{},[]],"nested":{"z":1,"a":{"y":2,"x":1},"sys_updated_on":"kept"},"é":"accent key","B":"upper","a\u0000":"nul key","sys_updated_on":"2026-11-29 06:00:00","sys_mod_count":7}"#)
        #expect(ContentHash.of(value) == "ae6699c64112635e53bbb053dbba6633b7cb9222febe02b643e0ae1b7d9e7c1d")
        #expect(ContentHash.of(value, ignoring: ["sys_updated_on", "sys_mod_count"])
                == "f0ba99f7b91d5fba5621118a28efb3849531f03de9be48c5151deb51f56d5807")
        // Parsing the wire form gives the same hash (4.0 comes back as the integer 4: same canonical bytes).
        let reparsed = try JSONValue.parse(value.serialized())
        #expect(ContentHash.of(reparsed, ignoring: ["sys_updated_on", "sys_mod_count"])
                == "f0ba99f7b91d5fba5621118a28efb3849531f03de9be48c5151deb51f56d5807")
    }

    @Test func serializesIdenticallyIsExactAboutOrderBytesAndNumbers() throws {
        let value = Self.pinned
        #expect(value.serializesIdentically(to: try JSONValue.parse(value.serialized())) == false,
                "4.0 reparses as the integer 4")
        let text = #"{"a":[1,2.5,"x",null,true,{"k":"v"}],"b":"café"}"#
        #expect(try JSONValue.parse(text).serializesIdentically(to: JSONValue.parse(text)))
        // == ignores member order and Unicode normalization; serialization does not.
        let reordered = try JSONValue.parse(#"{"b":"café","a":[1,2.5,"x",null,true,{"k":"v"}]}"#)
        #expect(try reordered == JSONValue.parse(text))
        #expect(!reordered.serializesIdentically(to: try JSONValue.parse(text)))
        let decomposed: JSONValue = ["b": "cafe\u{301}"], precomposed: JSONValue = ["b": "caf\u{e9}"]
        #expect(decomposed == precomposed)
        #expect(!decomposed.serializesIdentically(to: precomposed))
        #expect(!JSONValue.integer(1).serializesIdentically(to: .double(1)))
        #expect(!JSONValue.double(0).serializesIdentically(to: .double(-0.0)), "conservative: both render as 0")
    }

    @Test func rule5FieldLevelChanges() throws {
        let old: JSONValue = ["status": "open", "title": "x", "gone": 1, "updated_at": "t1", "n": 1]
        let new: JSONValue = ["status": "in_progress", "title": "x", "added": true, "updated_at": "t2", "n": 1.0]
        let changes = ContentHash.changes(from: old, to: new, ignoring: ["updated_at"])
        #expect(changes == [
            "status": FieldChange(from: "open", to: "in_progress"),
            "gone": FieldChange(from: 1, to: nil),
            "added": FieldChange(from: nil, to: true),
        ])
        #expect(ContentHash.changes(from: old, to: old).isEmpty)
    }
}
