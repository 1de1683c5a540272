// Periodic store upkeep (docs/DESIGN.md §6 `retention`): orphan pending deliveries of subscribers that left the
// config, prune events whose deliveries are done and past retention, purge old tombstones, give the freed pages
// back to the file system, and checkpoint the WAL so it does not grow between SQLite's automatic checkpoints.
//
// The steps are Store/Retention.swift's; here they run one short transaction per `perform`, so the engine's page
// commits and the dispatcher's writes interleave with a long prune. The config is read at each round, so a
// SIGHUP that removes a subscriber or changes `retention` takes effect at the next one.
import Config
import Core
import Foundation
import Logging
import Store
import Synchronization

final class MaintenanceService: Service {
    /// What a round needs from the running config.
    struct Settings: Sendable {
        var retention: RetentionPolicy
        /// Subscriber ids in the config; pending deliveries to any other become `orphaned`.
        var subscribers: [String]

        init(retention: RetentionPolicy, subscribers: [String]) {
            self.retention = retention
            self.subscribers = subscribers
        }

        init(config: DeltahookConfig) {
            self.init(retention: RetentionPolicy(config.retention), subscribers: config.subscribers.map(\.id))
        }
    }

    let name = "maintenance"
    static let period: Duration = .seconds(15 * 60)

    let store: any StateStoring
    let logger: Logger
    let period: Duration
    private let settings: @Sendable () -> Settings
    private let now: @Sendable () -> Date
    private let stop = Doorbell()
    private let warnedAboutVacuum = Atomic<Bool>(false)

    init(store: any StateStoring, logger: Logger, period: Duration = MaintenanceService.period,
         settings: @escaping @Sendable () -> Settings, now: @escaping @Sendable () -> Date = { Date() })
    {
        self.store = store
        self.logger = logger
        self.period = period
        self.settings = settings
        self.now = now
    }

    func run() async throws {
        // The first round waits one period: start-up should not compete with the first polls.
        while !(await stop.wait(upTo: period)), !Task.isCancelled {
            await runOnce()
        }
    }

    func shutdown(deadline: ContinuousClock.Instant) async { stop.close() }

    /// One round: orphan, prune events (pages of 1000), purge tombstones (1000 at a time), reclaim or
    /// checkpoint — each step one `perform`, stopping between steps at shutdown.
    @discardableResult
    func runOnce() async -> PruneReport {
        let settings = self.settings()
        var run = RetentionRun(policy: settings.retention, configuredSubscribers: settings.subscribers, now: now())
        do {
            while !run.isDone, !stop.isClosed {
                run = try await store.perform { [run] store in
                    var next = run
                    try next.step(store)
                    return next
                }
            }
            let report = run.report
            for (subscriber, count) in report.orphaned.sorted(by: { $0.key < $1.key }) {
                logger.notice("pending deliveries to a subscriber no longer in the config are orphaned; replay brings them back",
                              [.subscriber: subscriber, "COUNT": String(count)])
            }
            if report.removedAnything {
                logger.info("pruned rows past retention", [
                    "EVENTS": String(report.events), "DELIVERIES": String(report.deliveries),
                    "TOMBSTONES": String(report.tombstones),
                ])
            }
            try await adviseVacuumOnce()
        } catch {
            logger.warning("store maintenance failed; will retry next round", error: error)
        }
        return run.report
    }

    /// A file created before schema v3 and too large to be vacuumed at the upgrade keeps its free pages until an
    /// operator runs `deltahook prune --vacuum`; say so once per process.
    private func adviseVacuumOnce() async throws {
        guard !warnedAboutVacuum.load(ordering: .relaxed) else { return }
        let summary = try await store.perform { try $0.storageSummary() }
        guard summary.autoVacuum != "incremental" else { return }
        warnedAboutVacuum.store(true, ordering: .relaxed)
        logger.notice("the store file cannot shrink until it is vacuumed once; run `deltahook prune --vacuum`",
                      ["BYTES": String(summary.totalBytes)])
    }
}

extension RetentionPolicy {
    /// From the config's `retention` section.
    init(_ config: RetentionConfig) {
        self.init(delivered: config.delivered.seconds, failed: config.failed.seconds,
                  tombstones: config.tombstones.seconds)
    }
}
