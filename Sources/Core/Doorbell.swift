// A wake-up signal for loops that sleep between rounds: the scheduler (trigger a poll now) and the
// dispatcher (new events committed). Rings are not counted: several rings before a wait wake it once.
import Synchronization

public final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var closed = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    /// Wakes the current or next waiter.
    public func ring() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else {
                s.rung = true
                return nil
            }
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// Wakes any waiter now and makes every later wait return immediately.
    public func close() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.closed = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Waits until rung, closed or the task is cancelled. Only one task may wait at a time.
    public func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.rung || s.closed || Task.isCancelled {
                        s.rung = false
                        return true
                    }
                    precondition(s.waiter == nil, "Doorbell supports one waiter at a time")
                    s.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }

    /// Waits until rung, closed, cancelled, or `duration` has passed. Returns true when rung or closed.
    @discardableResult
    public func wait(upTo duration: Duration) async -> Bool {
        await wait(upTo: duration) { try await Task.sleep(for: $0) }
    }

    /// ``wait(upTo:)`` with the timeout measured by `sleep` (a scheduler's clock; a manual one in tests).
    @discardableResult
    public func wait(upTo duration: Duration, sleep: @escaping @Sendable (Duration) async throws -> Void) async -> Bool {
        if duration <= .zero {
            return state.withLock { s in
                defer { s.rung = false }
                return s.rung || s.closed
            }
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do { try await sleep(duration) } catch { return false }
                return false
            }
            group.addTask {
                await self.wait()
                // A cancelled wait returns at once without a ring: report it as not rung.
                return !Task.isCancelled
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    public var isClosed: Bool { state.withLock { $0.closed } }
}
