// `deltahook reconcile --connection C --object O [--apply-held]` (docs/DESIGN.md §2 rules 6 and 17).
//
// `--apply-held` applies a sweep the mass-delete guard held, once. It works whether or not the daemon runs: the
// poller lock says who polls the state directory. When `deltahook run` holds it, the command only marks the held
// sweep as requested and the daemon applies it at the object's next cycle (its poller, not this process, owns
// the object's writes). When nobody holds it, the command takes the lock and applies it itself. Either way the
// deletes go through the normal page commit: tombstones, `deleted` events and their delivery rows together, and
// only for records still live and not seen since the held sweep started.
//
// Without `--apply-held` it runs a full reconciliation sweep now (guarded like the daemon's), when no daemon polls.
//
// On a PostgreSQL store shared by several daemons the poller lock is replaced by the object's poll lease: the
// command joins the cluster as a short-lived node and asks for the lease; another node holding it plays the part
// of the running daemon above.
import Config
import Core
import Daemon
import Engine
import Foundation
import HTTPClient
import Logging
import Store

struct ReconcileCommand: Command {
    static let name = "reconcile"
    static let summary = "Run a reconciliation sweep of an object now, or apply a sweep the delete guard held"
    static let options: [OptionSpec] = [
        .value("--connection", "C", required: true, "the connection id from the config"),
        .value("--object", "O", required: true, "the object of that connection"),
        .flag("--apply-held", "apply the held sweep once (see above); without it, run a sweep now"),
        .flag("--json", "print {\"connection\", \"object\", \"action\", ...}"),
    ]
    static let details = """
        A sweep lists every id of the object at the provider and deletes the live records it did not list. The
        mass-delete guard (delete_guard) holds a sweep that would delete too many at once (more than
        max_fraction of the live records and more than min_records, or any sweep whose listing came back
        empty): nothing is deleted, and `deltahook status` shows "sweep held: would delete N of M".

        --apply-held applies the held sweep once, if the source really lost those records: each held record
        still live and not seen since the sweep gets a `deleted` event. With the daemon running this requests
        it and the daemon applies it at the object's next poll; otherwise it is applied now. Without
        --apply-held a sweep runs now (needs the daemon stopped; the daemon sweeps on its own every
        reconcile_every); a sweep the guard holds is reported, not applied.

        Exit status: 0 done (applied, requested, swept or held), 1 failure (no held sweep, provider error,
        daemon running for a sweep), 64 usage, 78 config.
        """

