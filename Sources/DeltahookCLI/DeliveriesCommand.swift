// `deltahook deliveries list|show`: what was sent where, what failed and why (docs/DESIGN.md §7). Read-only: opens the
// store as a WAL reader, so it never blocks the daemon.
import Core
import Foundation
import Store

struct DeliveriesCommand: StoreCommand {
    static let name = "deliveries"
    static let summary = "List deliveries, or show one event's deliveries with their attempts"
    static let arguments = "list | show EVENT_ID"
    static let options: [OptionSpec] = [
        .value("--subscriber", "S", "list: only this subscriber"),
        .flag("--failed", "list: only deliveries that exhausted their schedule"),
        .value("--limit", "N", "list: at most N rows (default 50)"),
        .json, .stateDirectory,
    ]
    static let details = """
        list   newest first: id, event, subscriber, state, attempts, next attempt, last status, last error.
        show   every subscriber's delivery of the event with its attempts (newest first): time, HTTP status,
               latency, error and the first bytes of the response body.
        Exit status: 0 shown, 1 the store cannot be read or the event is unknown, 64 usage.
        """

    enum Mode { case list(subscriber: String?, failed: Bool, limit: Int), show(eventID: String) }

    let mode: Mode
    let common: StoreCommandOptions

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        common = try StoreCommandOptions(arguments: &arguments, context: context)
        switch arguments.nextPositional() {
        case "list":
            let subscriber = try arguments.option("--subscriber")
            let failed = arguments.flag("--failed")
            let limit = try StoreCLI.positiveInt(try arguments.option("--limit"), option: "--limit", default: 50)
            mode = .list(subscriber: subscriber, failed: failed, limit: limit)
        case "show":
            mode = .show(eventID: try arguments.positional("EVENT_ID"))
        case let other?:
            throw UsageError("unknown subcommand \"\(other)\" (expected list or show)")
        case nil:
            throw UsageError("missing subcommand (list or show)")
        }
    }

    func run() async throws -> Int32 {
        let outline = common.outline()
        let store = try common.openStore(outline, write: false)
        switch mode {
        case .list(let subscriber, let failed, let limit):
            let rows = try store.deliveries(subscriber: subscriber, state: failed ? .failed : nil, beforeID: nil,
                                            limit: limit)
            if json {
                context.output.out(JSONValue.array(rows.map(StoreCLI.deliveryJSON)).serialized() + "\n")
            } else if rows.isEmpty {
                context.output.out("no deliveries\n")
            } else {
                context.output.out(StoreCLI.table(
                    ["ID", "EVENT", "TYPE", "SUBSCRIBER", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "STATUS", "ERROR"],
                    rows.map { d in
                        [String(d.id), d.eventID, d.eventType, d.subscriber, d.state.rawValue, String(d.attempts),
                         d.state == .pending ? StoreCLI.time(d.nextAttemptAt) : "-",
                         d.lastStatus.map(String.init) ?? "-", StoreCLI.short(d.lastError)]
                    }))
            }
        case .show(let eventID):
            let deliveries = try store.deliveries(eventID: eventID)
            guard try !deliveries.isEmpty || store.event(id: eventID) != nil else {
                throw CommandFailure("no event with id \(eventID) (list events with `deltahook events list`)")
            }
            let withAttempts = try deliveries.map { ($0, try store.attempts(deliveryID: $0.id, limit: 50)) }
            if json {
                let value = JSONValue.object(JSONObject([
                    ("event_id", .string(eventID)),
                    ("deliveries", .array(withAttempts.map { delivery, attempts in
                        guard case .object(var object) = StoreCLI.deliveryJSON(delivery) else { return .null }
                        object["attempt_history"] = .array(attempts.map(StoreCLI.attemptJSON))
                        return .object(object)
                    })),
                ]))
                context.output.out(value.serialized() + "\n")
            } else if withAttempts.isEmpty {
                context.output.out("event \(eventID) was routed to no subscriber\n")
            } else {
                var text = ""
                for (d, attempts) in withAttempts {
                    text += "\(d.subscriber): \(d.state.rawValue), \(d.attempts) attempt(s)"
                    if d.state == .pending { text += ", next at \(StoreCLI.time(d.nextAttemptAt))" }
                    if let delivered = d.deliveredAt { text += ", delivered at \(StoreCLI.time(delivered))" }
                    text += "\n"
                    if !attempts.isEmpty {
                        text += StoreCLI.table(["  ATTEMPTED", "STATUS", "LATENCY", "ERROR", "RESPONSE"],
                                                  attempts.map { a in
                            ["  " + Timestamps.rfc3339Milliseconds(a.attemptedAt), a.httpStatus.map(String.init) ?? "-",
                             "\(a.latencyMilliseconds) ms", StoreCLI.short(a.error, 70),
                             StoreCLI.short(a.responseExcerpt, 40)]
                        })
                    }
                }
                context.output.out(text)
            }
        }
        return ExitCode.ok
    }
}
