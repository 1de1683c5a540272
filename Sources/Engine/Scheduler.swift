// The scheduler: one loop per (connection, object). Polls start at once with a small jitter, then every
// `interval`; failures back off exponentially with jitter; rate-limit waits apply to the whole connection
// because provider limits are per user or account (docs/DESIGN.md §2 rules 9 and 10). A global semaphore bounds
// concurrent polls. `trigger` starts a poll now (push hints, `poll-once`).
import Core
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

    public init(key: JobKey, interval: Duration, poll: @escaping @Sendable () async throws -> Void) {
        self.key = key
        self.interval = interval
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

    /// - Parameters:
    ///   - maxConcurrentPolls: global bound on cycles running at once.
    ///   - clock: "now" for connection gates, and the waits between cycles (a manual clock in tests).
    ///   - observer: told about every cycle's outcome (never blocks the scheduler).
    public init(maxConcurrentPolls: Int = 8, timing: RetryTiming = RetryTiming(),
                clock: any SchedulerClock = SystemSchedulerClock(),
                observer: @escaping @Sendable (JobKey, CycleOutcome) -> Void = { _, _ in }) {
        concurrency = AsyncSemaphore(value: max(1, maxConcurrentPolls))
        self.timing = timing
        self.clock = clock
        self.observer = observer
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
            do {
                try await concurrency.withPermit {
                    // Another object of the connection may have hit a rate limit while this one waited for
                    // a permit: do not call the provider before the gate opens.
                    if let blocked = gates.deadline(for: key.connection), blocked > clock.now {
                        throw ConnectionBlocked(until: blocked)
                    }
                    try await job.poll()
                }
                failures = 0
                observer(key, .succeeded)
                wait = timing.jittered(job.interval, using: &generator)
            } catch is CancellationError {
                return
            } catch let blocked as ConnectionBlocked {
                wait = blocked.until - clock.now
            } catch ProviderError.rateLimited(let retryAfter, _) {
                // Exact wait, no jitter: the provider told us when (docs/DESIGN.md §2 rule 9).
                gates.block(key.connection, until: clock.now.advanced(by: retryAfter))
                observer(key, .rateLimited(wait: retryAfter))
                wait = retryAfter
            } catch {
                if Task.isCancelled { return }
                failures += 1
                wait = timing.jittered(timing.backoff(interval: job.interval, consecutiveFailures: failures),
                                       using: &generator)
                observer(key, .failed(error, nextAttemptIn: wait))
            }
        }
    }
}
