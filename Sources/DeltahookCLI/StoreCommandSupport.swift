// Shared plumbing of the commands that work on the store (status, events, deliveries, redeliver, replay,
// subscribers, quarantine, prune): their common options (`StoreCommandOptions`), where the store is (a
// `StoreLocation`: the SQLite file or the shared PostgreSQL database), the config read as plain JSON, time
// arguments, tables and JSON renderings.
//
// The config is read without validation (only `state_directory`, `store`, and the subscribers' ids, event globs
// and connections), so an operator's shell without $CREDENTIALS_DIRECTORY can run these commands. The one secret
// they may need is the PostgreSQL URL: `$DELTAHOOK_STORE_URL` wins over the config's `store.url` reference for
// exactly that shell. The daemon notices what they write by polling the store (every 2 s by default,
// `Dispatcher.Options.storePollInterval`): the CLI and the daemons share only the store.
import Config
import Core
import Daemon
import Foundation
import Store

/// A failure the command reports with exit status 1 (message already says what to do).
struct CommandFailure: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// What every store command (status, events, deliveries, redeliver, replay, subscribers, quarantine, prune) shares:
/// `--json`, `--state-directory`, the context, and the way from the config's outline to the store. One value so
/// the eight commands parse and resolve them identically; each command still declares `.json`/`.stateDirectory`
/// in its `options`, because the help text of `--json` differs per command.
struct StoreCommandOptions {
    let json: Bool
    /// `--state-directory DIR`, which wins over the config's `state_directory` and its `store` block (an explicit
    /// override: it always means that directory's SQLite file).
    let stateDirectory: String?
    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        json = arguments.flag("--json")
        stateDirectory = try arguments.option("--state-directory")
        self.context = context
    }

    /// The config's outline (see ``StoreCLI/outline(context:)``: registers what must not be printed).
    func outline() -> StoreCLI.Outline { StoreCLI.outline(context: context) }

    /// Where the store is (see ``StoreCLI/storeLocation(context:outline:override:)``).
    func storeLocation(_ outline: StoreCLI.Outline) throws -> StoreLocation {
        try StoreCLI.storeLocation(context: context, outline: outline, override: stateDirectory)
    }

    /// Opens the store at ``storeLocation(_:)``: read-only unless the command must write.
    func openStore(_ outline: StoreCLI.Outline, write: Bool) throws -> any StateStoring {
        try StoreCLI.openStore(storeLocation(outline), write: write)
    }
}

/// A command over the state file. `context` and `json` read through its ``StoreCommandOptions`` so the command's
/// body names them as every other command does.
protocol StoreCommand: Command {
    var common: StoreCommandOptions { get }
}

extension StoreCommand {
    var context: CommandContext { common.context }
    var json: Bool { common.json }
}

enum StoreCLI {
    struct SubscriberOutline {
        var id: String
        var url: String?
        var events: [EventTypeGlob]
        var connections: [String]?

        func accepts(_ summary: EventSummary) -> Bool {
            if let connections, !connections.contains(summary.connection) { return false }
            return EventTypeGlob.anyMatches(events, summary.type)
        }
    }

    /// The config's `store` block as far as the CLI needs it: which backend, and where its URL secret lives
    /// (a reference, resolved only when the store is opened).
    struct StoreOutline {
        /// `"sqlite"` (also when the block or key is absent) or `"postgres"`; anything else is reported on use.
        var backend = "sqlite"
        var url: SecretReference?
        /// `store.lease_ttl`: how old a heartbeat may be for `status` to call its node alive.
        var leaseTTL: Duration?
        var poolSize: Int?
    }

    struct Outline {
        var stateDirectory: String?
        var store = StoreOutline()
        var subscribers: [SubscriberOutline] = []
        /// Configured (connection, object) pairs, for `status`.
        var objects: [(connection: String, object: String)] = []
        /// Why the config could not be read, when it could not (the store is still shown).
        var note: String?
        var readable: Bool { note == nil }

        func subscriber(_ id: String) -> SubscriberOutline? { subscribers.first { $0.id == id } }
    }

