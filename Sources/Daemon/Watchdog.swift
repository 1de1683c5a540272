// The systemd watchdog (docs/DESIGN.md §8, sd_watchdog_enabled(3)): WATCHDOG=1 at half of $WATCHDOG_USEC, sent only
// while the probe passes — the engine's liveness signal is fresh AND a store read through the store's queue
// answers within a timeout. A stuck engine or a wedged store therefore stops the pings and systemd kills
// and restarts the unit (miniflux pings its database before each notification the same way).
import Core
import Foundation
import Logging
import Store

/// Something that can say whether the polling engine still makes progress.
public protocol LivenessSource: Sendable {
    /// True while the engine's loops are making progress; `reason` explains a false answer.
    func engineLiveness() async -> (alive: Bool, reason: String)
}

/// Probes engine + store and pings systemd. Also runs without a watchdog (interval from `probeInterval`) to keep
/// `/healthz` and `deltahook_up` current.
final class WatchdogService: Service {
    let name = "watchdog"
    let notifier: SystemdNotifier
    let liveness: any LivenessSource
    let store: any StateStoring
    let state: DaemonState
    let registry: MetricsRegistry
    let logger: Logger
    let interval: Duration
    let storeTimeout: Duration
    private let stop = Doorbell()

    init(notifier: SystemdNotifier, liveness: any LivenessSource, store: any StateStoring, state: DaemonState,
         registry: MetricsRegistry, logger: Logger)
    {
        self.notifier = notifier
        self.liveness = liveness
        self.store = store
        self.state = state
        self.registry = registry
        self.logger = logger
        // Half of WATCHDOG_USEC when systemd expects pings; otherwise probe every 5 s for /healthz only.
        interval = notifier.watchdogInterval ?? .seconds(5)
        storeTimeout = min(max(interval / 2, .milliseconds(200)), .seconds(5))
    }

    func run() async throws {
        var wasAlive = true
        while !stop.isClosed, !Task.isCancelled {
            let (alive, reason) = await probe()
            state.setAlive(alive, reason: reason)
            registry.set(DaemonMetric.up, to: alive ? 1 : 0)
            if alive {
                if notifier.watchdogInterval != nil { notifier.watchdog() }
                if !wasAlive { logger.notice("liveness probe passes again; watchdog pings resumed") }
            } else if wasAlive {
                logger.error("liveness probe failed; watchdog pings withheld so systemd can restart the daemon",
                             ["REASON": reason])
            }
            wasAlive = alive
            await stop.wait(upTo: interval)
        }
    }

    func shutdown(deadline: ContinuousClock.Instant) async { stop.close() }

    /// Engine liveness, then one store read bounded by `storeTimeout`.
    func probe() async -> (Bool, String) {
        let engine = await liveness.engineLiveness()
        guard engine.alive else { return (false, engine.reason) }
        let store = self.store
        let answered = await WatchdogService.answers(within: storeTimeout) {
            (try? await store.perform { try $0.pendingCount() }) != nil
        }
        return answered ? (true, "ok") : (false, "store did not answer within \(DurationText.format(storeTimeout))")
    }

    /// Runs `work` in its own task and returns its answer, or false once `timeout` passes — without waiting for a
    /// hung `work` (a blocked SQLite call cannot be cancelled; the probe must still answer).
    static func answers(within timeout: Duration, _ work: @escaping @Sendable () async -> Bool) async -> Bool {
        let first = FirstResult<Bool>()
        Task { first.resume(await work()) }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            first.resume(false)
        }
        let answer = await first.value()
        timer.cancel()
        return answer
    }
}
