// Periodic store upkeep: prune fully delivered events older than the retention, then checkpoint the WAL so it
// does not grow without bound between SQLite's automatic checkpoints.
//
// Retention: 7 days after detection, and only for events whose every delivery is `delivered` (the store's
// rule) — pending and failed events are kept however old, so `replay` and `redeliver` still find them, and
// a paused subscriber catches up on everything. Seven days covers the longest default retry schedule
// (about 28 h of attempts) plus a weekend of `replay --since` for receivers that lost data.
import Core
import Foundation
import Logging
import Store

final class MaintenanceService: Service {
    let name = "maintenance"
    static let retention: Duration = .seconds(7 * 86_400)
    static let period: Duration = .seconds(15 * 60)

    let store: StateStore
    let logger: Logger
    let period: Duration
    private let stop = Doorbell()

    init(store: StateStore, logger: Logger, period: Duration = MaintenanceService.period) {
        self.store = store
        self.logger = logger
        self.period = period
    }

    func run() async throws {
        // The first round waits one period: start-up should not compete with the first polls.
        while !(await stop.wait(upTo: period)), !Task.isCancelled {
            await runOnce()
        }
    }

    func shutdown(deadline: ContinuousClock.Instant) async { stop.close() }

    /// Prunes in short transactions (1000 events each, so the engine's commits interleave), then checkpoints.
    func runOnce() async {
        let cutoff = Date().addingTimeInterval(-MaintenanceService.retention.seconds)
        do {
            var pruned = 0
            while !stop.isClosed {
                let n = try await store.perform { try $0.pruneEvents(detectedBefore: cutoff, limit: 1000) }
                pruned += n
                if n == 0 { break }
            }
            try await store.perform { try $0.checkpoint() }
            if pruned > 0 { logger.info("pruned delivered events past retention", ["COUNT": String(pruned)]) }
        } catch {
            logger.warning("store maintenance failed; will retry next round", error: error)
        }
    }
}
