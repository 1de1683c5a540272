// Validation reports every problem at once, each with its JSON path and what is expected (docs/DESIGN.md §6).

/// One configuration mistake: where (`connections[1].objects[0].interval`) and what is expected.
public struct ConfigProblem: Sendable, Hashable, CustomStringConvertible {
    /// The JSON path, or "" for problems with the file as a whole. Paths in `connections.d` files start at the
    /// file's root, `$` (`$.objects[0].interval`, or `$[2].id` in a file holding a list).
    public let path: String
    public let message: String
    /// The `connections.d` file the problem is in; nil for the main config file (named by `ConfigError.file`), so
    /// the familiar `path: message` rendering of config.json problems stays as it was.
    public let file: String?

    public init(path: String, message: String, file: String? = nil) {
        self.path = path
        self.message = message
        self.file = file
    }

    /// `path: message`, or `file: $.path: message` for a problem in a connection file.
    public var description: String {
        let located = path.isEmpty ? message : "\(path): \(message)"
        return file.map { "\($0): \(located)" } ?? located
    }
}

/// A config that cannot be used, with every problem found. Never contains a secret value.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    /// The file the problems are in, when loaded from a file.
    public let file: String?
    public let problems: [ConfigProblem]

    public init(file: String?, problems: [ConfigProblem]) {
        self.file = file
        self.problems = problems
    }

    /// The file `problem` is in: its own (a `connections.d` file) or the main config file.
    public func file(of problem: ConfigProblem) -> String? { problem.file ?? file }

    public var description: String {
        let head = problems.count == 1 ? "1 problem" : "\(problems.count) problems"
        let origin = file.map { "config \($0) has " } ?? "config has "
        return origin + head + ":\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// Collects problems while a validation pass walks the document. Used by one pass on one thread only.
final class ProblemList {
    private(set) var problems: [ConfigProblem] = []
    /// The connection file being walked (nil: the main config file); every problem added is labelled with it,
    /// so the generic walk needs no file parameter.
    var file: String?

    func add(_ path: String, _ message: String) {
        problems.append(ConfigProblem(path: path, message: message, file: file))
    }
}

/// "Did you mean" for unknown keys and enum values: the closest candidate within a small edit distance.
enum Suggestion {
    static func closest(to word: String, in candidates: [String]) -> String? {
        let limit = max(1, min(3, word.count / 3))
        var best: (String, Int)?
        for candidate in candidates {
            let d = distance(word.lowercased(), candidate.lowercased())
            if d <= limit, best.map({ d < $0.1 }) ?? true { best = (candidate, d) }
        }
        return best?.0
    }

    /// Levenshtein distance with adjacent transpositions counted as one edit.
    static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars)
        let y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous2 = [Int](repeating: 0, count: y.count + 1)
        var previous = Array(0...y.count)
        var current = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            current[0] = i
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] {
                    current[j] = min(current[j], previous2[j - 2] + 1)
                }
            }
            previous2 = previous
            previous = current
        }
        return previous[y.count]
    }

    /// `; did you mean "x"?` or "".
    static func hint(for word: String, in candidates: [String]) -> String {
        closest(to: word, in: candidates).map { "; did you mean \"\($0)\"?" } ?? ""
    }
}

/// The closest of `candidates` to a mistyped `word` (small edit distance), for "did you mean" hints
/// elsewhere too (the CLI uses it for unknown commands).
public func closestMatch(to word: String, in candidates: [String]) -> String? {
    Suggestion.closest(to: word, in: candidates)
}
