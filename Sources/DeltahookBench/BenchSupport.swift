// What the benchmark modes that drive the real daemon (cluster, e2e, idle) share: reading their options and
// preparing a private scratch directory for a run.
import Foundation
import Glibc

/// A mode's command-line options, read front to back; every failure names the option and prints the usage.
struct BenchArguments {
    private var rest: ArraySlice<String>
    private let usage: String

    init(_ arguments: [String], usage: String) {
        rest = arguments[...]
        self.usage = usage
    }

    mutating func next() -> String? { rest.popFirst() }

    mutating func value(_ name: String) throws -> String {
        guard let next = rest.popFirst() else { throw BenchFailure("\(name) needs a value\n\(usage)") }
        return next
    }

    /// A whole number ≥ `minimum` (1: positive, 0: a count).
    mutating func number(_ name: String, minimum: Int = 1) throws -> Int {
        let text = try value(name)
        guard let number = Int(text), number >= minimum else {
            throw BenchFailure("\(name): \"\(text)\" is not \(minimum > 0 ? "a positive integer" : "a count")")
        }
        return number
    }

    func unknown(_ argument: String) -> BenchFailure { BenchFailure("unknown argument \"\(argument)\"\n\(usage)") }
}

enum BenchScratch {
    /// Checks that `deltahook` is the release binary to run and creates `<tmp>/deltahook-bench-<label>-<pid>` (0700).
    static func prepare(deltahook: String, label: String) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: deltahook) else {
            throw BenchFailure("\(deltahook) is not an executable; build it with swift build -c release")
        }
        let directory = FileManager.default.temporaryDirectory.path + "/deltahook-bench-\(label)-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        return directory
    }
}
