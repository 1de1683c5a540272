// `deltahook redeliver EVENT [--subscriber S]`: sends one event again with its original `webhook-id`, so
// receivers can deduplicate. Writes the store; the running daemon picks it up at its next store poll.
import Core
import Foundation
import Store

struct RedeliverCommand: Command {
    static let name = "redeliver"
    static let summary = "Deliver one event again (same webhook-id), to every or one subscriber"
    static let arguments = "EVENT_ID"
    static let options: [OptionSpec] = [
        .value("--subscriber", "S", "only this subscriber (even one added since the event)"), .json, .stateDirectory,
    ]
    static let details = """
        Re-arms the event's deliveries: pending, attempts reset, due now. Without --subscriber every subscriber
        the event was routed to gets it again; with it, that subscriber only (even one added since).
        The running daemon notices within its store poll interval (2 s).
        Exit status: 0 re-armed, 1 unknown event or store not writable, 64 usage.
        """

    let eventID: String
    let subscriber: String?
    let json: Bool
    let stateDirectory: String?
    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        json = arguments.flag("--json")
        subscriber = try arguments.option("--subscriber")
        stateDirectory = try arguments.option("--state-directory")
        eventID = try arguments.positional("EVENT_ID")
        self.context = context
    }

    func run() async throws -> Int32 {
        let outline = StoreCLI.outline(context: context)
        let store = try StoreCLI.openStore(
            path: StoreCLI.storePath(context: context, outline: outline, override: stateDirectory), write: true)
        let count: Int
        do {
            count = try store.redeliver(eventID: eventID, subscribers: subscriber.map { [$0] }, now: Date())
        } catch let error as StoreError where error.code == .notFound {
            throw CommandFailure("no event with id \(eventID) (list events with `deltahook events list`)")
        }
        if json {
            context.output.out(JSONValue.object(JSONObject([
                ("event_id", .string(eventID)), ("rearmed", .integer(Int64(count))),
            ])).serialized() + "\n")
        } else {
            context.output.out("re-armed \(count) deliver\(count == 1 ? "y" : "ies") of \(eventID); "
                + "the daemon sends within its store poll interval\n")
        }
        return ExitCode.ok
    }
}
