// The engine facade the daemon and the CLI use: one PollRunner per configured object, scheduled by the
// Scheduler (immediate start, per-connection rate-limit gates, trigger, reload), plus a heartbeat the
// daemon's systemd watchdog checks. Knows no HTTP, configuration or delivery: the daemon hands it
// ObjectPlans with their sources and a router built from the subscribers.
public import Core
public import Foundation
public import Logging
public import Store
import Synchronization

/// A failure of one object during ``Engine/pollOnce(connection:object:dryRun:)``, with the reports of the
/// objects that completed before it.
public struct PollOnceFailure: Error, Sendable, CustomStringConvertible {
    public var connection: String
    public var object: String
    public var underlying: any Error
    public var completed: [CycleReport]

    public var description: String { "\(connection)/\(object): \(underlying)" }
}

/// What ``Engine/update(targets:router:)`` did, by object.
public struct EngineUpdate: Sendable, Equatable {
    public var added: Set<JobKey> = []
    /// Kept objects whose target revision changed: restarted at once.
    public var changed: Set<JobKey> = []
    public var removed: Set<JobKey> = []
    public init() {}
}

/// What the watchdog sees.
public struct EngineLiveness: Sendable {
    /// Time since the supervisor loop last completed a beat (a round trip through the store's queue).
    public var sinceLastBeat: Duration
    /// Scheduled objects.
    public var jobs: Int
    public var started: Bool
}

public final class Engine: Sendable {
    public struct Options: Sendable {
        /// Global bound on cycles running at once.
        public var maxConcurrentPolls = 8
        public var timing = RetryTiming()
        /// How often the supervisor beats. The daemon's watchdog should allow several beats.
        public var heartbeatInterval: Duration = .seconds(1)
        /// Told about every finished cycle and what started it (the demo marks events from hinted polls). Runs
        /// on the cycle's task, so it must return at once.
        public var onCycle: (@Sendable (CycleReport, CycleTrigger) -> Void)?
        /// The shared count of budgeted connections' requests (docs/DESIGN.md §2 rule 22; the daemon's store);
        /// nil: plans assume nothing was used today.
        public var requestBudget: (any RequestBudget)?
        public init() {}
    }

    private struct State {
        var runners: [JobKey: PollRunner] = [:]
        var router: EventRouter
        var started = false
        var supervisor: Task<Void, Never>?
    }

    private let store: any StateStoring
    private let logger: Logger
    private let metrics: MetricsRegistry?
    private let now: @Sendable () -> Date
    private let options: Options
    private let scheduler: Scheduler
    private let state: Mutex<State>
    private let clock = ContinuousClock()
    private let lastBeat: Mutex<ContinuousClock.Instant>
    private let beatStalled = Mutex(false)
    /// Objects with a hint-triggered cycle owed: set before the doorbell rings, taken by the next cycle, so that
    /// cycle's log line says `TRIGGER=hint` (a hint never changes what the cycle reads or emits, rule 23).
    private let hinted = HintedKeys()

    public init(store: any StateStoring, logger: Logger, metrics: MetricsRegistry? = nil,
                router: @escaping EventRouter, options: Options = Options(),
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.logger = logger
        self.metrics = metrics
        self.now = now
        self.options = options
        state = Mutex(State(router: router))
        lastBeat = Mutex(ContinuousClock().now)
        let log = logger
        let budgetMetrics = BudgetMetrics(metrics)
        let planStore = store
        let budgets = SchedulerBudgets(counter: options.requestBudget) { report in
            budgetMetrics.record(report)
            // For `status`, which runs in another process; a lost write only leaves status one plan behind.
            _ = planStore.enqueue { try $0.saveBudgetPlans(Engine.planRows(report)) }
        }
        scheduler = Scheduler(maxConcurrentPolls: options.maxConcurrentPolls, timing: options.timing,
                              budgets: budgets) { key, outcome in
            Engine.logOutcome(log, key: key, outcome: outcome)
        }
    }

    // MARK: - Objects

