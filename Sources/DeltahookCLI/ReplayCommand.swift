// `deltahook replay --subscriber S --since TIME [--until TIME]`: sends a subscriber every event of a time
// window again (or for the first time), with the original `webhook-id`s — the recovery after a receiver lost
// data. Routing follows the subscriber's configured `events` globs and `connections`.
import Core
import Foundation
import Store
import Config

struct ReplayCommand: StoreCommand {
    static let name = "replay"
    static let summary = "Re-send a subscriber's events of a time window (original webhook-ids)"
    static let options: [OptionSpec] = [
        .value("--subscriber", "S", required: true, "the subscriber to send the window to"),
        .value("--since", "TIME", required: true, "start of the window: RFC 3339 or a duration ago (2h)"),
        .value("--until", "TIME", "end of the window (exclusive); default now"),
        .json, .stateDirectory,
    ]
    static let details = """
        TIME is RFC 3339 (2026-11-29T06:00:00Z) or a duration ago (2h, 30m, 5d). Events detected in
        [since, until) that match the subscriber's "events" and "connections" in the config get a pending
        delivery due now (existing ones are re-armed). Per-record order is kept. The running daemon notices
        within its store poll interval (2 s).
        Exit status: 0 done, 1 store not writable, 64 usage (unknown subscriber, bad time), 78 config unreadable.
        """

    let subscriber: String
    let since: Date
    let until: Date?
    let common: StoreCommandOptions

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        common = try StoreCommandOptions(arguments: &arguments, context: context)
        subscriber = try arguments.requiredOption("--subscriber")
        let sinceText = try arguments.requiredOption("--since")
        let now = Date()
        since = try StoreCLI.parseTime(sinceText, option: "--since", now: now)
        until = try (try arguments.option("--until")).map { try StoreCLI.parseTime($0, option: "--until", now: now) }
        if let until, until <= since { throw UsageError("--until must be after --since") }
    }

    func run() async throws -> Int32 {
        let outline = common.outline()
        guard outline.readable else {
            throw ConfigError(file: context.configPath, problems: [ConfigProblem(
                path: "", message: "cannot read \(context.configPath) as JSON: replay needs the subscriber's events "
                    + "and connections (pass --config PATH)")])
        }
        guard let target = outline.subscriber(subscriber) else {
            let known = outline.subscribers.map(\.id).joined(separator: ", ")
            throw UsageError("no subscriber \"\(subscriber)\" in \(context.configPath) (known: \(known.isEmpty ? "none" : known))")
        }
        let store = try common.openStore(outline, write: true)
        let until = self.until
        let count = try store.replay(subscriber: subscriber, since: since, now: Date(),
                                     pageSize: StateStore.replayPageSize) { summary in
            if let until, summary.detectedAt >= until { return false }
            return target.accepts(summary)
        }
        if json {
            context.output.out(JSONValue.object(JSONObject([
                ("subscriber", .string(subscriber)), ("since", .string(Timestamps.rfc3339(since))),
                ("until", until.map { .string(Timestamps.rfc3339($0)) } ?? .null), ("rearmed", .integer(Int64(count))),
            ])).serialized() + "\n")
        } else {
            context.output.out("replaying \(count) event\(count == 1 ? "" : "s") to \(subscriber) "
                + "(detected since \(Timestamps.rfc3339(since))\(until.map { " until \(Timestamps.rfc3339($0))" } ?? ""))\n")
        }
        return ExitCode.ok
    }
}
