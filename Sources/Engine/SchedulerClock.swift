// The scheduler's time: what "now" is (connection gates) and how it sleeps between cycles. The daemon uses the
// system's continuous clock; tests drive a manual clock they advance, so no scheduler test depends on how fast
// the machine runs.
import Core
public import Foundation

public protocol SchedulerClock: Sendable {
    var now: ContinuousClock.Instant { get }
    /// Wall-clock time, for what is counted per UTC day (request budgets, docs/DESIGN.md §2 rule 22). A manual
    /// clock moves it with `now`, so a test's days pass as fast as it advances.
    var wallClock: Date { get }
    /// Sleeps for `duration`; throws `CancellationError` when the task is cancelled.
    func sleep(for duration: Duration) async throws
}

/// `ContinuousClock`: the daemon's scheduler clock.
public struct SystemSchedulerClock: SchedulerClock {
    public init() {}
    public var now: ContinuousClock.Instant { ContinuousClock.now }
    public var wallClock: Date { Date() }
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}
