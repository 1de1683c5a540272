// `deltahook status [--json]`: per object last poll / success / cursor / lag / error / events, per subscriber
// state / backlog / oldest pending / failed. Opens the store read-only (a WAL reader: never blocks the daemon)
// and works whether or not the daemon runs.
//
// The config is read as plain JSON for the state directory and the configured ids only: no validation and no
// secret resolution, so an operator's shell without $CREDENTIALS_DIRECTORY can run it and nothing secret is
// ever loaded, let alone printed.
import Core
import Daemon
import Foundation
import Store

struct StatusCommand: StoreCommand {
    static let name = "status"
    static let summary = "Show polling and delivery state from the store (read-only)"
    static let options: [OptionSpec] = [
        .flag("--json", "machine-readable: {\"generated_at\", \"daemon\", \"pending_total\", \"objects\", "
            + "\"subscribers\", \"storage\": {\"bytes\", \"file_bytes\", \"wal_bytes\", \"free_bytes\", \"auto_vacuum\", "
            + "\"oldest_event_at\", \"oldest_tombstone_at\"}}"),
        .stateDirectory,
    ]
    static let details = """
        Reads the store next to a running daemon without blocking it. The state directory is, in order:
        --state-directory, the config's "state_directory", $STATE_DIRECTORY, /var/lib/deltahook.
        Exit status: 0 shown, 1 the store cannot be read.
        """

    let common: StoreCommandOptions

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        common = try StoreCommandOptions(arguments: &arguments, context: context)
    }

    func run() async throws -> Int32 {
        let outline = common.outline()
        let path = common.storePath(outline)
        guard FileManager.default.fileExists(atPath: path) else {
            let message = "no store at \(path) yet: the daemon has not run with this state directory"
            if json {
                let value: JSONValue = ["generated_at": .string(Timestamps.rfc3339(Date())),
                                        "store": .string(path), "error": .string(message)]
                context.output.out(value.serialized() + "\n")
            } else {
                context.output.err("deltahook status: \(message)\n")
            }
            return ExitCode.failure
        }
        let report: StatusReport
        do {
            let store = try StateStore(path: path, mode: .readOnly)
            report = try StatusReport.collect(store: store, subscribers: outline.subscribers.map(\.id),
                                              objects: outline.objects.map { ($0.connection, $0.object) },
                                              now: Date())
        } catch {
            context.output.err("deltahook status: cannot read the store \(path): \(error)\n")
            return ExitCode.failure
        }
        let daemon = StatusCommand.daemonFacts(environment: context.environment)
        if json {
            var value = report.json(daemon: daemon)
            if case .object(var object) = value {
                object["store"] = .string(path)
                if let note = outline.note { object["note"] = .string(note) }
                value = .object(object)
            }
            context.output.out(value.serialized() + "\n")
        } else {
            if let note = outline.note { context.output.err("note: \(note)\n") }
            context.output.out("store: \(path)\n")
            if let line = daemon["metrics_file"]?.stringValue { context.output.out("metrics: \(line)\n") }
            context.output.out("\n" + report.text())
        }
        return ExitCode.ok
    }

    /// Whether a metrics textfile is present: a hint that the daemon runs, since it removes the file when it
    /// stops. Looked up where the daemon writes it ($RUNTIME_DIRECTORY, /run/deltahook), readable is enough.
    static func daemonFacts(environment: [String: String]) -> JSONValue {
        var candidates: [String] = []
        if let runtime = environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first { candidates.append(String(runtime)) }
        candidates.append("/run/deltahook")
        let path = candidates.map { $0 + "/deltahook.prom" }.first { FileManager.default.isReadableFile(atPath: $0) }
        return ["metrics_file": path.map(JSONValue.string) ?? .null]
    }
}
