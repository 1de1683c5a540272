// `deltahook poll-once`: one poll cycle of a connection's objects through the real engine and store (docs/DESIGN.md §7),
// printing the events it committed — or, with --dry-run, the events it would commit without writing anything.
import Config
import Core
import Daemon
import Engine
import Foundation
import HTTPClient
import Logging
import Store

struct PollOnceCommand: Command {
    static let name = "poll-once"
    static let summary = "Run one poll cycle of a connection now and print the events it committed"
    static let options: [OptionSpec] = [
        .value("--connection", "C", required: true, "the connection id from the config"),
        .value("--object", "O", "only this object of the connection"),
        .flag("--dry-run", "read and diff, write nothing; prints the events that would be committed"),
        .flag("--reconcile", "run the reconciliation sweep in this cycle even if reconcile_every has not passed"),
        .flag("--json", "print {\"ok\": …, \"reports\": [{…, \"events\": [<webhook body>, …]}]}"),
    ]
    static let details = """
        Runs one cycle per object of connection C (or only object O): the delta scan from the stored cursor,
        the delete feed where the provider has one, and a reconciliation sweep when due. Events are committed
        to the outbox in the state directory exactly as the daemon would commit them (the running daemon's
        dispatcher delivers them). Exit 0 when every object polled, 1 when one failed (rate limit, auth,
        provider error: the cursor stays where it was), 64 for usage mistakes, 78 for config problems.
        """

