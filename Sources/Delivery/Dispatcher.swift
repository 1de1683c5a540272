// The dispatcher: turns pending delivery rows into signed POSTs (docs/DESIGN.md §5).
//
// Shape: one loop per subscriber. A loop claims due head-of-record deliveries with a lease (the store returns
// only the oldest pending delivery of each record, so events of one record go out strictly in order while other
// records flow), sends up to `max_in_flight` of them at once through the shared keep-alive HTTP client, and
// hands every result to ONE writer that records them in batches (one SQLite transaction for many attempts —
// that is what makes thousands of deliveries per second possible). A record's next event becomes claimable
// only once its head's result is durable, so the writer rings the loop after each flush.
//
// Loops wake on `notifyNewEvents()` (the engine committed a page), on results, at the next due time, and at
// least every `storePollInterval` — that poll is how the daemon notices what the CLI changed in the shared
// SQLite file (replay, redeliver, subscribers pause/resume): the CLI and the daemon share nothing else.
//
// Wiring (the daemon):
//   let client = try CurlHTTPClient(configuration: .init(maxCachedConnections: <sum of max_in_flight> + 16,
//                                                        userAgent: "deltahook/<version>"))
//   let dispatcher = Dispatcher(store: store, transport: client,
//                               options: .init(delivery: config.delivery, userAgent: "deltahook/<version>"),
//                               logger: logger, metrics: metrics)
//   let (settings, problems) = SubscriberSettings.from(config.subscribers)   // log each problem, run the rest
//   dispatcher.setSubscribers(settings)
//   after every commitPage that inserted events:  dispatcher.notifyNewEvents()
//   SIGHUP: setSubscribers(...) again;  SIGTERM: await dispatcher.shutdown(deadline: config.shutdownTimeout)
//
// Crash safety: a claimed delivery's `next_attempt_at` is its lease end. If the process dies (or shutdown's
// deadline passes) before its result is recorded, it simply becomes due again when the lease ends: at least
// once, same `webhook-id`.
import Foundation
public import Core
public import Store
public import HTTPClient
public import Logging
public import Config
import Crypto
import Synchronization

public final class Dispatcher: Sendable {
    /// Tuning and policy knobs. `init(delivery:userAgent:)` maps the config's `delivery` section.
    public struct Options: Sendable {
        /// `user-agent: deltahook/<version>`.
        public var userAgent: String
        public var policy: RetryPolicy
        /// A subscriber whose every attempt failed for this long is paused (probed, never dropped).
        public var pauseAfter: Duration
        /// How often a paused subscriber gets one probe delivery.
        public var probeInterval: Duration
        /// How often an idle loop re-reads the store (CLI-made changes: replay, redeliver, pause/resume).
        public var storePollInterval: Duration
        /// Deliveries claimed per store transaction at most (beyond `max_in_flight` already in flight).
        public var claimBatch: Int
        /// Added to the request timeout to form the lease: a claimed delivery is not claimed again before.
        public var leaseMargin: Duration
        /// Response body bytes kept per attempt (the store keeps at most 4 KB).
        public var responseCaptureLimit: Int
        /// Uniform in [0, 1), for jitter; injectable for tests (set it after `init`).
        public var random: @Sendable () -> Double = { Double.random(in: 0..<1) }

        public init(userAgent: String = "deltahook", policy: RetryPolicy = RetryPolicy(),
                    pauseAfter: Duration = .seconds(5 * 86_400), probeInterval: Duration = .seconds(300),
                    storePollInterval: Duration = .seconds(2), claimBatch: Int = 512,
                    leaseMargin: Duration = .seconds(30), responseCaptureLimit: Int = 4096) {
            self.userAgent = userAgent
            self.policy = policy
            self.pauseAfter = pauseAfter
            self.probeInterval = probeInterval
            self.storePollInterval = storePollInterval
            self.claimBatch = max(1, claimBatch)
            self.leaseMargin = leaseMargin
            self.responseCaptureLimit = responseCaptureLimit
        }

        /// From the config's `delivery` section.
        public init(delivery: DeliveryConfig, userAgent: String) {
            self.init(userAgent: userAgent,
                      policy: RetryPolicy(schedule: delivery.retrySchedule, jitter: delivery.jitter,
                                          maxRetryAfter: delivery.maxRetryAfter),
                      pauseAfter: delivery.pauseAfter, probeInterval: delivery.probeInterval)
        }
    }

