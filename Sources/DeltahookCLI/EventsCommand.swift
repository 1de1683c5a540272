// `deltahook events list|show`: reads the outbox in the state directory (docs/DESIGN.md §7). Opens the store read-only,
// so it can run beside the daemon (WAL reader); reads the config only for `state_directory`, so it needs no
// secrets.
import Core
import Foundation
import Store

struct EventsCommand: StoreCommand {
    static let name = "events"
    static let summary = "List events in the outbox, or show one as a subscriber receives it"
    static let arguments = "list | show ID"
    static let options: [OptionSpec] = [
        .value("--connection", "C", "list: only this connection"),
        .value("--object", "O", "list: only this object"),
        .value("--type", "T", "list: only this exact event type (ticket.updated)"),
        .value("--since", "TIME", "list: an RFC 3339 time or a duration back from now (1h)"),
        .value("--limit", "N", "list: at most N events (default 50)"),
        .flag("--raw", "show: include \"raw\" (subscribers get it only with include_raw)"),
        .json, .stateDirectory,
    ]
    static let details = """
        events list    newest last.
        events show    the event body exactly as a subscriber receives it, then its delivery state per subscriber.
        """

    enum Action {
        case list(EventQuery)
        case show(id: String, raw: Bool)
    }

    let action: Action
    let common: StoreCommandOptions

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        common = try StoreCommandOptions(arguments: &arguments, context: context)
        let verb = try arguments.positional("list or show")
        switch verb {
        case "list":
            var query = EventQuery(limit: 50)
            query.connection = try arguments.option("--connection")
            query.object = try arguments.option("--object")
            query.type = try arguments.option("--type")
            if let since = try arguments.option("--since") {
                query.since = try StoreCLI.parseTime(since, option: "--since", now: Date())
            }
            query.limit = try StoreCLI.positiveInt(try arguments.option("--limit"), option: "--limit", default: 50)
            // The newest `limit` events, printed oldest first.
            query.newestFirst = true
            action = .list(query)
        case "show":
            let raw = arguments.flag("--raw")
            action = .show(id: try arguments.positional("an event id"), raw: raw)
        default:
            throw UsageError("unknown events action \"\(verb)\" (list or show)")
        }
    }

    func run() async throws -> Int32 {
        let outline = common.outline()
        let store: any StateStoring
        do {
            store = try common.openStore(outline, write: false)
        } catch let failure as CommandFailure {
            context.output.err("deltahook events: \(failure.message)\n")
            return ExitCode.failure
        }
        switch action {
        case .list(let query):
            let events = try store.events(query).reversed()
            if json {
                context.output.out(JSONValue.array(events.map(Self.summary)).serialized() + "\n")
            } else {
                for stored in events {
                    let e = stored.event
                    context.output.out("\(stored.seq)\t\(e.id)\t\(e.type)\t\(e.connection)/\(e.object)\t"
                        + "\(e.recordID)\t\(Timestamps.rfc3339(e.detectedAt))\n")
                }
            }
            return ExitCode.ok
        case .show(let id, let raw):
            guard let stored = try store.event(id: id) else {
                context.output.err("deltahook events: no event \(id)\n")
                return ExitCode.failure
            }
            let body = stored.event.webhookBody(includeRaw: raw)
            let deliveries = try store.deliveries(eventID: id)
            if json {
                context.output.out(JSONValue.object(JSONObject([
                    ("seq", .integer(stored.seq)), ("id", .string(id)), ("body", body),
                    ("deliveries", .array(deliveries.map(Self.delivery))),
                ])).serialized() + "\n")
            } else {
                context.output.out(body.serialized() + "\n")
                for d in deliveries {
                    var line = "delivery to \(d.subscriber): \(d.state.rawValue), \(d.attempts) attempt(s)"
                    if let status = d.lastStatus { line += ", last status \(status)" }
                    if let error = d.lastError { line += ", last error: \(error)" }
                    if let next = d.nextAttemptAt, d.state == .pending { line += ", next at \(Timestamps.rfc3339(next))" }
                    context.output.out(line + "\n")
                }
            }
            return ExitCode.ok
        }
    }

    /// One row of `events list --json`. `changed_fields` is the body's (provider field names, rule 5a); events
    /// stored before the store kept them fall back to the names of their model-level `changes`.
    static func summary(_ stored: StoredEvent) -> JSONValue {
        let e = stored.event
        let changedFields = e.changedFields ?? (e.changes ?? [:]).keys.sorted()
        return .object(JSONObject([
            ("seq", .integer(stored.seq)), ("id", .string(e.id)), ("type", .string(e.type)),
            ("connection", .string(e.connection)), ("object", .string(e.object)), ("record_id", .string(e.recordID)),
            ("occurred_at", e.occurredAt.map { .string(Timestamps.rfc3339($0)) } ?? .null),
            ("detected_at", .string(Timestamps.rfc3339Milliseconds(e.detectedAt))),
            ("changed_fields", .array(changedFields.map(JSONValue.string))),
        ]))
    }

    static func delivery(_ d: Delivery) -> JSONValue {
        .object(JSONObject([
            ("subscriber", .string(d.subscriber)), ("state", .string(d.state.rawValue)),
            ("attempts", .integer(Int64(d.attempts))),
            ("last_status", d.lastStatus.map { .integer(Int64($0)) } ?? .null),
            ("last_error", d.lastError.map(JSONValue.string) ?? .null),
            ("next_attempt_at", d.nextAttemptAt.map { .string(Timestamps.rfc3339($0)) } ?? .null),
            ("delivered_at", d.deliveredAt.map { .string(Timestamps.rfc3339($0)) } ?? .null),
        ]))
    }
}
