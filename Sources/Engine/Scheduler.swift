// The scheduler: one loop per (connection, object). Polls start at once with a small jitter, then every
// `interval`; failures back off exponentially with jitter; rate-limit waits apply to the whole connection
// because provider limits are per user or account (docs/DESIGN.md §2 rules 9 and 10). A global semaphore bounds
// concurrent polls. `trigger` starts a poll now (push hints, `poll-once`). A connection with a request budget has
// its intervals planned to fit it (rule 22, `BudgetPlanner`): each cycle's charged requests are counted at the
// providers' transport into a task-local tally, and after the cycle the connection's plan is recomputed from those
// costs and the day's shared count.
public import Core
public import Foundation
import Synchronization

/// Identifies a schedule.
public struct JobKey: Sendable, Hashable, CustomStringConvertible {
    public var connection: String
    public var object: String
    public init(connection: String, object: String) {
        self.connection = connection
        self.object = object
    }
    public var description: String { "\(connection)/\(object)" }
}

/// One scheduled poll: `poll` runs a full cycle (all pages, then reconciliation when due).
public struct ScheduledJob: Sendable {
    public var key: JobKey
    public var interval: Duration
    public var poll: @Sendable () async throws -> Void
    /// The connection's `budget` (docs/DESIGN.md §2 rule 22); nil: `interval` as configured.
    public var budget: RequestBudgetLimits?

    public init(key: JobKey, interval: Duration, budget: RequestBudgetLimits? = nil,
                poll: @escaping @Sendable () async throws -> Void) {
        self.key = key
        self.interval = interval
        self.budget = budget
        self.poll = poll
    }
}

/// How long to wait after a cycle.
public struct RetryTiming: Sendable {
    /// Longest error backoff.
    public var maxBackoff: Duration = .seconds(15 * 60)
    /// Start-up jitter bound (polls start within this after the daemon starts).
    public var startJitter: Duration = .milliseconds(900)
    /// ± fraction applied to intervals and backoffs so many objects do not poll in lockstep.
    public var jitterFraction: Double = 0.1

    public init() {}

    /// Delay after `consecutiveFailures` failed cycles (≥ 1): interval × 2^(n−1), capped, never below 1 s.
    public func backoff(interval: Duration, consecutiveFailures: Int) -> Duration {
        let base = max(interval.seconds, 1)
        let exponent = Double(min(consecutiveFailures - 1, 20))
        let seconds = min(base * pow2(exponent), max(maxBackoff.seconds, base))
        return .milliseconds(Timestamps.saturatingInt64(seconds * 1000))
    }

    func pow2(_ e: Double) -> Double { var r = 1.0; var i = 0.0; while i < e { r *= 2; i += 1 }; return r }

    /// `duration` moved by a random fraction in ±jitterFraction.
    public func jittered(_ duration: Duration, using generator: inout some RandomNumberGenerator) -> Duration {
        let ms = Double(duration.milliseconds)
        let factor = 1 + Double.random(in: -jitterFraction...jitterFraction, using: &generator)
        return .milliseconds(Int64(max(0, ms * factor)))
    }
}

/// The outcome of one cycle, reported to an observer (status, metrics, logs).
public enum CycleOutcome: Sendable {
    case succeeded
    case failed(any Error, nextAttemptIn: Duration)
    case rateLimited(wait: Duration)
}

/// A connection's plan after a cycle of one of its objects (status, metrics).
public struct BudgetPlanReport: Sendable {
    public var connection: String
    public var limits: RequestBudgetLimits
    public var objects: [BudgetedObject]
    public var plan: BudgetPlan
    /// The shared count of today's requests the plan was made with.
    public var usedToday: Int
    /// Wall-clock time of the plan (the scheduler clock's).
    public var at: Date
}

/// How the scheduler plans budgeted connections (docs/DESIGN.md §2 rule 22).
public struct SchedulerBudgets: Sendable {
    /// The shared count of each connection's requests today; nil: plans assume none were used (unit tests).
    public var counter: (any RequestBudget)?
    /// Told every new plan (never blocks the scheduler).
    public var onPlan: @Sendable (BudgetPlanReport) -> Void

    public init(counter: (any RequestBudget)? = nil, onPlan: @escaping @Sendable (BudgetPlanReport) -> Void = { _ in }) {
        self.counter = counter
        self.onPlan = onPlan
    }
}

/// Thrown inside the permit when the connection's gate closed while the job waited for it.
struct ConnectionBlocked: Error {
    var until: ContinuousClock.Instant
}

/// Per-connection "do not call before" instants, shared by every object of the connection.
final class ConnectionGates: Sendable {
    private let blockedUntil = Mutex<[String: ContinuousClock.Instant]>([:])

    func block(_ connection: String, until instant: ContinuousClock.Instant) {
        blockedUntil.withLock { map in
            if let existing = map[connection], existing >= instant { return }
            map[connection] = instant
        }
    }

