// The command table and the small hand-written argument parser every subcommand uses (DESIGN §7).
//
// Adding a command: write one file with a type conforming to `Command`, then add it to `CommandTable.all`.
import Foundation
import Config
import Core

/// sysexits.h values the brief fixes: 0 ok, 1 failure, 64 usage, 78 config.
enum ExitCode {
    static let ok: Int32 = 0
    static let failure: Int32 = 1
    static let usage: Int32 = 64   // EX_USAGE
    static let config: Int32 = 78  // EX_CONFIG
}

/// A command line mistake; reported with the command's usage and exit code 64.
struct UsageError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// What every command gets besides its own arguments.
struct CommandContext: Sendable {
    /// `--config PATH` (global, accepted before or after the command name).
    var configPath: String
    /// The process environment (injectable for tests of commands).
    var environment: [String: String]
    var output: Output
    /// The process's one scrubber (docs/DESIGN.md §1): `output` passes every text through it, commands that load
    /// the config register its secrets and subscriber URLs, and poller commands hand it to their logger, so
    /// provider tokens minted during `poll-once` are known to it too.
    var scrubber = SecretScrubber()

    var configEnvironment: ConfigEnvironment { ConfigEnvironment(variables: environment) }
}

/// stdout/stderr writers; commands never call print() so their output can be redirected as a whole.
struct Output: Sendable {
    var out: @Sendable (String) -> Void
    var err: @Sendable (String) -> Void

    static let standard = Output(
        out: { FileHandle.standardOutput.write(Data($0.utf8)) },
        err: { FileHandle.standardError.write(Data($0.utf8)) })

    /// The same writers behind `scrubber`: nothing a command prints (tables, `--json`, error messages) can carry
    /// a registered secret.
    func scrubbed(by scrubber: SecretScrubber) -> Output {
        let base = self
        return Output(out: { base.out(scrubber.scrub($0)) }, err: { base.err(scrubber.scrub($0)) })
    }
}

/// A subcommand. `init` parses and validates the arguments (throwing `UsageError`); `run` does the work and
/// returns the exit code.
protocol Command {
    /// The word after `deltahook`, e.g. "check-config".
    static var name: String { get }
    /// One line for `deltahook help`.
    static var summary: String { get }
    /// The synopsis after "deltahook", e.g. "check-config [--json]".
    static var usage: String { get }
    /// More text for `deltahook <command> --help` (options, examples); may be empty.
    static var details: String { get }

    init(arguments: inout ArgumentList, context: CommandContext) throws
    func run() async throws -> Int32
}

extension Command {
    static var details: String { "" }
}

/// Every command, in the order `help` lists them.
enum CommandTable {
    static var all: [any Command.Type] {[
        // In the order `deltahook help` lists them: daemon and setup, then inspection, then repair, then tools.
        RunCommand.self,
        CheckConfigCommand.self,
        StatusCommand.self,
        PollOnceCommand.self,
        EventsCommand.self,
        DeliveriesCommand.self,
        QuarantineCommand.self,
        RedeliverCommand.self,
        ReplayCommand.self,
        SubscribersCommand.self,
        ReconcileCommand.self,
        SecretsCommand.self,
        DemoCommand.self,
        BenchDeliveryCommand.self,
        VersionCommand.self,
        HelpCommand.self,
    ]}

    static func find(_ name: String) -> (any Command.Type)? { all.first { $0.name == name } }
}

/// Arguments left for a command to consume. Options are `--name VALUE` or `--name=VALUE`; `--` ends options.
/// Whatever is not consumed makes `finish()` throw, so unknown flags are always rejected.
struct ArgumentList {
    private(set) var items: [String]

    init(_ items: [String]) { self.items = items }

    /// Indices before a `--` terminator.
    private var optionRange: Range<Int> { 0..<(items.firstIndex(of: "--") ?? items.count) }

    /// True (and consumed) when any of `names` is present.
    mutating func flag(_ names: String...) -> Bool {
        var found = false
        while let i = optionRange.first(where: { names.contains(items[$0]) }) {
            items.remove(at: i)
            found = true
        }
        return found
    }

    /// The value of `--name VALUE` / `--name=VALUE`; the last occurrence wins.
    mutating func option(_ name: String) throws -> String? {
        var value: String?
        while let i = optionRange.first(where: { items[$0] == name || items[$0].hasPrefix(name + "=") }) {
            let item = items[i]
            if item == name {
                guard i + 1 < optionRange.upperBound, !items[i + 1].hasPrefix("--") else {
                    throw UsageError("\(name) needs a value")
                }
                value = items[i + 1]
                items.removeSubrange(i...(i + 1))
            } else {
                value = String(item.dropFirst(name.count + 1))
                items.remove(at: i)
            }
        }
        return value
    }

    /// The next positional argument, if any (options are skipped; after `--` everything is positional).
    mutating func nextPositional() -> String? {
        let range = optionRange
        if let i = range.first(where: { !items[$0].hasPrefix("-") || items[$0] == "-" }) {
            return items.remove(at: i)
        }
        let dash = range.upperBound
        if dash + 1 < items.count { return items.remove(at: dash + 1) }
        return nil
    }

    mutating func positional(_ what: String) throws -> String {
        guard let value = nextPositional() else { throw UsageError("missing \(what)") }
        return value
    }

    /// Rejects anything left over.
    func finish() throws {
        let left = items.filter { $0 != "--" }
        guard let first = left.first else { return }
        if first.hasPrefix("-") { throw UsageError("unknown option \(first)") }
        throw UsageError("unexpected argument \"\(first)\"")
    }
}