    let shared: Shared
    private let runners = Mutex<[String: SubscriberRunner]>([:])
    /// Alive nodes of the cluster, written under the `runners` lock so a runner started meanwhile gets it too.
    private let clusterSize = Atomic<Int>(1)
    /// Removed subscribers whose requests may still be in flight; shutdown waits for them too.
    private let retiring = Mutex<[SubscriberRunner]>([])
    private let writerTask: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let stopped = Atomic<Bool>(false)

    /// - Parameters:
    ///   - transport: the shared HTTP client (keep-alive across deliveries); tests may pass a fake.
    ///   - ssrfGuard: resolves and vets subscriber hosts; inject a resolver in tests.
    ///   - metrics: optional registry for `deltahook_deliveries_total` and latency histograms.
    ///   - logger: nil discards logs (tests).
    public init(store: any StateStoring, transport: any HTTPTransport, options: Options = Options(),
                logger: Logger? = nil, metrics: MetricsRegistry? = nil, ssrfGuard: SSRFGuard = SSRFGuard()) {
        let logger = logger ?? Logger(level: .critical, sink: DiscardingSink())
        shared = Shared(store: store, transport: transport, options: options, logger: logger, metrics: metrics,
                        guardian: ssrfGuard, writer: ResultWriter(store: store, logger: logger))
        metrics?.declare("deltahook_deliveries_total", kind: .counter,
                         help: "Delivery attempts by subscriber and outcome (delivered, retry, failed)",
                         labels: ["subscriber", "outcome"])
        metrics?.declare("deltahook_delivery_enqueue_to_send_seconds", kind: .histogram,
                         help: "Time from an event's commit to its first POST", labels: ["subscriber"])
        metrics?.declare("deltahook_delivery_request_seconds", kind: .histogram,
                         help: "Duration of delivery HTTP exchanges", labels: ["subscriber"])
        let writer = shared.writer
        writerTask.withLock { $0 = Task { await writer.run() } }
    }