    func deadline(for connection: String) -> ContinuousClock.Instant? {
        blockedUntil.withLock { $0[connection] }
    }
}

/// Runs jobs until cancelled. Jobs can be replaced at runtime (SIGHUP reload) with `update(jobs:)`.
public final class Scheduler: Sendable {
    private struct Entry {
        var job: ScheduledJob
        var doorbell: Doorbell
        var task: Task<Void, Never>
    }

    private let concurrency: AsyncSemaphore
    private let timing: RetryTiming
    private let gates = ConnectionGates()
    private let observer: @Sendable (JobKey, CycleOutcome) -> Void
    private let entries = Mutex<[JobKey: Entry]>([:])
    private let clock: any SchedulerClock
    private let budgets: SchedulerBudgets
    /// Moving average of the requests one cycle of each budgeted job was charged.
    private let costs = Mutex<[JobKey: Double]>([:])
    /// Each budgeted connection's latest plan.
    private let plans = Mutex<[String: BudgetPlanReport]>([:])

    /// - Parameters:
    ///   - maxConcurrentPolls: global bound on cycles running at once.
    ///   - clock: "now" for connection gates, and the waits between cycles (a manual clock in tests).
    ///   - budgets: the shared request count and who hears about plans, for jobs with a `budget`.
    ///   - observer: told about every cycle's outcome (never blocks the scheduler).
    public init(maxConcurrentPolls: Int = 8, timing: RetryTiming = RetryTiming(),
                clock: any SchedulerClock = SystemSchedulerClock(), budgets: SchedulerBudgets = SchedulerBudgets(),
                observer: @escaping @Sendable (JobKey, CycleOutcome) -> Void = { _, _ in }) {
        concurrency = AsyncSemaphore(value: max(1, maxConcurrentPolls))
        self.timing = timing
        self.clock = clock
        self.budgets = budgets
        self.observer = observer
    }

    /// The latest plan of a budgeted connection; nil before its first cycle.
    public func budgetPlan(connection: String) -> BudgetPlanReport? { plans.withLock { $0[connection] } }

    /// The interval `key` waits between cycles now: its configured one, or its connection's plan's.
    public func effectiveInterval(_ key: JobKey) -> Duration? {
        guard let job = currentJob(key) else { return nil }
        guard job.budget != nil else { return job.interval }
        return plans.withLock { $0[key.connection]?.plan.effective[key.object] } ?? job.interval
    }

    /// What a cycle says about its object's cost per cycle.
    private enum Measurement {
        /// The cycle ran (to its end, or to an error that ends cycles like it) and was charged this many requests.
        case charged(Int)
        /// Another node polls the object (rule 19): its measurement, not ours, counts from here on.
        case polledElsewhere
        /// A rate limit or a spent budget cut the cycle short: what it was charged is not what a cycle costs.
        case interrupted
    }

    /// Records what the cycle of `job` says about its cost, re-plans its connection and returns the job's interval.
    private func replan(_ job: ScheduledJob, _ measurement: Measurement) async -> Duration {
        guard let limits = job.budget else { return job.interval }
        let key = job.key
        let known = costs.withLock { map -> [JobKey: Double] in
            switch measurement {
            case .charged(let charged): map[key] = BudgetPlanner.averageCost(previous: map[key], charged: charged)
            case .polledElsewhere: map[key] = nil
            case .interrupted: break
            }
            return map
        }
        let shared = await budgets.counter?.sharedCosts(connection: key.connection) ?? [:]
        // Objects this node does not poll count what their node measured; objects nobody measured yet count one
        // request a cycle, the least a poll costs.
        let objects = entries.withLock { map in
            map.values.map(\.job).filter { $0.key.connection == key.connection && $0.budget != nil }
                .sorted { $0.key.object < $1.key.object }
                .map { job -> BudgetedObject in
                    if let cost = known[job.key] {
                        return BudgetedObject(object: job.key.object, configured: job.interval, costPerCycle: cost)
                    }
                    return BudgetedObject(object: job.key.object, configured: job.interval,
                                          costPerCycle: shared[job.key.object] ?? 1, measuredHere: false)
                }
        }
        var usedToday = 0
        if let counter = budgets.counter {
            // A failed read plans as if nothing were used: the transport's hard stop still holds the limit.
            usedToday = (try? await counter.usage(connection: key.connection).usedToday) ?? 0
        }
        let at = clock.wallClock
        let plan = BudgetPlanner.plan(limits: limits, objects: objects, usedToday: usedToday,
                                      secondsLeftInDay: RequestBudgetWindows.secondsLeftInDay(at: at))
        let report = BudgetPlanReport(connection: key.connection, limits: limits, objects: objects, plan: plan,
                                      usedToday: usedToday, at: at)
        plans.withLock { $0[key.connection] = report }
        budgets.onPlan(report)
        return plan.effective[key.object] ?? job.interval
    }

