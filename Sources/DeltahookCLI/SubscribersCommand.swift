// `deltahook subscribers list|pause|resume`: subscriber states (active, paused, disabled) with their backlog.
// pause/resume write the store; the running daemon applies them at its next store poll (2 s).
import Core
import Foundation
import Store

struct SubscribersCommand: StoreCommand {
    static let name = "subscribers"
    static let summary = "List subscribers with state and backlog; pause or resume one"
    static let arguments = "list | pause S | resume S"
    static let options: [OptionSpec] = [
        .value("--reason", "TEXT", "pause: why (shown by list and status)"), .json, .stateDirectory,
    ]
    static let details = """
        list    every configured subscriber (and any the store knows): state, reason, failing since, pending,
                oldest pending, failed.
        pause   stops deliveries to S; events keep accumulating (nothing is dropped). An operator pause is
                never probed: resume it yourself.
        resume  makes S active again (also after a 410 disable or an automatic pause) and clears its failure
                clock; the backlog drains in order.
        The running daemon applies pause/resume within its store poll interval (2 s).
        Exit status: 0 done, 1 store not readable/writable, 64 usage.
        """

    enum Mode { case list, pause(String, reason: String?), resume(String) }

    let mode: Mode
    let common: StoreCommandOptions

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        common = try StoreCommandOptions(arguments: &arguments, context: context)
        switch arguments.nextPositional() {
        case "list": mode = .list
        case "pause":
            let reason = try arguments.option("--reason")
            mode = .pause(try arguments.positional("subscriber id"), reason: reason)
        case "resume": mode = .resume(try arguments.positional("subscriber id"))
        case let other?: throw UsageError("unknown subcommand \"\(other)\" (expected list, pause or resume)")
        case nil: throw UsageError("missing subcommand (list, pause or resume)")
        }
    }

    func run() async throws -> Int32 {
        let outline = common.outline()
        let location = try common.storeLocation(outline)
        switch mode {
        case .list:
            let store = try StoreCLI.openStore(location, write: false)
            var ids = outline.subscribers.map(\.id)
            let stored = try store.subscribers()
            for status in stored where !ids.contains(status.id) { ids.append(status.id) }
            let byID = Dictionary(stored.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            var rows: [JSONValue] = []
            var table: [[String]] = []
            for id in ids {
                let status = byID[id]
                let backlog = try store.backlog(subscriber: id)
                let configured = outline.subscriber(id) != nil
                var object = JSONObject()
                object["id"] = .string(id)
                object["configured"] = .bool(configured)
                object["url"] = outline.subscriber(id)?.url.map { .string($0) } ?? .null
                object["state"] = .string((status?.state ?? .active).rawValue)
                object["reason"] = status?.reason.map { .string($0) } ?? .null
                object["failing_since"] = status?.failingSince.map { .string(Timestamps.rfc3339($0)) } ?? .null
                object["pending"] = .integer(Int64(backlog.pending))
                object["oldest_pending_at"] = backlog.oldestPendingCreatedAt.map { .string(Timestamps.rfc3339($0)) } ?? .null
                object["failed"] = .integer(Int64(backlog.failed))
                rows.append(.object(object))
                table.append([id + (configured ? "" : " (not in config)"), (status?.state ?? .active).rawValue,
                              String(backlog.pending), StoreCLI.time(backlog.oldestPendingCreatedAt),
                              String(backlog.failed), StoreCLI.time(status?.failingSince),
                              StoreCLI.short(status?.reason, 70)])
            }
            if json {
                context.output.out(JSONValue.array(rows).serialized() + "\n")
            } else if table.isEmpty {
                context.output.out("no subscribers\n")
            } else {
                context.output.out(StoreCLI.table(
                    ["SUBSCRIBER", "STATE", "PENDING", "OLDEST PENDING", "FAILED", "FAILING SINCE", "REASON"], table))
            }
        case .pause(let id, let reason):
            try requireKnown(id, outline: outline)
            let store = try StoreCLI.openStore(location, write: true)
            let text = "paused by operator" + (reason.map { ": \($0)" } ?? "")
            try store.setSubscriberState(id: id, state: .paused, reason: text, at: Date())
            report(id, state: .paused, message: "paused \(id); events keep accumulating until `deltahook subscribers resume \(id)`")
        case .resume(let id):
            try requireKnown(id, outline: outline)
            let store = try StoreCLI.openStore(location, write: true)
            let now = Date()
            try store.setSubscriberState(id: id, state: .active, reason: nil, at: now)
            try store.setSubscriberFailingSince(id: id, nil, at: now)
            let pending = try store.backlog(subscriber: id).pending
            report(id, state: .active, message: "resumed \(id); \(pending) pending deliver\(pending == 1 ? "y" : "ies") drain in order")
        }
        return ExitCode.ok
    }

    private func requireKnown(_ id: String, outline: StoreCLI.Outline) throws {
        guard outline.readable else { return }  // no config to check against: trust the operator
        guard outline.subscriber(id) != nil else {
            let known = outline.subscribers.map(\.id).joined(separator: ", ")
            throw UsageError("no subscriber \"\(id)\" in \(context.configPath) (known: \(known.isEmpty ? "none" : known))")
        }
    }

    private func report(_ id: String, state: SubscriberState, message: String) {
        if json {
            context.output.out(JSONValue.object(JSONObject([("id", .string(id)), ("state", .string(state.rawValue))]))
                .serialized() + "\n")
        } else {
            context.output.out(message + "\n")
        }
    }
}
