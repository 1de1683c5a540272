// ShutdownTrigger on its own: the first reason wins, every waiter wakes, later waits return at once, and a
// cancelled waiter stops waiting. Every wait is bounded.
import Daemon
import Synchronization
import TestSupport
import Testing

@Suite("ShutdownTrigger")
struct ShutdownTriggerTests {
    @Test("fire wakes every waiter and keeps the first reason")
    func fireWakesAll() async {
        let trigger = ShutdownTrigger()
        #expect(!trigger.isFired && trigger.reason == nil)
        let woken = Counter()
        let waiters = (0..<3).map { _ in
            Task {
                await trigger.wait()
                woken.add()
            }
        }
        trigger.fire(reason: "SIGTERM")
        trigger.fire(reason: "SIGINT")
        #expect(await Wait.until(timeout: .seconds(10)) { woken.value == 3 })
        for waiter in waiters { await waiter.value }
        #expect(trigger.isFired)
        #expect(trigger.reason == "SIGTERM")
    }

    @Test("a wait after fire returns at once")
    func waitAfterFire() async {
        let trigger = ShutdownTrigger()
        trigger.fire(reason: "stop")
        let started = ContinuousClock.now
        await trigger.wait()
        await trigger.wait()
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test("cancelling a waiting task ends its wait without firing")
    func cancellationEndsWait() async {
        let trigger = ShutdownTrigger()
        let done = Counter()
        let waiter = Task {
            await trigger.wait()
            done.add()
        }
        waiter.cancel()
        #expect(await Wait.until(timeout: .seconds(10)) { done.value == 1 })
        #expect(!trigger.isFired)
        // A later fire still reaches a new waiter.
        let second = Task { await trigger.wait() }
        trigger.fire(reason: "later")
        await second.value
        #expect(trigger.reason == "later")
    }
}

/// A count several tasks add to.
private final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