    let connection: String
    let object: String?
    let dryRun: Bool
    let reconcile: Bool
    let json: Bool
    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        connection = try arguments.requiredOption("--connection")
        object = try arguments.option("--object")
        dryRun = arguments.flag("--dry-run")
        reconcile = arguments.flag("--reconcile")
        json = arguments.flag("--json")
        self.context = context
    }

    func run() async throws -> Int32 {
        let (config, connectionConfig, logger, scrubber) = try PollerCLI.setUp(context: context, connection: connection,
                                                                               object: object)

        let location = StoreLocation(directory: config.stateDirectory, store: config.store)
        if !location.isShared {
            for warning in try PrivateFiles.prepareStateDirectory(config.stateDirectory) {
                logger.warning("state directory or store file was readable by others; tightened", ["DETAIL": warning])
            }
        }
        // A cycle that writes must not interleave its cursor writes with a running daemon's; a dry run writes
        // nothing and may run beside it. On a shared store the poll leases say who polls (joined below).
        var pollerLock: PollerLock? = nil
        if !dryRun, !location.isShared {
            pollerLock = try PollerLock.acquire(directory: config.stateDirectory)
            guard pollerLock != nil else {
                context.output.err("deltahook poll-once: deltahook run is polling \(config.stateDirectory); use "
                    + "--dry-run beside it, or stop the daemon first\n")
                return ExitCode.failure
            }
        }
        defer { withExtendedLifetime(pollerLock) {} }
        let store: any StateStoring
        do {
            store = try location.open(write: true)
        } catch {
            throw CommandFailure("cannot open the store \(location): \(error)")
        }
        if !dryRun, location.isShared {
            _ = try PollerCLI.joinAsTransientNode(store, config: config, command: "poll-once")
        }
        defer { if !dryRun, location.isShared { PollerCLI.leave(store, logger: logger) } }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }

        // The provider charges an operator's poll like any other (a dry run too): it counts against the
        // connection's budget and is refused when the budget is spent (docs/DESIGN.md §2 rule 22).
        var targets = try Wiring.targets(for: connectionConfig, transport: transport, logger: logger,
                                           authState: store, budget: StoreRequestBudget(store: store, logger: logger))
        if reconcile {
            for i in targets.indices { targets[i].plan.reconcileEvery = .zero }
        }
        let engine = Engine(store: store, logger: logger, router: Wiring.router(for: config.subscribers))
        engine.update(targets: targets)

        let reports: [CycleReport]
        var failure: PollOnceFailure?
        do {
            reports = try await engine.pollOnce(connection: connection, object: object, dryRun: dryRun)
        } catch let error as PollOnceFailure {
            failure = error
            reports = error.completed
        }
        await engine.shutdown()
        // Skipped for another node's lease is not done: exit 1 so a script does not take it for a poll.
        var skipped = false
        for report in reports {
            if let lease = report.leaseOutcome, !lease.mayPoll {
                skipped = true
                context.output.err("deltahook poll-once: \(report.connection)/\(report.object) skipped: another "
                    + "node polls it (\(lease)); use --dry-run beside it, or stop the daemons first\n")
            }
        }
        try render(reports: reports, failure: failure, store: store, scrubber: scrubber)
        return failure == nil && !skipped ? ExitCode.ok : ExitCode.failure
    }

    private func eventBodies(_ report: CycleReport, store: any StateStoring) throws -> [JSONValue] {
        if report.dryRun { return report.previewEvents.map { $0.webhookBody(includeRaw: false) } }
        return try report.events.compactMap { try store.event(id: $0.id)?.event.webhookBody(includeRaw: false) }
    }

    private func render(reports: [CycleReport], failure: PollOnceFailure?, store: any StateStoring,
                       scrubber: SecretScrubber) throws {
        let errorText = failure.map { scrubber.scrub(String(describing: $0)) }
        if json {
            var object = JSONObject()
            object["ok"] = .bool(failure == nil)
            object["dry_run"] = .bool(dryRun)
            object["reports"] = .array(try reports.map { try reportJSON($0, store: store) })
            if let failure, let errorText {
                object["error"] = .string(errorText)
                object["failed_object"] = .string(failure.object)
                if case ProviderError.rateLimited(let wait, _) = failure.underlying {
                    object["retry_after_seconds"] = .double(wait.seconds)
                }
            }
            context.output.out(JSONValue.object(object).serialized() + "\n")
            return
        }
        for report in reports {
            // The engine's one-line summary (pages, records, events per type, initial sync, resume, 304, …).
            context.output.out(report.description + "\n")
            for event in report.events {
                var text = "  \(event.id)  \(event.type)  record \(event.recordID)"
                if !event.changedFields.isEmpty { text += "  changed: " + event.changedFields.joined(separator: ", ") }
                context.output.out(text + "\n")
            }
            for warning in report.warnings { context.output.out("  warning: \(warning)\n") }
        }
        if let errorText { context.output.err("deltahook poll-once: \(errorText)\n") }
    }

    private func reportJSON(_ report: CycleReport, store: any StateStoring) throws -> JSONValue {
        var object = JSONObject()
        object["connection"] = .string(report.connection)
        object["object"] = .string(report.object)
        object["dry_run"] = .bool(report.dryRun)
        object["initial_sync"] = .bool(report.initialSync)
        object["silent"] = .bool(report.silent)
        object["resumed"] = .bool(report.resumed)
        object["not_modified"] = .bool(report.notModified)
        object["pages"] = .integer(Int64(report.pages))
        object["records"] = .integer(Int64(report.records))
        object["unchanged"] = .integer(Int64(report.unchanged))
        object["suppressed"] = .integer(Int64(report.suppressed))
        object["event_count"] = .integer(Int64(report.eventCount))
        object["deletions"] = .integer(Int64(report.deletions))
        object["reconciled"] = .bool(report.reconciled)
        object["reconcile_error"] = report.reconcileError.map(JSONValue.string) ?? .null
        object["rejected"] = .integer(Int64(report.rejected))
        object["quarantined"] = .integer(Int64(report.quarantined))
        object["sweep_held"] = report.sweepHeld.map(StatusReport.json) ?? .null
        object["watermark"] = report.watermark.map { .string(Timestamps.rfc3339Milliseconds($0)) } ?? .null
        object["duplicates"] = .array(report.duplicates.map(JSONValue.string))
        object["warnings"] = .array(report.warnings.map(JSONValue.string))
        object["events"] = .array(try eventBodies(report, store: store))
        return .object(object)
    }
}
