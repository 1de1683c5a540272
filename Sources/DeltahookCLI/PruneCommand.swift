// `deltahook prune [--dry-run] [--vacuum] [--json]`: applies `retention` now (docs/DESIGN.md §6, §7) — what the
// daemon's maintenance loop does every 15 minutes — and prints what it removed, or with --dry-run what it would.
//
// Like `redeliver` it writes the store directly, whether or not the daemon runs: WAL lets a second writer in
// between the daemon's short transactions, and every prune step is a short transaction of its own. The config is
// read as plain JSON (like every store command): `retention` and the subscriber ids, no secrets.
import Core
import Daemon
import Foundation
import Store

struct PruneCommand: StoreCommand {
    static let name = "prune"
    static let summary = "Remove finished events, orphaned deliveries and old tombstones past retention"
    static let options: [OptionSpec] = [
        .flag("--dry-run", "count what would go; change nothing (opens the store read-only)"),
        .flag("--vacuum", "also rewrite the file with VACUUM: needed once for a store created before schema v3 and "
            + "larger than 64 MB, so that it can shrink; needs the file's size in free disk space and holds the "
            + "daemon's writes while it runs"),
        .flag("--json", "{\"dry_run\", \"orphaned\", \"events\", \"deliveries\", \"attempts\", \"tombstones\", "
            + "\"bytes_before\", \"bytes_after\", \"vacuumed\", \"retention\"}"),
        .stateDirectory,
    ]
    static let details = """
        Applies the config's "retention" (defaults: delivered 7d, failed 30d, tombstones 90d) now:
          - pending deliveries to subscribers no longer in the config become "orphaned" (skipped when the config
            cannot be read); `replay` brings them back;
          - events whose deliveries are all delivered, failed or orphaned past retention go, with their
            deliveries and attempts; pending deliveries are never pruned;
          - tombstones of deleted records past retention go (a record back after that emits created);
          - free pages go back to the file system (incremental vacuum) and the WAL is truncated.
        The running daemon does the same every 15 minutes; this is safe beside it.
        Exit status: 0 done, 1 the store cannot be opened or written or the retention is invalid, 64 usage.
        """

    let dryRun: Bool
    let vacuum: Bool
    let common: StoreCommandOptions

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        dryRun = arguments.flag("--dry-run")
        vacuum = arguments.flag("--vacuum")
        common = try StoreCommandOptions(arguments: &arguments, context: context)
    }

    func run() async throws -> Int32 {
        let outline = common.outline()
        let policy = try Self.retention(configPath: context.configPath)
        let location = try common.storeLocation(outline)
        let store = try StoreCLI.openStore(location, write: !dryRun)
        let now = Date()
        let before: StorageSummary
        let report: PruneReport
        var vacuumed = false
        do {
            before = try store.storageSummary()
            report = try store.applyRetention(policy, configuredSubscribers: outline.readable ? outline.subscribers.map(\.id) : nil,
                                              now: now, dryRun: dryRun, shouldContinue: { true })
            if vacuum, !dryRun {
                try store.vacuum()
                vacuumed = true
            }
        } catch {
            throw CommandFailure("pruning the store \(location) failed: \(error)")
        }
        let after = dryRun ? before : ((try? store.storageSummary()) ?? before)
        if let note = outline.note { context.output.err("note: \(note); orphaning skipped\n") }
        if json {
            var object = JSONObject()
            object["dry_run"] = .bool(dryRun)
            object["store"] = .string(location.description)
            object["orphaned"] = .object(JSONObject(report.orphaned.sorted { $0.key < $1.key }
                .map { ($0.key, JSONValue.integer(Int64($0.value))) }))
            object["events"] = .integer(Int64(report.events))
            object["deliveries"] = .integer(Int64(report.deliveries))
            object["attempts"] = .integer(Int64(report.attempts))
            object["tombstones"] = .integer(Int64(report.tombstones))
            object["bytes_before"] = .integer(before.totalBytes)
            object["bytes_after"] = .integer(after.totalBytes)
            object["vacuumed"] = .bool(vacuumed)
            object["retention"] = .object(JSONObject([
                ("delivered", .string(DurationText.format(.seconds(policy.delivered)))),
                ("failed", .string(DurationText.format(.seconds(policy.failed)))),
                ("tombstones", .string(DurationText.format(.seconds(policy.tombstones)))),
            ]))
            context.output.out(JSONValue.object(object).serialized() + "\n")
            return ExitCode.ok
        }
        var text = dryRun ? "would remove (dry run, nothing changed):\n" : "removed:\n"
        let orphans = report.orphaned.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        text += "  orphaned deliveries: \(report.orphanedTotal)"
            + (orphans.isEmpty ? "" : " (" + orphans.joined(separator: ", ") + ")") + "\n"
        text += "  events: \(report.events) (with \(report.deliveries) deliveries, \(report.attempts) attempts)\n"
        text += "  tombstones: \(report.tombstones)\n"
        text += dryRun
            ? "store size: \(StatusReport.bytes(before.totalBytes))\n"
            : "store size: \(StatusReport.bytes(before.totalBytes)) -> \(StatusReport.bytes(after.totalBytes))"
                + (vacuumed ? " (vacuumed)" : "") + "\n"
        if !vacuumed, after.autoVacuum != "incremental" {
            text += "the file cannot shrink until vacuumed once: deltahook prune --vacuum\n"
        }
        context.output.out(text)
        return ExitCode.ok
    }

    /// The config's `retention`, read as plain JSON (defaults where absent or unreadable). A present but
    /// invalid value is an error: pruning with a guess could remove what the operator meant to keep.
    static func retention(configPath: String) throws -> RetentionPolicy {
        var policy = RetentionPolicy.defaults
        guard let data = FileManager.default.contents(atPath: configPath),
              let root = try? JSONValue.parse(data), let section = root["retention"] else { return policy }
        guard section.objectValue != nil else {
            throw CommandFailure("\(configPath): retention must be an object such as "
                + "{\"delivered\": \"7d\", \"failed\": \"30d\", \"tombstones\": \"90d\"} (check with `deltahook check-config`)")
        }
        let keys: [(String, WritableKeyPath<RetentionPolicy, TimeInterval>)] = [
            ("delivered", \.delivered), ("failed", \.failed), ("tombstones", \.tombstones),
        ]
        for (key, path) in keys {
            guard let value = section[key] else { continue }
            guard let text = value.stringValue, let duration = DurationText.parse(text), duration >= .seconds(60) else {
                throw CommandFailure("\(configPath): retention.\(key) \(value.serialized()) is not a duration of at "
                    + "least 1m such as \"7d\" (check with `deltahook check-config`)")
            }
            policy[keyPath: path] = duration.seconds
        }
        return policy
    }
}
