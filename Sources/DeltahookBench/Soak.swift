// `DeltahookBench soak` (Scripts/soak): the store's size over a churn run with retention (docs/DESIGN.md §6
// `retention`; issue 12 item 3). Not a test: it prints the numbers, it asserts nothing.
//
// A simulated clock advances SECONDS_PER_ROUND per round. Each round commits EVENTS changed records (snapshot,
// event, delivery row — what a poll commits), deletes a tenth as many records for good (tombstones), delivers
// everything due with lease-checked results (what the dispatcher writes), and every four rounds applies the
// retention (orphan, prune, purge, incremental vacuum, checkpoint) as the daemon's maintenance loop does. The
// file should level off once the first retention window has passed.
import Core
import Foundation
import Store

enum Soak {
    static func run(_ arguments: [String]) throws {
        let rounds = arguments.count > 0 ? Int(arguments[0]) ?? 720 : 720
        let perRound = arguments.count > 1 ? Int(arguments[1]) ?? 500 : 500
        let retention = arguments.count > 2 ? Double(arguments[2]) ?? 60 : 60
        let secondsPerRound = 5.0
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-soak-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent(StateStore.fileName).path
        let store = try StateStore(path: path)
        // The store's connection is its own; the row counts come through a WAL reader like the CLI's.
        let reader = try Database(path: path, mode: .readOnly)
        let policy = RetentionPolicy(delivered: retention, failed: retention, tombstones: retention)
        let base = Date(timeIntervalSince1970: 1_764_000_000)
        let body = String(repeating: "printer on floor 3 jams again; ", count: 12)
        let records = perRound * 10
        print("soak: \(rounds) rounds of \(Int(secondsPerRound)) simulated s, \(perRound) changed records "
              + "+ \(perRound / 10) deletes per round, retention \(Int(retention)) s for every class")
        print("sim min   events kept   tombstones   file MiB   wal MiB   free MiB   total MiB   pruned (events)")
        var n = 0
        var peak: Int64 = 0
        var totalPruned = 0
        let started = ContinuousClock.now
        for round in 0..<rounds {
            let now = base.addingTimeInterval(Double(round) * secondsPerRound)
            var events: [OutgoingEvent] = []
            var snapshots: [SnapshotWrite] = []
            for i in 0..<perRound {
                n += 1
                let recordID = "r\((round * perRound + i) % records)"
                let record: JSONValue = ["id": .string(recordID), "n": .integer(Int64(n)), "body": .string(body)]
                let hash = ContentHash.of(record)
                let event = ChangeEvent(
                    id: ChangeEvent.makeID(connection: "soak", object: "incident", recordID: recordID,
                                           sourceTimestamp: now, contentHash: hash, kind: .updated),
                    model: "ticket", kind: .updated,
                    subject: .init(connection: "soak", provider: "synthetic", object: "incident", recordID: recordID),
                    occurredAt: now, detectedAt: now, content: .init(record: record, raw: record))
                events.append(OutgoingEvent(event: event, subscribers: ["crm"]))
                snapshots.append(SnapshotWrite(recordID: recordID, contentHash: hash, record: record, raw: record,
                                               sourceTimestamp: now))
                if i % 10 == 0 {
                    snapshots.append(SnapshotWrite(recordID: "gone-\(n)", contentHash: hash, record: record,
                                                   raw: record, sourceTimestamp: now, tombstoned: true))
                }
            }
            _ = try store.commitPage(PageCommit(connection: "soak", object: "incident", snapshots: snapshots,
                                                events: events, now: now))
            while true {
                let claimed = try store.claimDueDeliveries(subscriber: "crm", now: now, leaseUntil: now, limit: 2000)
                if claimed.isEmpty { break }
                try store.recordAttempts(claimed.map {
                    AttemptResult(deliveryID: $0.delivery.id, attemptedAt: now, httpStatus: 204, latencyMilliseconds: 1,
                                  outcome: .delivered, leaseToken: $0.delivery.leaseToken)
                })
            }
            guard round % 4 == 3 else { continue }
            let report = try store.applyRetention(policy, configuredSubscribers: ["crm"], now: now)
            totalPruned += report.events
            let summary = try store.storageSummary()
            peak = max(peak, summary.totalBytes)
            // One line per simulated minute (12 rounds).
            guard round % 12 == 11 || round == rounds - 1 else { continue }
            let (kept, tombstones) = try reader.read { db in
                (try db.queryOne("SELECT COUNT(*) FROM events") { $0.int(0) } ?? 0,
                 try db.queryOne("SELECT COUNT(*) FROM snapshots WHERE tombstoned = 1") { $0.int(0) } ?? 0)
            }
            func mib(_ bytes: Int64) -> String { String(format: "%8.2f", Double(bytes) / 1_048_576) }
            print(String(format: "%7.1f   %11ld   %10ld   ", Double(round + 1) * secondsPerRound / 60, kept, tombstones)
                  + mib(summary.fileBytes) + "  " + mib(summary.walBytes) + "  " + mib(summary.freeBytes) + "   "
                  + mib(summary.totalBytes) + "   \(totalPruned)")
        }
        let final = try store.storageSummary()
        print(String(format: "events committed %ld, pruned %ld; peak %.2f MiB, final %.2f MiB; %.1f s wall",
                     n, totalPruned, Double(peak) / 1_048_576, Double(final.totalBytes) / 1_048_576,
                     (ContinuousClock.now - started).seconds))
    }
}
