// Doorbell and AsyncSemaphore on their own: what wakes a waiter, what does not count twice, what cancellation does.
// Every wait is bounded; no test asserts that something did not happen by sleeping and looking.
import Core
import Synchronization
import TestSupport
import Testing

@Suite("Doorbell")
struct DoorbellTests {
    @Test("a ring before the wait is kept: the wait returns at once, rung")
    func ringBeforeWait() async {
        let bell = Doorbell()
        bell.ring()
        // With a ring already pending the wait returns true; a timeout would have returned false.
        #expect(await bell.wait(upTo: .seconds(30)))
    }

    @Test("rings are not counted: two rings wake one wait, the next one times out")
    func ringsAreNotCounted() async {
        let bell = Doorbell()
        bell.ring()
        bell.ring()
        #expect(await bell.wait(upTo: .seconds(30)))
        #expect(await bell.wait(upTo: .milliseconds(30)) == false, "the second ring was counted")
    }

    @Test("a ring wakes a waiting task long before its wait would time out")
    func ringWakesWaiter() async {
        let bell = Doorbell()
        let waiting = Box(false)
        let waiter = Task {
            waiting.set(true)
            return await bell.wait(upTo: .seconds(30))
        }
        #expect(await Wait.until(timeout: .seconds(10)) { waiting.get() })
        bell.ring()  // whether the waiter has parked yet or not: a ring before the park is kept
        #expect(await waiter.value == true)
    }

    @Test("close wakes the waiter and makes every later wait return at once")
    func closeIsFinal() async {
        let bell = Doorbell()
        let waiter = Task { await bell.wait(upTo: .seconds(30)) }
        bell.close()
        #expect(await waiter.value == true)
        #expect(bell.isClosed)
        #expect(await bell.wait(upTo: .seconds(30)))
        #expect(await bell.wait(upTo: .seconds(30)))
        #expect(await bell.wait(upTo: .zero))
    }

    @Test("cancelling the waiting task ends its wait, not rung")
    func cancellationEndsWait() async {
        let bell = Doorbell()
        let waiter = Task { await bell.wait(upTo: .seconds(30)) }
        waiter.cancel()
        #expect(await waiter.value == false)
        // The bell still works for the next waiter.
        bell.ring()
        #expect(await bell.wait(upTo: .seconds(30)))
    }

    @Test("a zero wait reports a pending ring and consumes it")
    func zeroWait() async {
        let bell = Doorbell()
        #expect(await bell.wait(upTo: .zero) == false)
        bell.ring()
        #expect(await bell.wait(upTo: .zero))
        #expect(await bell.wait(upTo: .zero) == false)
    }
}

@Suite("AsyncSemaphore")
struct AsyncSemaphoreTests {
    @Test("no more than `value` bodies run at once, and every body runs")
    func boundsConcurrency() async throws {
        let semaphore = AsyncSemaphore(value: 2)
        let counts = Box((current: 0, peak: 0, done: 0))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    try await semaphore.withPermit {
                        counts.update { $0.current += 1; $0.peak = max($0.peak, $0.current) }
                        try await Task.sleep(for: .milliseconds(10))
                        counts.update { $0.current -= 1; $0.done += 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = counts.get()
        #expect(final.done == 8)
        #expect(final.peak <= 2, "peak \(final.peak)")
        #expect(final.current == 0)
    }

    @Test("a waiter gets the permit only after it is released")
    func waiterRunsAfterRelease() async throws {
        let semaphore = AsyncSemaphore(value: 1)
        try await semaphore.acquire()
        let log = Box<[String]>([])
        let waiter = Task {
            try await semaphore.acquire()
            log.update { $0.append("acquired") }
            semaphore.release()
        }
        // Whatever the waiter does meanwhile, it cannot get past `acquire` before this release.
        await Task.yield()
        log.update { $0.append("released") }
        semaphore.release()
        try await waiter.value
        #expect(log.get() == ["released", "acquired"])
    }

    @Test("a cancelled waiter throws CancellationError and leaves no claim on the next permit")
    func cancelledWaiter() async throws {
        let semaphore = AsyncSemaphore(value: 1)
        try await semaphore.acquire()
        let waiter = Task { try await semaphore.acquire() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        semaphore.release()
        // The permit is free again: a fresh acquire gets it without waiting for anyone.
        let got = Box(false)
        let next = Task {
            try await semaphore.acquire()
            got.set(true)
        }
        #expect(await Wait.until(timeout: .seconds(10)) { got.get() }, "the permit went to the cancelled waiter")
        next.cancel()
    }

    @Test("withPermit gives the permit back when its body throws")
    func releasesOnThrow() async throws {
        struct Boom: Error {}
        let semaphore = AsyncSemaphore(value: 1)
        await #expect(throws: Boom.self) { try await semaphore.withPermit { throw Boom() } }
        let value = try await semaphore.withPermit { 42 }
        #expect(value == 42)
    }
}

/// A value several tasks share.
private final class Box<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func get() -> Value { value.withLock { $0 } }
    func set(_ new: Value) { value.withLock { $0 = new } }
    func update(_ change: (inout Value) -> Void) { value.withLock { change(&$0) } }
}