    /// Makes the polled set equal to `targets` (SIGHUP reload): new objects are added (and, once started,
    /// polled at once), removed objects stop. Cursors and snapshots are keyed by (connection, object, partition),
    /// so an object that stays keeps its state.
    ///
    /// Targets are compared by ``PollTarget/revision``: an object whose revision is unchanged keeps its runner,
    /// its source (auth tokens, rate-limit state) and its place in the schedule — no gap, no extra poll. One whose
    /// revision changed gets the new target and is restarted at once (its running cycle is cancelled after the
    /// last committed page). Targets without a revision (nil) are updated in place and apply from their next cycle.
    /// `router`, when given, replaces the subscriber routing for every object.
    /// - Returns: the keys that were added, restarted (changed) and removed.
    @discardableResult
    public func update(targets: [PollTarget], router: EventRouter? = nil) -> EngineUpdate {
        let (jobs, result) = state.withLock { state -> ([ScheduledJob]?, EngineUpdate) in
            if let router { state.router = router }
            var result = EngineUpdate()
            var runners: [JobKey: PollRunner] = [:]
            for target in targets {
                let key = target.plan.key
                if let existing = state.runners[key] ?? runners[key] {
                    let old = existing.target.revision
                    if old == nil || target.revision == nil || old != target.revision {
                        existing.update(target: target)
                        if old != nil && target.revision != nil { result.changed.insert(key) }
                    }
                    if let router { existing.update(router: router) }
                    runners[key] = existing
                } else {
                    runners[key] = PollRunner(target: target, store: store, router: state.router, logger: logger,
                                              metrics: metrics, now: now)
                    result.added.insert(key)
                }
            }
            result.removed = Set(state.runners.keys).subtracting(runners.keys)
            state.runners = runners
            return (state.started ? runners.values.map(job) : nil, result)
        }
        if let jobs { scheduler.update(jobs: jobs, restarting: result.changed) }
        return result
    }

    /// The objects the engine polls.
    public var keys: [JobKey] {
        state.withLock { Array($0.runners.keys) }.sorted { ($0.connection, $0.object) < ($1.connection, $1.object) }
    }

    /// The runner of one object (tests, status).
    public func runner(for key: JobKey) -> PollRunner? { state.withLock { $0.runners[key] } }

    private func job(_ runner: PollRunner) -> ScheduledJob {
        let hinted = self.hinted
        let onCycle = options.onCycle
        return ScheduledJob(key: runner.key, interval: runner.target.plan.interval, budget: runner.target.plan.budget) {
            let trigger: CycleTrigger = hinted.take(runner.key) ? .hint : .schedule
            let report = try await runner.runCycle(trigger: trigger)
            // Another node polls this object (rule 19): tell the budget planner this cycle measured nothing.
            if report.leaseOutcome != nil { RequestMeter.current?.markSkipped() }
            onCycle?(report, trigger)
        }
    }

    /// The interval `key` waits between cycles: configured, or stretched by its connection's budget (rule 22).
    public func effectiveInterval(_ key: JobKey) -> Duration? { scheduler.effectiveInterval(key) }

    /// A budgeted connection's latest plan (rule 22).
    public func budgetPlan(connection: String) -> BudgetPlanReport? { scheduler.budgetPlan(connection: connection) }

    static func planRows(_ report: BudgetPlanReport) -> [BudgetPlanRow] {
        // Only what this node measured: the node polling an object owns its row (other nodes read it, rule 22).
        report.objects.filter(\.measuredHere).map { object in
            BudgetPlanRow(connection: report.connection, object: object.object, configuredInterval: object.configured,
                          effectiveInterval: report.plan.effective[object.object] ?? object.configured,
                          costPerCycle: object.costPerCycle, perDay: report.limits.perDay, updatedAt: report.at)
        }
    }

    // MARK: - Running

    /// Starts polling every object (at once, with the scheduler's small start jitter, docs/DESIGN.md §2 rule 10) and
    /// the supervisor heartbeat. Idempotent.
    public func start() {
        let jobs = state.withLock { state -> [ScheduledJob]? in
            guard !state.started else { return nil }
            state.started = true
            state.supervisor = Task { [self] in await supervise() }
            return state.runners.values.map(job)
        }
        if let jobs { scheduler.update(jobs: jobs) }
    }