    /// Reads the config's outline and registers what must not be printed with `context.scrubber`: every
    /// subscriber URL, and every secret when this process can resolve them (an operator's shell often cannot
    /// read the unit's credentials; the store's texts were scrubbed by the daemon before they were written).
    static func outline(context: CommandContext) -> Outline {
        let path = context.configPath
        if let config = try? ConfigLoader.load(path: path, environment: context.configEnvironment) {
            config.register(in: context.scrubber)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            return Outline(note: "config \(path) not readable; showing what the store knows")
        }
        guard let root = try? JSONValue.parse(data) else {
            return Outline(note: "config \(path) is not valid JSON; showing what the store knows")
        }
        var outline = Outline(stateDirectory: root["state_directory"]?.stringValue)
        if let store = root["store"] {
            outline.store.backend = store["backend"]?.stringValue ?? "sqlite"
            outline.store.url = store["url"].flatMap(secretReference)
            outline.store.leaseTTL = store["lease_ttl"]?.stringValue.flatMap(DurationText.parse)
            outline.store.poolSize = store["pool_size"]?.int64Value.map { Int(clamping: $0) }
        }
        // config.json's connections and every connections.d file's (one object or a list), as the daemon reads them.
        var connections = root["connections"]?.arrayValue ?? []
        for file in ConnectionsDirectory(configPath: path, root: root).read().files {
            connections += file.json.arrayValue ?? [file.json]
        }
        for connection in connections {
            guard let id = connection["id"]?.stringValue else { continue }
            for object in connection["objects"]?.arrayValue ?? [] {
                if let name = object["name"]?.stringValue { outline.objects.append((id, name)) }
            }
        }
        for entry in root["subscribers"]?.arrayValue ?? [] {
            guard let id = entry["id"]?.stringValue else { continue }
            if let url = entry["url"]?.stringValue { context.scrubber.registerSubscriberURL(url) }
            let globs = (entry["events"]?.arrayValue ?? [.string("*")]).compactMap(\.stringValue).map(EventTypeGlob.init)
            let connections = entry["connections"]?.arrayValue?.compactMap(\.stringValue)
            outline.subscribers.append(SubscriberOutline(id: id, url: entry["url"]?.stringValue.map(URLRedaction.subscriber),
                                                         events: globs, connections: connections))
        }
        return outline
    }

    /// `{"credential": n}`, `{"file": p}` or `{"env": n}`: the config's secret reference forms (Config/Secrets.swift).
    /// Anything else is nil, reported as "no url" when the store is opened.
    static func secretReference(_ value: JSONValue) -> SecretReference? {
        if let name = value["credential"]?.stringValue { return .credential(name) }
        if let path = value["file"]?.stringValue { return .file(path) }
        if let name = value["env"]?.stringValue { return .environment(name) }
        return nil
    }

    /// The environment variable that gives the CLI the PostgreSQL URL directly, winning over `store.url`: an
    /// operator's shell usually cannot read the unit's credentials.
    static let storeURLVariable = "DELTAHOOK_STORE_URL"

    /// Where the store is. `--state-directory` is an explicit override and always means that directory's SQLite
    /// file. Otherwise the config's `store.backend` decides: SQLite in the config's `state_directory`,
    /// `$STATE_DIRECTORY` or `/var/lib/deltahook`; PostgreSQL at `$DELTAHOOK_STORE_URL`, else the resolved
    /// `store.url` reference. The URL and its password are registered with the scrubber before anything is
    /// printed; failures name the reference and never the value.
    static func storeLocation(context: CommandContext, outline: Outline, override: String?) throws -> StoreLocation {
        if override == nil, outline.store.backend == "postgres" {
            let url = try postgresURL(context: context, reference: outline.store.url)
            context.scrubber.register(contentsOf: StoreConfig(backend: .postgres(url: url)).redactionTexts)
            return .postgres(url: url.unredactedValue, poolSize: max(1, min(outline.store.poolSize ?? 2, 64)))
        }
        if override == nil, outline.store.backend != "sqlite" {
            throw CommandFailure("the config's store.backend \"\(outline.store.backend)\" is not a store backend; "
                + "expected \"sqlite\" or \"postgres\" (`deltahook check-config` shows the config's problems)")
        }
        let directory = override ?? outline.stateDirectory
            ?? context.environment["STATE_DIRECTORY"]?.split(separator: ":").first.map(String.init)
            ?? "/var/lib/deltahook"
        return .sqlite(path: directory + "/" + StateStore.fileName)
    }

