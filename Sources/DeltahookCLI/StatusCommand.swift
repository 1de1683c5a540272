// `deltahook status [--json]`: per object last poll / success / cursor / lag / error / events, per subscriber
// state / backlog / oldest pending / failed; the nodes sharing the store and each object's poll lease holder; each
// budgeted connection's requests today, projection and effective intervals (docs/DESIGN.md §2 rule 22).
// Opens the store read-only (a WAL reader, or read-only PostgreSQL transactions: never blocks a daemon) and works
// whether or not a daemon runs.
//
// The config is read as plain JSON for the store's location and the configured ids only: no validation, and the
// one secret resolved is a PostgreSQL store.url ($DELTAHOOK_STORE_URL wins, so an operator's shell without
// $CREDENTIALS_DIRECTORY can run it); that URL is registered with the scrubber and printed only redacted.
import Core
import Daemon
import Foundation
import Store

struct StatusCommand: StoreCommand {
    static let name = "status"
    static let summary = "Show polling and delivery state from the store (read-only)"
    static let options: [OptionSpec] = [
        .flag("--json", "machine-readable: {\"generated_at\", \"daemon\", \"pending_total\", \"objects\", "
            + "\"subscribers\", \"nodes\", \"storage\": {\"bytes\", \"file_bytes\", \"wal_bytes\", \"free_bytes\", \"auto_vacuum\", "
            + "\"oldest_event_at\", \"oldest_tombstone_at\"}, \"budgets\": [{\"connection\", \"per_day\", \"used_today\", "
            + "\"projected_today\", \"runs_out_at\", \"objects\": [{\"object\", \"configured_interval_seconds\", "
            + "\"effective_interval_seconds\", \"requests_per_cycle\"}]}]}"),
        .stateDirectory,
    ]
    static let details = """
        Reads the store next to running daemons without blocking them. With the config's "store": {"backend":
        "postgres"} it reads that database: $DELTAHOOK_STORE_URL, when set, wins over the config's "url" reference
        (an operator's shell often cannot read the unit's credentials). Otherwise, and whenever --state-directory
        is given (an explicit override: that directory's SQLite file), the state directory is, in order:
        --state-directory, the config's "state_directory", $STATE_DIRECTORY, /var/lib/deltahook.
        Lists the daemons sharing the store (nodes: id, host, pid, version, last heartbeat, alive within the
        config's lease_ttl) and, per object, the node holding its poll lease (LEASE column; "-" for none).
        For each connection with a "budget" (request budgets, docs/DESIGN.md rule 22): requests used today of
        per_day (all nodes), the day's projection at the current plan, when the budget runs out at the current
        rate ("not today") and each object's effective interval (the configured one when stretched).
        Exit status: 0 shown, 1 the store cannot be read.
        """

    let common: StoreCommandOptions

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        common = try StoreCommandOptions(arguments: &arguments, context: context)
    }

    func run() async throws -> Int32 {
        let outline = common.outline()
        let location: StoreLocation
        do {
            location = try common.storeLocation(outline)
        } catch let failure as CommandFailure {
            return fail(failure.message, store: nil)
        }
        let store: any StateStoring
        if case .sqlite(let path) = location, !FileManager.default.fileExists(atPath: path) {
            return fail("no store at \(path) yet: the daemon has not run with this state directory", store: location)
        }
        do {
            store = try StoreCLI.openStore(location, write: false)
        } catch let failure as CommandFailure {
            return fail(failure.message, store: location)
        }
        let report: StatusReport
        do {
            report = try StatusReport.collect(store: store, subscribers: outline.subscribers.map(\.id),
                                              objects: outline.objects.map { ($0.connection, $0.object) },
                                              now: Date(), aliveWithin: outline.store.leaseTTL ?? .seconds(30))
        } catch {
            context.output.err("deltahook status: cannot read the store \(location): \(error)\n")
            return ExitCode.failure
        }
        let daemon = StatusCommand.daemonFacts(environment: context.environment)
        if json {
            var value = report.json(daemon: daemon)
            if case .object(var object) = value {
                object["store"] = .string(location.description)
                if let note = outline.note { object["note"] = .string(note) }
                value = .object(object)
            }
            context.output.out(value.serialized() + "\n")
        } else {
            if let note = outline.note { context.output.err("note: \(note)\n") }
            context.output.out("store: \(location)\n")
            if let line = daemon["metrics_file"]?.stringValue { context.output.out("metrics: \(line)\n") }
            context.output.out("\n" + report.text())
        }
        return ExitCode.ok
    }

    /// Reports a store that cannot be located or opened: `{"error"}` on stdout with `--json` (scripts parse one
    /// document either way), a line on stderr otherwise; exit status 1.
    private func fail(_ message: String, store: StoreLocation?) -> Int32 {
        if json {
            let value: JSONValue = ["generated_at": .string(Timestamps.rfc3339(Date())),
                                    "store": store.map { .string($0.description) } ?? .null, "error": .string(message)]
            context.output.out(value.serialized() + "\n")
        } else {
            context.output.err("deltahook status: \(message)\n")
        }
        return ExitCode.failure
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