    /// Runs one cycle of each object of `connection` (or just `object`) now, in object order, and returns
    /// their reports (`deltahook poll-once`). Works whether or not the engine was started; never overlaps a
    /// scheduled cycle of the same object. `dryRun` writes nothing and returns the would-be events.
    /// - Throws: ``EngineError/unknownObject(connection:object:)``; ``PollOnceFailure`` when an object fails
    ///   (carrying the reports of the objects before it).
    public func pollOnce(connection: String, object: String? = nil, dryRun: Bool = false) async throws
        -> [CycleReport]
    {
        let runners = state.withLock { state in
            state.runners.filter { $0.key.connection == connection && (object == nil || $0.key.object == object) }
                .sorted { $0.key.object < $1.key.object }.map(\.value)
        }
        guard !runners.isEmpty else { throw EngineError.unknownObject(connection: connection, object: object) }
        var reports: [CycleReport] = []
        for runner in runners {
            do {
                reports.append(try await runner.runCycle(dryRun: dryRun))
            } catch {
                throw PollOnceFailure(connection: connection, object: runner.key.object, underlying: error,
                                      completed: reports)
            }
        }
        return reports
    }

    /// Starts a cycle of `connection` (or just `object`) now, or right after the running one (push hints,
    /// operator). Returns how many scheduled objects were triggered (0 before `start()`). `reason` only labels
    /// the cycle (`TRIGGER=hint` in its log line); rings before a cycle starts coalesce into that one cycle.
    @discardableResult
    public func trigger(connection: String, object: String? = nil, reason: CycleTrigger = .operator) -> Int {
        let keys = self.keys.filter { $0.connection == connection && (object == nil || $0.object == object) }
        if reason == .hint { hinted.insert(keys) }
        return keys.filter { scheduler.trigger($0) }.count
    }

    /// Stops every job and the supervisor, and waits for running cycles to end. A cycle cancelled between
    /// pages resumes after its last committed page on the next start.
    public func shutdown() async {
        let supervisor = state.withLock { state -> Task<Void, Never>? in
            state.started = false
            defer { state.supervisor = nil }
            return state.supervisor
        }
        supervisor?.cancel()
        await scheduler.shutdown()
        await supervisor?.value
    }

    // MARK: - Liveness

    /// The supervisor loop beats every `heartbeatInterval` after a round trip through the store's serial
    /// queue, so a wedged store or a starved cooperative pool stops the beat and the watchdog (WATCHDOG=1
    /// only while alive) lets systemd restart the daemon.
    public var liveness: EngineLiveness {
        let since = clock.now - lastBeat.withLock { $0 }
        let (jobs, started) = state.withLock { ($0.runners.count, $0.started) }
        return EngineLiveness(sinceLastBeat: since, jobs: jobs, started: started)
    }

    /// True when the supervisor beat within `window`.
    public func isAlive(within window: Duration) -> Bool { liveness.sinceLastBeat <= window }

    /// Debug/test hook: while `stalled`, the supervisor skips its beats, as if the engine were stuck, so the
    /// watchdog path can be exercised (`isAlive` turns false after the window).
    public func debugStallHeartbeat(_ stalled: Bool) { beatStalled.withLock { $0 = stalled } }

    private func supervise() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: options.heartbeatInterval)
                try await store.perform { _ in () }
            } catch {
                if Task.isCancelled { return }
                continue
            }
            if !beatStalled.withLock({ $0 }) {
                let instant = clock.now
                lastBeat.withLock { $0 = instant }
            }
        }
    }

    /// The keys owed a hinted cycle; a class so each job's closure can hold it without holding the engine.
    private final class HintedKeys: Sendable {
        private let keys = Mutex<Set<JobKey>>([])
        func insert(_ new: [JobKey]) { keys.withLock { $0.formUnion(new) } }
        func take(_ key: JobKey) -> Bool { keys.withLock { $0.remove(key) != nil } }
    }

    private static func logOutcome(_ logger: Logger, key: JobKey, outcome: CycleOutcome) {
        switch outcome {
        case .succeeded:
            break
        case .failed(let error, let next):
            logger.error("poll cycle failed", [.connection: key.connection, .object: key.object,
                                               "NEXT_ATTEMPT_IN": DurationText.format(next)], error: error)
        case .rateLimited(let wait):
            logger.warning("rate limited; the whole connection waits", [
                .connection: key.connection, .object: key.object, "WAIT": DurationText.format(wait),
            ])
        }
    }
}
