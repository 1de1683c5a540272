// `deltahook redeliver EVENT [--subscriber S]`: sends one event again with its original `webhook-id`, so
// receivers can deduplicate. Writes the store; the running daemon picks it up at its next store poll.
import Core
import Foundation
import Store

struct RedeliverCommand: StoreCommand {
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
    let common: StoreCommandOptions

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        common = try StoreCommandOptions(arguments: &arguments, context: context)
        subscriber = try arguments.option("--subscriber")
        eventID = try arguments.positional("EVENT_ID")
    }

    func run() async throws -> Int32 {
        let outline = common.outline()
        let store = try common.openStore(outline, write: true)
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
