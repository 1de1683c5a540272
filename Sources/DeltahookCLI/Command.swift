// The command table and the small hand-written argument parser every subcommand uses (docs/DESIGN.md §7).
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
    /// The positional part of the synopsis after the command name, e.g. "list|show [EVENT_ID]"; "" when none.
    static var arguments: String { get }
    /// Every option the command accepts (besides the global ones); parsing and help both come from here.
    static var options: [OptionSpec] { get }
    /// More text for `deltahook <command> --help` (options, examples); may be empty.
    static var details: String { get }

    init(arguments: inout ArgumentList, context: CommandContext) throws
    func run() async throws -> Int32
}

extension Command {
    static var details: String { "" }
    static var arguments: String { "" }
    static var options: [OptionSpec] { [] }

    /// The synopsis after "deltahook", generated from the declarations: name, positionals, options.
    static var usage: String {
        ([name] + (arguments.isEmpty ? [] : [arguments]) + options.map(\.synopsis)).joined(separator: " ")
    }
}

/// Every command, in the order `help` lists them.
enum CommandTable {
    static var all: [any Command.Type] {[
        // In the order `deltahook help` lists them: daemon and setup, then inspection, then repair, then tools.
        RunCommand.self,
        CheckConfigCommand.self,
        ConnectionsCommand.self,
        StatusCommand.self,
        PollOnceCommand.self,
        EventsCommand.self,
        DeliveriesCommand.self,
        QuarantineCommand.self,
        RedeliverCommand.self,
        ReplayCommand.self,
        SubscribersCommand.self,
        ReconcileCommand.self,
        PruneCommand.self,
        SecretsCommand.self,
        DemoCommand.self,
        BenchDeliveryCommand.self,
        VersionCommand.self,
        HelpCommand.self,
    ]}

    static func find(_ name: String) -> (any Command.Type)? { all.first { $0.name == name } }
}

/// One option a command accepts. The declarations are the single source for parsing (a value option's value is
/// never mistaken for a positional, so options may stand before or after the action) and for the usage line and
/// option list that `help` prints (docs/DESIGN.md §7).
struct OptionSpec: Sendable {
    /// `--since`.
    let name: String
    /// A short alias such as `-v`.
    let alias: String?
    /// The value's placeholder (`TIME`); nil for a flag.
    let value: String?
    /// The command refuses to run without it.
    let required: Bool
    let help: String

    static func flag(_ name: String, alias: String? = nil, _ help: String) -> OptionSpec {
        OptionSpec(name: name, alias: alias, value: nil, required: false, help: help)
    }

    static func value(_ name: String, _ placeholder: String, required: Bool = false, _ help: String) -> OptionSpec {
        OptionSpec(name: name, alias: nil, value: placeholder, required: required, help: help)
    }

    /// Options most store-reading commands share.
    static let json = flag("--json", "print machine-readable JSON instead of a table")
    /// An explicit override, so it wins over a configured PostgreSQL store too (an operator pointing at a copy).
    static let stateDirectory = value("--state-directory", "DIR",
                                      "use the SQLite store in DIR instead of the config's store (even a PostgreSQL "
                                          + "one); with a postgres store, $DELTAHOOK_STORE_URL overrides its url")

    /// `--since TIME` in the usage line: `[--since TIME]`, or without brackets when required.
    var synopsis: String {
        let text = value.map { "\(name) \($0)" } ?? name
        return required ? text : "[\(text)]"
    }
}

/// The command line, split by declared options into option values and positionals. Options are `--name VALUE`,
/// `--name=VALUE` or flags, anywhere before `--`; everything else is positional, in order. What a command does not
/// consume makes `finish()` throw, so unknown or misplaced words are always rejected.
struct ArgumentList {
    /// The command line as typed, re-split by ``declare(_:)`` once the command (and so its options) is known.
    private let raw: [String]
    private var positionals: [String] = []
    private var values: [String: [String]] = [:]
    private var flags: [String: Int] = [:]
    /// Option words not declared (reported by `finish()`).
    private var unknown: [String] = []
    private var declared: [OptionSpec] = []