    let connection: String
    let object: String
    let applyHeld: Bool
    let json: Bool
    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        connection = try arguments.requiredOption("--connection")
        object = try arguments.requiredOption("--object")
        applyHeld = arguments.flag("--apply-held")
        json = arguments.flag("--json")
        self.context = context
    }

    func run() async throws -> Int32 {
        let (config, connectionConfig, logger, scrubber) = try PollerCLI.setUp(context: context, connection: connection,
                                                                               object: object)
        let location = StoreLocation(directory: config.stateDirectory, store: config.store)
        let store = try StoreCLI.openStore(location, write: true)

        // Who polls the object owns its writes: on SQLite the daemon holding the state directory's poller lock, on
        // a shared store the node holding the object's poll lease (this command joins to ask for it).
        var lock: PollerLock? = nil
        if location.isShared {
            _ = try PollerCLI.joinAsTransientNode(store, config: config, command: "reconcile")
            let lease = try store.acquirePollLease(connection: connection, object: object)
            guard lease.mayPoll else {
                PollerCLI.leave(store, logger: logger)
                return try requestFromDaemon(store: store, poller: "another node polls \(connection)/\(object) "
                    + "(\(lease))")
            }
        } else {
            lock = try PollerLock.acquire(directory: config.stateDirectory)
            guard lock != nil else {
                return try requestFromDaemon(store: store, poller: "deltahook run is polling \(config.stateDirectory)")
            }
        }
        defer {
            withExtendedLifetime(lock) {}
            if location.isShared { PollerCLI.leave(store, logger: logger) }
        }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        // A sweep's requests count against the connection's budget (docs/DESIGN.md §2 rule 22).
        let targets = try Wiring.targets(for: connectionConfig, transport: transport, logger: logger,
                                           authState: store, budget: StoreRequestBudget(store: store, logger: logger))
        guard let target = targets.first(where: { $0.plan.descriptor.object == object }) else {
            throw CommandFailure("the provider built no adapter for \(connection)/\(object)")
        }
        let log = logger.with([.connection: connection, .object: object])
        let router = Wiring.router(for: config.subscribers)
        let reconciler = Reconciler(store: store)
        var report = CycleReport(connection: connection, object: object, dryRun: false)

        if applyHeld {
            let held = try store.heldSweep(connection: connection, object: object)
            guard let held,
                  let deleted = try await reconciler.applyHeldSweep(target, router: router, report: &report,
                                                                    logger: log)
            else { throw noHeldSweep() }
            let skipped = held.wouldDelete - deleted
            print(action: "applied", ["deleted": .integer(Int64(deleted)), "held": StatusReport.json(held)],
                  text: "applied the held sweep of \(connection)/\(object): \(deleted) deleted event"
                      + "\(deleted == 1 ? "" : "s") committed (\(held.wouldDelete) held"
                      + (skipped > 0 ? ", \(skipped) came back or were deleted since" : "")
                      + "); `deltahook run` delivers them")
            return ExitCode.ok
        }
        do {
            try await reconciler.sweep(target, router: router, report: &report, logger: log)
        } catch {
            throw CommandFailure("sweep of \(connection)/\(object) failed, nothing deleted: "
                + scrubber.scrub(String(describing: error)))
        }
        if let held = report.sweepHeld {
            print(action: "held", ["listed": .integer(Int64(report.reconcileIDs)), "held": StatusReport.json(held)],
                  text: "sweep held: would delete \(held.wouldDelete) of \(held.live) live records of "
                      + "\(connection)/\(object) (listed \(held.listed)); nothing deleted. If the source really lost "
                      + "them: deltahook reconcile --connection \(connection) --object \(object) --apply-held")
        } else {
            print(action: "swept", ["listed": .integer(Int64(report.reconcileIDs)),
                                    "deleted": .integer(Int64(report.deletions))],
                  text: "swept \(connection)/\(object): \(report.reconcileIDs) ids listed, \(report.deletions) deleted")
        }
        return ExitCode.ok
    }

    /// A daemon polls the object (`poller` says which): only it may write the object's state, so ask it.
    private func requestFromDaemon(store: any StateStoring, poller: String) throws -> Int32 {
        guard applyHeld else {
            throw CommandFailure("\(poller); it sweeps every reconcile_every. "
                + "Stop it to sweep now, or use `deltahook poll-once --reconcile` while it is stopped")
        }
        guard try store.requestHeldSweepApply(connection: connection, object: object),
              let held = try store.heldSweep(connection: connection, object: object)
        else { throw noHeldSweep() }
        print(action: "requested", ["held": StatusReport.json(held)],
              text: "requested: the running daemon applies the held sweep of \(connection)/\(object) (would delete "
                  + "\(held.wouldDelete) of \(held.live)) at the object's next poll; `deltahook status` stops "
                  + "showing it once applied")
        return ExitCode.ok
    }

    private func noHeldSweep() -> CommandFailure {
        CommandFailure("no held sweep for \(connection)/\(object) (`deltahook status` shows held sweeps)")
    }

    private func print(action: String, _ fields: KeyValuePairs<String, JSONValue>, text: String) {
        if json {
            var object = JSONObject([("connection", .string(connection)), ("object", .string(self.object)),
                                     ("action", .string(action))])
            for (key, value) in fields { object[key] = value }
            context.output.out(JSONValue.object(object).serialized() + "\n")
        } else {
            context.output.out(text + "\n")
        }
    }
}