    /// Makes the running set equal to `jobs`: new keys start at once, removed keys stop, changed intervals
    /// take effect from the next wait. Running cycles of removed jobs are cancelled.
    ///
    /// A key kept and not in `restarting` keeps its loop, its place in the schedule (the pending wait is not
    /// reset) and its failure backoff: a reload that does not touch it leaves no gap in its polling. A key in
    /// `restarting` (its connection changed) has its loop cancelled — a running cycle stops after its last
    /// committed page — and a new loop starts at once with the new job.
    public func update(jobs: [ScheduledJob], restarting: Set<JobKey> = []) {
        let wanted = Dictionary(jobs.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
        let (toStop, toStart) = entries.withLock { map -> ([Entry], [ScheduledJob]) in
            var stop = [Entry]()
            for (key, entry) in map where wanted[key] == nil || restarting.contains(key) {
                stop.append(entry)
                map[key] = nil
            }
            var start = [ScheduledJob]()
            for (key, job) in wanted {
                if var existing = map[key] {
                    existing.job = job
                    map[key] = existing
                } else {
                    start.append(job)
                }
            }
            return (stop, start)
        }
        for entry in toStop {
            entry.task.cancel()
            entry.doorbell.close()
        }
        for job in toStart { start(job) }
    }

    private func start(_ job: ScheduledJob) {
        let doorbell = Doorbell()
        let key = job.key
        // The entry is registered before the loop can look it up.
        entries.withLock { map in
            let task = Task { [self] in await loop(key: key, doorbell: doorbell) }
            map[key] = Entry(job: job, doorbell: doorbell, task: task)
        }
    }

    /// Starts a cycle of `key` now (or right after the running one). Returns false for an unknown job.
    @discardableResult
    public func trigger(_ key: JobKey) -> Bool {
        guard let doorbell = entries.withLock({ $0[key]?.doorbell }) else { return false }
        doorbell.ring()
        return true
    }

    /// Stops every job and waits for running cycles to end.
    public func shutdown() async {
        let all = entries.withLock { map -> [Entry] in
            let values = Array(map.values)
            map.removeAll()
            return values
        }
        for entry in all {
            entry.task.cancel()
            entry.doorbell.close()
        }
        for entry in all { await entry.task.value }
    }

    public var jobCount: Int { entries.withLock { $0.count } }

    private func currentJob(_ key: JobKey) -> ScheduledJob? { entries.withLock { $0[key]?.job } }

    private func loop(key: JobKey, doorbell: Doorbell) async {
        var generator = SystemRandomNumberGenerator()
        var failures = 0
        // Start at once, within a small jitter, so a fresh daemon does not wait a full interval.
        var wait = Duration.milliseconds(Int64.random(in: 0...max(0, timing.startJitter.milliseconds),
                                                      using: &generator))
        while !Task.isCancelled {
            await doorbell.wait(upTo: wait) { [clock] in try await clock.sleep(for: $0) }
            guard !Task.isCancelled, let job = currentJob(key) else { return }
            // The whole connection waits out a rate limit, whichever object hit it.
            if let blocked = gates.deadline(for: key.connection), blocked > clock.now {
                wait = blocked - clock.now
                continue
            }
            // Counts the requests this cycle sends (the providers' budgeted transport adds to it).
            let tally = RequestTally()
            do {
                try await concurrency.withPermit {
                    // Another object of the connection may have hit a rate limit while this one waited for
                    // a permit: do not call the provider before the gate opens.
                    if let blocked = gates.deadline(for: key.connection), blocked > clock.now {
                        throw ConnectionBlocked(until: blocked)
                    }
                    try await RequestMeter.$current.withValue(tally) { try await job.poll() }
                }
                failures = 0
                observer(key, .succeeded)
                let interval = await replan(job, tally.skipped ? .polledElsewhere : .charged(tally.charged))
                wait = timing.jittered(interval, using: &generator)
            } catch is CancellationError {
                return
            } catch let blocked as ConnectionBlocked {
                wait = blocked.until - clock.now
            } catch ProviderError.rateLimited(let retryAfter, _) {
                // Exact wait, no jitter: the provider (or the spent budget) told us when (docs/DESIGN.md §2 rules 9, 22).
                gates.block(key.connection, until: clock.now.advanced(by: retryAfter))
                observer(key, .rateLimited(wait: retryAfter))
                _ = await replan(job, .interrupted)
                wait = retryAfter
            } catch {
                if Task.isCancelled { return }
                failures += 1
                let interval = await replan(job, .charged(tally.charged))
                wait = timing.jittered(timing.backoff(interval: interval, consecutiveFailures: failures),
                                       using: &generator)
                observer(key, .failed(error, nextAttemptIn: wait))
            }
        }
    }
}
