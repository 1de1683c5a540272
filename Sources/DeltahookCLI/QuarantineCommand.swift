// `deltahook quarantine list|clear` (docs/DESIGN.md §2 rule 16): the records an adapter could not accept, kept
// in the store instead of stalling their object. `list` opens the store read-only (beside the daemon); `clear`
// writes it, for an operator who fixed the record at the source. Like `status`, it reads the config only for
// `state_directory`, so it needs no secrets.
import Core
import Foundation
import Store

struct QuarantineCommand: StoreCommand {
    static let name = "quarantine"
    static let summary = "List records the adapters rejected (quarantined), or clear them"
    static let arguments = "list | clear"
    static let options: [OptionSpec] = [
        .value("--connection", "C", "only this connection (required by clear)"),
        .value("--object", "O", "only this object"),
        .value("--record", "KEY", "clear: only this record key (needs --object)"),
        .value("--limit", "N", "list: at most N rows (default 100)"),
        .json, .stateDirectory,
    ]
    static let details = """
        A record the provider adapter cannot accept (bad id, timestamp out of range, a field its model needs
        unparseable, larger than the response cap) is quarantined instead of failing its page on every cycle:
        the scan goes on past it. It leaves quarantine by itself when it later arrives valid.

        list    oldest first: connection, object, record key (the id, or the position in its page when no id
                could be read), first and last seen, how often, and why. --json adds the first 4 KB of the
                record's raw text ("raw_excerpt"). --limit defaults to 100.
        clear   removes rows of connection C (of object O, of record KEY; --record needs --object), after the
                record was fixed or deleted at the source. A record the source still serves broken is
                quarantined again (and logged again) by the next scan that reads it.
        Exit status: 0 done, 1 store not readable/writable, 64 usage.
        """

    enum Mode {
        case list(connection: String?, object: String?, limit: Int)
        case clear(connection: String, object: String?, record: String?)
    }

    let mode: Mode
    let common: StoreCommandOptions

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        common = try StoreCommandOptions(arguments: &arguments, context: context)
        let connection = try arguments.option("--connection")
        let object = try arguments.option("--object")
        switch arguments.nextPositional() {
        case "list":
            let limit = try StoreCLI.positiveInt(try arguments.option("--limit"), option: "--limit", default: 100)
            mode = .list(connection: connection, object: object, limit: limit)
        case "clear":
            let record = try arguments.option("--record")
            guard let connection else { throw UsageError("quarantine clear needs --connection C") }
            if record != nil && object == nil { throw UsageError("--record KEY needs --object O (keys are per object)") }
            mode = .clear(connection: connection, object: object, record: record)
        case let other?: throw UsageError("unknown subcommand \"\(other)\" (expected list or clear)")
        case nil: throw UsageError("missing subcommand (list or clear)")
        }
    }

    func run() async throws -> Int32 {
        let outline = common.outline()
        let location = try common.storeLocation(outline)
        switch mode {
        case .list(let connection, let object, let limit):
            let store = try StoreCLI.openStore(location, write: false)
            let entries = try store.quarantine(connection: connection, object: object, limit: limit)
            if json {
                context.output.out(JSONValue.array(entries.map(Self.entryJSON)).serialized() + "\n")
            } else if entries.isEmpty {
                context.output.out("no quarantined records\n")
            } else {
                context.output.out(StoreCLI.table(
                    ["CONNECTION", "OBJECT", "RECORD", "FIRST SEEN", "LAST SEEN", "SEEN", "REASON"],
                    entries.map { e in
                        [e.connection, e.object, e.recordKey, StoreCLI.time(e.firstSeenAt), StoreCLI.time(e.lastSeenAt),
                         String(e.seenCount), StoreCLI.short(e.reason, 90)]
                    }))
            }
        case .clear(let connection, let object, let record):
            let store = try StoreCLI.openStore(location, write: true)
            let removed = try store.clearQuarantine(connection: connection, object: object, recordKey: record)
            if json {
                context.output.out(JSONValue.object(JSONObject([("cleared", .integer(Int64(removed)))])).serialized()
                                   + "\n")
            } else {
                let scope = [connection, object, record].compactMap { $0 }.joined(separator: "/")
                context.output.out(removed == 0
                    ? "no quarantined records matched \(scope)\n"
                    : "cleared \(removed) quarantined record\(removed == 1 ? "" : "s") of \(scope); a record the "
                        + "source still serves broken is quarantined again by the next scan that reads it\n")
            }
        }
        return ExitCode.ok
    }

    static func entryJSON(_ e: QuarantineEntry) -> JSONValue {
        var object = JSONObject()
        object["connection"] = .string(e.connection)
        object["object"] = .string(e.object)
        object["record_key"] = .string(e.recordKey)
        object["record_id"] = e.recordID.map(JSONValue.string) ?? .null
        object["reason"] = .string(e.reason)
        object["first_seen_at"] = .string(Timestamps.rfc3339(e.firstSeenAt))
        object["last_seen_at"] = .string(Timestamps.rfc3339(e.lastSeenAt))
        object["seen_count"] = .integer(e.seenCount)
        object["raw_excerpt"] = .string(e.rawExcerpt)
        return .object(object)
    }
}
