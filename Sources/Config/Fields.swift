// A reader over one JSON object that records every key it is asked for, so unknown keys can be reported
// afterwards (typos must not pass silently, docs/DESIGN.md §6), and that turns type mismatches into path-qualified
// problems instead of stopping at the first one.
import Foundation
import Core

/// Keys that start with `//` are comments and are ignored everywhere (config.example.json uses them).
let commentKeyPrefix = "//"

func joinPath(_ base: String, _ key: String) -> String { base.isEmpty ? key : "\(base).\(key)" }

final class Fields {
    let object: JSONObject
    let path: String
    let problems: ProblemList
    private var known: [String] = []

    /// Nil (with a problem recorded) when `value` is not an object.
    init?(_ value: JSONValue, path: String, problems: ProblemList) {
        guard let object = value.objectValue else {
            problems.add(path.isEmpty ? "(top level)" : path, "expected an object, found \(value.typeName)")
            return nil
        }
        self.object = object
        self.path = path
        self.problems = problems
    }

    func child(_ key: String) -> String { joinPath(path, key) }

    /// Marks keys as known without reading them (keys read through other paths).
    func allow(_ keys: [String]) { known += keys }

    func has(_ key: String) -> Bool { object[key] != nil }

    /// The raw value of a key; records the key as known.
    func raw(_ key: String) -> JSONValue? {
        known.append(key)
        return object[key]
    }

    private func missing(_ key: String, _ expected: String) {
        problems.add(child(key), "is required; expected \(expected)")
    }

    private func mismatch(_ key: String, _ expected: String, _ found: JSONValue) {
        problems.add(child(key), "expected \(expected), found \(found.typeName)")
    }

    func string(_ key: String, required: Bool = false, expected: String = "a string") -> String? {
        guard let value = raw(key) else {
            if required { missing(key, expected) }
            return nil
        }
        guard let s = value.stringValue else { mismatch(key, expected, value); return nil }
        guard !s.isEmpty else { problems.add(child(key), "is empty; expected \(expected)"); return nil }
        return s
    }

    func bool(_ key: String) -> Bool? {
        guard let value = raw(key) else { return nil }
        guard let b = value.boolValue else { mismatch(key, "true or false", value); return nil }
        return b
    }

    func integer(_ key: String, in range: ClosedRange<Int>) -> Int? {
        guard let value = raw(key) else { return nil }
        let expected = "an integer from \(range.lowerBound) to \(range.upperBound)"
        guard case .integer(let i) = value else {
            if case .double = value { problems.add(child(key), "\(value) is not a whole number; expected \(expected)") }
            else { mismatch(key, expected, value) }
            return nil
        }
        guard i >= Int64(range.lowerBound), i <= Int64(range.upperBound) else {
            problems.add(child(key), "\(i) is out of range; expected \(expected)")
            return nil
        }
        return Int(i)
    }

    func number(_ key: String, in range: ClosedRange<Double>, expected: String) -> Double? {
        guard let value = raw(key) else { return nil }
        guard let d = value.doubleValue else { mismatch(key, expected, value); return nil }
        guard range.contains(d) else { problems.add(child(key), "\(value) is out of range; expected \(expected)"); return nil }
        return d
    }

    func duration(_ key: String, minimum: Duration = .zero, required: Bool = false) -> Duration? {
        guard let value = raw(key) else {
            if required { missing(key, "a duration such as \"30s\"") }
            return nil
        }
        return Fields.duration(value, path: child(key), minimum: minimum, problems: problems)
    }

    static func duration(_ value: JSONValue, path: String, minimum: Duration, problems: ProblemList) -> Duration? {
        guard let text = value.stringValue else {
            if value.doubleValue != nil {
                problems.add(path, "\(value) is a bare number; durations are strings with a unit, e.g. \"\(value)s\"")
            } else {
                problems.add(path, "expected a duration string such as \"30s\", found \(value.typeName)")
            }
            return nil
        }
        guard let d = DurationText.parse(text) else {
            problems.add(path, "\"\(text)\" is not a duration; use e.g. \"500ms\", \"30s\", \"5m\", \"2h\" or \"5d\"")
            return nil
        }
        guard d >= minimum else {
            problems.add(path, "\"\(text)\" is too short; the minimum is \"\(DurationText.format(minimum))\"")
            return nil
        }
        return d
    }

    func choice<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type, required: Bool = false,
                                                   allowed: [E]? = nil, why: String = "") -> E?
    where E.RawValue == String {
        let options = (allowed ?? Array(E.allCases)).map(\.rawValue)
        let expected = "one of " + options.map { "\"\($0)\"" }.joined(separator: ", ")
        guard let s = string(key, required: required, expected: expected) else { return nil }
        guard let e = E(rawValue: s), options.contains(s) else {
            let suffix = E(rawValue: s) != nil && !why.isEmpty ? " (\(why))" : Suggestion.hint(for: s, in: options)
            problems.add(child(key), "\"\(s)\" is not allowed here; expected \(expected)\(suffix)")
            return nil
        }
        return e
    }

    func stringArray(_ key: String, allowEmpty: Bool = false, element: (String, String) -> Bool = { _, _ in true })
        -> [String]?
    {
        guard let value = raw(key) else { return nil }
        guard let items = value.arrayValue else { mismatch(key, "an array of strings", value); return nil }
        if items.isEmpty && !allowEmpty { problems.add(child(key), "is empty; expected at least one string"); return nil }
        var out: [String] = []
        var ok = true
        for (i, item) in items.enumerated() {
            let p = "\(child(key))[\(i)]"
            guard let s = item.stringValue else { problems.add(p, "expected a string, found \(item.typeName)"); ok = false; continue }
            if element(s, p) { out.append(s) } else { ok = false }
        }
        return ok ? out : nil
    }

    /// The elements of an array-valued key with their paths.
    func array(_ key: String, required: Bool = false, expected: String) -> [(JSONValue, String)]? {
        guard let value = raw(key) else {
            if required { missing(key, expected) }
            return nil
        }
        guard let items = value.arrayValue else { mismatch(key, expected, value); return nil }
        return items.enumerated().map { ($1, "\(child(key))[\($0)]") }
    }

    func object(_ key: String, required: Bool = false, expected: String = "an object") -> Fields? {
        guard let value = raw(key) else {
            if required { missing(key, expected) }
            return nil
        }
        return Fields(value, path: child(key), problems: problems)
    }

    /// Reports keys nobody asked for, with a suggestion when a known key is close.
    func reportUnknownKeys(context: String = "") {
        for key in object.keys where !key.hasPrefix(commentKeyPrefix) && !known.contains(key) {
            let hint = Suggestion.hint(for: key, in: known)
            let known = Array(Set(self.known)).sorted().map { "\"\($0)\"" }.joined(separator: ", ")
            let tail = hint.isEmpty ? "; known keys\(context.isEmpty ? "" : " " + context): \(known)" : hint
            problems.add(child(key), "unknown key\(tail)")
        }
    }
}