    /// `$DELTAHOOK_STORE_URL` when set (and not empty), else the config's `store.url` reference resolved here.
    private static func postgresURL(context: CommandContext, reference: SecretReference?) throws -> Secret {
        let variable = SecretReference.environment(storeURLVariable)
        if case .success(let url) = context.configEnvironment.resolve(variable) { return url }
        guard let reference else {
            throw CommandFailure("the config's store block names \"backend\": \"postgres\" but no \"url\" "
                + "secret reference; set \(storeURLVariable) to the PostgreSQL URL, or fix the config")
        }
        switch context.configEnvironment.resolve(reference) {
        case .success(let url): return url
        case .failure(let error):
            throw CommandFailure("cannot resolve the PostgreSQL URL of the config's store.url: \(error). Set "
                + "\(storeURLVariable) to the URL in this shell, or run where the config's \(reference) can be read "
                + "(e.g. under the unit's credentials with systemd-run)")
        }
    }

    /// Opens the store: read-only (a WAL reader beside the daemon, or read-only PostgreSQL transactions) unless
    /// the command must write. A missing SQLite file is reported as such rather than created.
    static func openStore(_ location: StoreLocation, write: Bool) throws -> any StateStoring {
        if case .sqlite(let path) = location, !FileManager.default.fileExists(atPath: path) {
            throw CommandFailure("no store at \(path) yet: the daemon has not run with this state directory "
                + "(pass --state-directory DIR or --config PATH)")
        }
        do {
            return try location.open(write: write)
        } catch {
            throw CommandFailure("cannot open the store \(location): \(error)")
        }
    }

    /// RFC 3339 (`2026-11-29T06:00:00Z`) or a duration ago (`2h`, `30m`, `5d`).
    static func parseTime(_ text: String, option: String, now: Date) throws -> Date {
        if let date = Timestamps.parseRFC3339(text) { return date }
        if let duration = DurationText.parse(text) { return now.addingTimeInterval(-duration.seconds) }
        throw UsageError("\(option) \(text): expected an RFC 3339 time (2026-11-29T06:00:00Z) or a duration ago (2h)")
    }

    static func positiveInt(_ text: String?, option: String, default value: Int) throws -> Int {
        guard let text else { return value }
        guard let n = Int(text), n > 0 else { throw UsageError("\(option) \(text): expected a positive integer") }
        return n
    }

    /// Plain-text table with left-aligned columns.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            var out = ""
            for (i, cell) in cells.enumerated() {
                let last = i == cells.count - 1
                out += last ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 2)
            }
            return out + "\n"
        }
        return line(header) + rows.map(line).joined()
    }

    static func time(_ date: Date?) -> String { date.map { Timestamps.rfc3339($0) } ?? "-" }

    static func deliveryJSON(_ d: Delivery) -> JSONValue {
        var object = JSONObject()
        object["id"] = .integer(d.id)
        object["event_id"] = .string(d.eventID)
        object["event_type"] = .string(d.eventType)
        object["subscriber"] = .string(d.subscriber)
        object["record_key"] = .string(d.recordKey)
        object["state"] = .string(d.state.rawValue)
        object["attempts"] = .integer(Int64(d.attempts))
        object["next_attempt_at"] = d.state == .pending ? (d.nextAttemptAt.map { .string(Timestamps.rfc3339($0)) } ?? .null) : .null
        object["last_status"] = d.lastStatus.map { .integer(Int64($0)) } ?? .null
        object["last_error"] = d.lastError.map { .string($0) } ?? .null
        object["created_at"] = .string(Timestamps.rfc3339(d.createdAt))
        object["updated_at"] = .string(Timestamps.rfc3339(d.updatedAt))
        object["delivered_at"] = d.deliveredAt.map { .string(Timestamps.rfc3339($0)) } ?? .null
        return .object(object)
    }

    static func attemptJSON(_ a: Attempt) -> JSONValue {
        var object = JSONObject()
        object["attempted_at"] = .string(Timestamps.rfc3339Milliseconds(a.attemptedAt))
        object["http_status"] = a.httpStatus.map { .integer(Int64($0)) } ?? .null
        object["latency_ms"] = .integer(a.latencyMilliseconds)
        object["error"] = a.error.map { .string($0) } ?? .null
        object["response_excerpt"] = a.responseExcerpt.map { .string($0) } ?? .null
        return .object(object)
    }

    /// One line, at most `limit` characters (errors in tables).
    static func short(_ text: String?, _ limit: Int = 60) -> String {
        guard let text, !text.isEmpty else { return "-" }
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count > limit ? String(flat.prefix(limit - 1)) + "…" : flat
    }
}