    /// Adds, replaces and removes subscribers (SIGHUP reload). New ids start a loop; known ids get the new
    /// settings for their next requests (requests in flight finish with the old ones); missing ids stop
    /// claiming and their in-flight requests finish. A removed subscriber's pending deliveries stay in the store
    /// until the maintenance loop marks them `orphaned` (docs/DESIGN.md §5); `replay` brings them back.
    public func setSubscribers(_ subscribers: [SubscriberSettings]) {
        guard !stopped.load(ordering: .acquiring) else { return }
        let wanted = Dictionary(subscribers.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        let (removed, started) = runners.withLock { map -> ([SubscriberRunner], [SubscriberRunner]) in
            var removed: [SubscriberRunner] = []
            var started: [SubscriberRunner] = []
            for (id, runner) in map where wanted[id] == nil {
                removed.append(runner)
                map[id] = nil
            }
            for (id, settings) in wanted {
                if let runner = map[id] {
                    runner.update(settings)
                } else {
                    let runner = SubscriberRunner(settings: settings, shared: shared,
                                                  clusterSize: clusterSize.load(ordering: .relaxed))
                    map[id] = runner
                    started.append(runner)
                }
            }
            return (removed, started)
        }
        for runner in removed { runner.stop() }
        retiring.withLock { list in
            list.removeAll(where: \.isDone)
            list += removed
        }
        for runner in started { runner.start() }
    }

    /// Tells the dispatcher how many nodes are alive (the daemon's heartbeat loop, after each heartbeat): each
    /// subscriber's `rate_limit` is shared by all of them, so this node sends at rate/`nodes` and the cluster
    /// together at the configured rate (docs/DESIGN.md §2 rule 21). 1 (the default, and any value below 1) is a
    /// daemon alone. Takes effect for the next request; an unchanged count changes nothing.
    public func setClusterSize(_ nodes: Int) {
        let nodes = max(1, nodes)
        // Under the lock, so two calls racing cannot leave a runner with the older count.
        runners.withLock { map in
            guard clusterSize.exchange(nodes, ordering: .relaxed) != nodes else { return }
            for runner in map.values { runner.setClusterSize(nodes) }
        }
    }

    /// The alive nodes this dispatcher shares rate limits with.
    public var currentClusterSize: Int { clusterSize.load(ordering: .relaxed) }

    /// A subscriber's runner (tests).
    func runner(_ id: String) -> SubscriberRunner? { runners.withLock { $0[id] } }

    /// The ids of the subscribers being served.
    public var subscriberIDs: [String] { runners.withLock { $0.keys.sorted() } }

    /// The engine committed new events: wake every loop now instead of at its next poll.
    public func notifyNewEvents() {
        for runner in runners.withLock({ Array($0.values) }) { runner.doorbell.ring() }
    }

    /// Wakes one subscriber's loop (e.g. after the daemon itself re-armed deliveries).
    public func notify(subscriber id: String) {
        runners.withLock { $0[id] }?.doorbell.ring()
    }

    /// Graceful drain: stops claiming, waits up to `deadline` for requests in flight, then cancels the rest and
    /// records every result that arrived. Cancelled or never-started claims keep their lease, so they are due
    /// again once it ends (after a restart too): nothing is lost. Safe to call more than once.
    public func shutdown(deadline: Duration) async {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let all = runners.withLock { map -> [SubscriberRunner] in
            defer { map.removeAll() }
            return Array(map.values)
        } + retiring.withLock { $0 }
        for runner in all { runner.stop() }
        let finished = await Self.waitAll(all, upTo: deadline)
        if !finished {
            shared.logger.warning("delivery drain deadline passed; cancelling requests still in flight")
            for runner in all { runner.cancel() }
            _ = await Self.waitAll(all, upTo: .seconds(5))
        }
        shared.writer.close()
        let task = writerTask.withLock { $0 }
        await task?.value
    }

    /// Polls rather than awaiting the loop tasks: awaiting a task's value cannot be cancelled, so a deadline
    /// could not interrupt it.
    private static func waitAll(_ runners: [SubscriberRunner], upTo limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while !runners.allSatisfy(\.isDone) {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }
}

/// A sink that drops everything (no logger given).
struct DiscardingSink: LogSink {
    func write(_ record: LogRecord) {}
}

/// Everything the loops share.
struct Shared: Sendable {
    let store: any StateStoring
    let transport: any HTTPTransport
    let options: Dispatcher.Options
    let logger: Logger
    let metrics: MetricsRegistry?
    let guardian: SSRFGuard
    let writer: ResultWriter
}

// MARK: - Result writer

/// Records attempt results in batches: whatever accumulated while the previous transaction ran goes into the
/// next one. After each flush it releases the deliveries from their loops' "held" sets and rings those loops,
/// because a record's next event is claimable only once its head is recorded.
final class ResultWriter: Sendable {
    private struct Item {
        var result: AttemptResult
        var runner: SubscriberRunner
    }

    private let store: any StateStoring
    private let logger: Logger
    private let pending = Mutex<[Item]>([])
    private let doorbell = Doorbell()
    /// Upper bound of one transaction; more waits for the next.
    private let maxBatch = 2000

    init(store: any StateStoring, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func submit(_ result: AttemptResult, from runner: SubscriberRunner) {
        pending.withLock { $0.append(Item(result: result, runner: runner)) }
        doorbell.ring()
    }

    /// Flush what is left, then end `run()`.
    func close() { doorbell.close() }

    func run() async {
        while true {
            await doorbell.wait()
            while true {
                let batch = pending.withLock { items -> [Item] in
                    let count = min(items.count, maxBatch)
                    defer { items.removeFirst(count) }
                    return Array(items.prefix(count))
                }
                if batch.isEmpty { break }
                await flush(batch)
            }
            if doorbell.isClosed, pending.withLock({ $0.isEmpty }) { return }
        }
    }

    private func flush(_ batch: [Item]) async {
        let results = batch.map(\.result)
        do {
            let superseded = try await store.perform { try $0.recordAttempts(results) }
            for id in superseded {
                // Not an error: the row was re-armed (redeliver, replay) while this attempt was in flight, and the
                // re-arm stands — the delivery goes out again (docs/DESIGN.md §5, lease-checked results).
                logger.info("delivery re-armed during its attempt; the attempt is logged, the redelivery stands",
                            ["DELIVERY_ID": String(id)])
            }
        } catch {
            // One bad row (e.g. a delivery pruned meanwhile) must not lose the others: retry one by one.
            logger.error("recording a batch of delivery attempts failed; retrying one by one", error: error)
            for result in results {
                do {
                    try await store.perform { try $0.recordAttempt(result) }
                } catch {
                    logger.error("recording a delivery attempt failed",
                                 ["DELIVERY_ID": String(result.deliveryID)], error: error)
                }
            }
        }
        var byRunner: [ObjectIdentifier: (SubscriberRunner, [Int64])] = [:]
        for item in batch {
            byRunner[ObjectIdentifier(item.runner), default: (item.runner, [])].1.append(item.result.deliveryID)
        }
        for (runner, ids) in byRunner.values { runner.released(ids) }
    }
}