    /// Before the command is known: only the global options are declared.
    init(_ items: [String], options: [OptionSpec] = Self.globalOptions) {
        raw = items
        parse(items, options: options)
    }

    static let globalOptions: [OptionSpec] = [
        .value("--config", "PATH", "config file"),
        .flag("--help", alias: "-h", "show help"),
        .flag("--version", "print the version"),
    ]

    /// Splits the command line again with the command's options declared: the dispatcher has read the global
    /// options and the command word already, so those are dropped.
    mutating func declare(_ options: [OptionSpec]) {
        var fresh = ArgumentList(raw, options: Self.globalOptions + options)
        for global in Self.globalOptions {
            fresh.values[global.name] = nil
            fresh.flags[global.name] = nil
        }
        _ = fresh.nextPositional()
        self = fresh
    }

    private mutating func parse(_ items: [String], options: [OptionSpec]) {
        declared = options
        var index = 0
        var optionsEnded = false
        while index < items.count {
            let item = items[index]
            index += 1
            if item == "--" && !optionsEnded {
                optionsEnded = true
                continue
            }
            guard !optionsEnded, item.hasPrefix("-"), item != "-" else {
                positionals.append(item)
                continue
            }
            let (word, inline) = Self.split(item)
            guard let spec = options.first(where: { $0.name == word || $0.alias == word }) else {
                unknown.append(item)
                continue
            }
            if spec.value == nil {
                flags[spec.name, default: 0] += 1
            } else if let inline {
                values[spec.name, default: []].append(inline)
            } else if index < items.count, items[index] != "--" {
                values[spec.name, default: []].append(items[index])
                index += 1
            } else {
                values[spec.name, default: []].append(Self.missingValue)
            }
        }
    }

    /// Marks a value option given without its value; `option(_:)` reports it.
    private static let missingValue = "\u{0}missing"

    private static func split(_ item: String) -> (String, String?) {
        guard item.hasPrefix("--"), let equals = item.firstIndex(of: "=") else { return (item, nil) }
        return (String(item[..<equals]), String(item[item.index(after: equals)...]))
    }

    /// The first word the user typed that no declaration knows (for the dispatcher's error).
    var firstUnknown: String? { unknown.first }

    /// True (and consumed) when any of `names` is present.
    mutating func flag(_ names: String...) -> Bool {
        var found = false
        for name in names {
            let canonical = declared.first { $0.name == name || $0.alias == name }?.name ?? name
            if flags.removeValue(forKey: canonical) != nil { found = true }
        }
        return found
    }

    /// The value of `--name VALUE` / `--name=VALUE`; the last occurrence wins.
    mutating func option(_ name: String) throws -> String? {
        guard let list = values.removeValue(forKey: name), let value = list.last else { return nil }
        if value == Self.missingValue { throw UsageError("\(name) needs a value") }
        return value
    }

    /// The value of an option the command cannot do without; its absence is a usage error ("--x is required").
    mutating func requiredOption(_ name: String) throws -> String {
        guard let value = try option(name) else { throw UsageError("\(name) is required") }
        return value
    }

    /// The next positional argument, if any.
    mutating func nextPositional() -> String? {
        positionals.isEmpty ? nil : positionals.removeFirst()
    }

    mutating func positional(_ what: String) throws -> String {
        guard let value = nextPositional() else { throw UsageError("missing \(what)") }
        return value
    }

    /// Rejects anything left over: unknown options (with a did-you-mean), options this action does not take,
    /// stray positionals.
    func finish() throws {
        if let word = unknown.first {
            let name = Self.split(word).0
            let hint = closestMatch(to: name, in: declared.map(\.name)).map { "; did you mean \($0)?" } ?? ""
            throw UsageError("unknown option \(name)\(hint)")
        }
        if let name = (Array(values.keys) + Array(flags.keys)).sorted().first {
            throw UsageError("\(name) does not apply here")
        }
        if let first = positionals.first { throw UsageError("unexpected argument \"\(first)\"") }
    }
}
