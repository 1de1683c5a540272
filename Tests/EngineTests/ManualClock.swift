// A scheduler clock that moves only when the test says so. Sleepers wake when `advance` passes their deadline;
// `sleepers` tells a test when every loop is parked again, so it can advance time in steps without racing them.
import Engine
import Foundation
import Core
import Synchronization

final class ManualClock: SchedulerClock {
    private struct Sleeper {
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var offset = Duration.zero
        var sleepers: [UInt64: Sleeper] = [:]
        var nextID: UInt64 = 0
    }

    private let base = ContinuousClock.now
    private let state = Mutex(State())
    /// Wall-clock time at the start (a UTC midnight by default, so virtual days line up with UTC days).
    let wallStart: Date

    init(wallStart: Date = Date(timeIntervalSince1970: 1_772_409_600)) { self.wallStart = wallStart }

    var now: ContinuousClock.Instant { base + state.withLock { $0.offset } }

    var wallClock: Date { wallStart.addingTimeInterval(elapsed.seconds) }

    /// The earliest deadline of a sleeper, if any sleeps.
    var nextDeadline: ContinuousClock.Instant? { state.withLock { $0.sleepers.values.map(\.deadline).min() } }

    /// Moves time forward to the earliest sleeper's deadline (an event-driven step); false when nobody sleeps.
    @discardableResult
    func advanceToNextDeadline() -> Bool {
        guard let deadline = nextDeadline else { return false }
        advance(by: max(.zero, deadline - now))
        return true
    }

    /// Time since the clock was made.
    var elapsed: Duration { state.withLock { $0.offset } }

    /// Tasks sleeping on this clock now.
    var sleepers: Int { state.withLock { $0.sleepers.count } }

    func sleep(for duration: Duration) async throws {
        guard duration > .zero else { return }
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = state.withLock { s -> Bool in
                    if Task.isCancelled { return true }
                    s.sleepers[id] = Sleeper(deadline: base + s.offset + duration, continuation: continuation)
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            state.withLock { $0.sleepers.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes every sleeper whose deadline has come.
    func advance(by duration: Duration) {
        let due = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.offset += duration
            let now = base + s.offset
            let ids = s.sleepers.filter { $0.value.deadline <= now }.map(\.key)
            return ids.compactMap { s.sleepers.removeValue(forKey: $0)?.continuation }
        }
        for continuation in due { continuation.resume() }
    }
}
