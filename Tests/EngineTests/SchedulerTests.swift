// Scheduler and Engine facade: ordering, never speed. Waits are bounded polls of a condition.
import Core
import Engine
import Foundation
import Logging
import Store
import Synchronization
import TestSupport
import Testing

/// Records when each job's poll started, in the scheduler clock's time since the test began.
final class PollLog: Sendable {
    struct Entry: Sendable {
        var key: JobKey
        var at: Duration
    }
    private let entries = Mutex<[Entry]>([])
    func note(_ key: JobKey, at: Duration) { entries.withLock { $0.append(Entry(key: key, at: at)) } }
    var all: [Entry] { entries.withLock { $0 } }
    func count(_ key: JobKey) -> Int { all.filter { $0.key == key }.count }
    func times(_ key: JobKey) -> [Duration] { all.filter { $0.key == key }.map(\.at) }
}

/// Waits until `condition` holds, checking every 5 ms, for at most 10 s (the shared `Wait.until`).
private func eventually(_ condition: () throws -> Bool) async rethrows -> Bool {
    try await Wait.until(timeout: .seconds(10), interval: .milliseconds(5), condition)
}

func quickTiming() -> RetryTiming {
    var timing = RetryTiming()
    timing.startJitter = .zero
    timing.jitterFraction = 0
    return timing
}

@Suite("Scheduler")
struct SchedulerTests {
    /// Waits (bounded) until `loops` scheduler loops sleep on `clock` again, i.e. everything the last advance woke
    /// has run.
    private func settled(_ clock: ManualClock, loops: Int) async -> Bool {
        await Wait.until(timeout: .seconds(10), interval: .milliseconds(1)) { clock.sleepers == loops }
    }

    @Test("a rate limit blocks every object of the connection for Retry-After; other connections go on (rules 9, 10)")
    func rateLimitGate() async throws {
        let clock = ManualClock()
        let log = PollLog()
        let a = JobKey(connection: "c1", object: "a")
        let b = JobKey(connection: "c1", object: "b")
        let c = JobKey(connection: "c2", object: "c")
        let step = Duration.milliseconds(100)
        let retryAfter = Duration.milliseconds(600)
        let scheduler = Scheduler(maxConcurrentPolls: 8, timing: quickTiming(), clock: clock)
        scheduler.update(jobs: [
            ScheduledJob(key: a, interval: .seconds(1)) {
                log.note(a, at: clock.elapsed)
                if log.count(a) == 2 { throw ProviderError.rateLimited(retryAfter: retryAfter, message: "429") }
            },
            ScheduledJob(key: b, interval: step) { log.note(b, at: clock.elapsed) },
            ScheduledJob(key: c, interval: step) { log.note(c, at: clock.elapsed) },
        ])
        // t = 0: every job polls at once; then time moves in 100 ms steps to t = 1.6 s, each step run to rest.
        #expect(await settled(clock, loops: 3))
        for _ in 0..<16 {
            clock.advance(by: step)
            #expect(await settled(clock, loops: 3), "at \(clock.elapsed)")
        }
        await scheduler.shutdown()
        let hit = Duration.seconds(1)              // A's second poll answers 429
        let opens = hit + retryAfter               // the connection's gate opens again
        // A itself waits out Retry-After exactly.
        #expect(log.times(a) == [.zero, hit, opens], "\(log.times(a))")
        // B, same connection, polls every 100 ms until the 429, then not before the gate opens, then at once.
        let bTimes = log.times(b)
        #expect(bTimes.filter { $0 < hit }.count == 10, "\(bTimes)")
        #expect(!bTimes.contains { $0 > hit && $0 < opens }, "\(bTimes)")
        #expect(bTimes.contains(opens), "\(bTimes)")
        // C, another connection, was never blocked: every step from 0 to 1.6 s.
        #expect(log.count(c) == 17, "\(log.times(c))")
    }

    @Test("polls start at once, trigger runs a cycle now, unknown keys are refused (rule 10)")
    func triggerRunsNow() async {
        let clock = ManualClock()
        let log = PollLog()
        let key = JobKey(connection: "c", object: "o")
        let scheduler = Scheduler(timing: quickTiming(), clock: clock)
        scheduler.update(jobs: [ScheduledJob(key: key, interval: .seconds(3600)) { log.note(key, at: clock.elapsed) }])
        #expect(await eventually { log.count(key) == 1 })
        #expect(await settled(clock, loops: 1))
        #expect(scheduler.trigger(key))
        #expect(await eventually { log.count(key) == 2 })
        // Both polls at t = 0: the first needed no interval, the second no time at all.
        #expect(log.times(key) == [.zero, .zero])
        #expect(!scheduler.trigger(JobKey(connection: "c", object: "nope")))
        await scheduler.shutdown()
    }

    @Test("shutdown cancels a running cycle and stops the loop")
    func cancellationStops() async {
        let clock = ManualClock()
        let key = JobKey(connection: "c", object: "o")
        let started = Mutex(0)
        let cancelled = Mutex(false)
        let scheduler = Scheduler(timing: quickTiming(), clock: clock)
        scheduler.update(jobs: [ScheduledJob(key: key, interval: .milliseconds(1)) {
            started.withLock { $0 += 1 }
            do { try await Task.sleep(for: .seconds(3600)) } catch {
                cancelled.withLock { $0 = true }
                throw error
            }
        }])
        #expect(await eventually { started.withLock { $0 } == 1 })
        await scheduler.shutdown()                              // returns only once the loop has ended
        #expect(cancelled.withLock { $0 })
        #expect(scheduler.jobCount == 0)
        // The loop is gone, not waiting for its next cycle: time passing cannot start one.
        #expect(clock.sleepers == 0)
        clock.advance(by: .seconds(10))
        #expect(started.withLock { $0 } == 1)
    }

    @Test("update(jobs:) starts new jobs and stops removed ones (SIGHUP reload)")
    func updateAddsAndRemoves() async {
        let clock = ManualClock()
        let log = PollLog()
        let a = JobKey(connection: "c", object: "a")
        let b = JobKey(connection: "c", object: "b")
        let step = Duration.milliseconds(100)
        let scheduler = Scheduler(timing: quickTiming(), clock: clock)
        scheduler.update(jobs: [ScheduledJob(key: a, interval: step) { log.note(a, at: clock.elapsed) }])
        #expect(await settled(clock, loops: 1))
        clock.advance(by: step)
        #expect(await settled(clock, loops: 1))
        #expect(log.count(a) == 2)
        scheduler.update(jobs: [ScheduledJob(key: b, interval: step) { log.note(b, at: clock.elapsed) }])
        #expect(scheduler.jobCount == 1)
        #expect(await eventually { log.count(b) == 1 })
        #expect(await settled(clock, loops: 1))                // A's loop left its sleep; only B's sleeps
        for _ in 0..<3 {
            clock.advance(by: step)
            #expect(await settled(clock, loops: 1))
        }
        await scheduler.shutdown()
        #expect(log.count(a) == 2, "a removed job polled again: \(log.times(a))")
        #expect(log.count(b) == 4, "\(log.times(b))")
        #expect(!scheduler.trigger(a))
    }
}

@Suite("Engine")
struct EngineFacadeTests {
    func engine(_ temp: TempStore, options: Engine.Options = Engine.Options()) -> Engine {
        Engine(store: temp.store, logger: Logger(level: .debug, sink: MemoryLogSink()), router: { _ in ["crm"] },
               options: options, now: StepClock().function)
    }

    func target(_ source: FakeSource, interval: Duration = .seconds(3600)) -> PollTarget {
        PollTarget(plan: ObjectPlan(descriptor: source.descriptor, interval: interval, reconcileEvery: nil,
                                    initialSync: .emit, pageSize: 10), source: source)
    }

    @Test("pollOnce runs the named objects, dry or for real, and names unknown ones")
    func pollOnce() async throws {
        let temp = try TempStore()
        let incidents = FakeSource(object: "incident")
        let users = FakeSource(object: "sys_user")
        incidents.upsert("i1", at: at(1), ["v": "1"])
        users.upsert("u1", at: at(1), ["v": "1"])
        let engine = engine(temp)
        engine.update(targets: [target(incidents), target(users)])
        let preview = try await engine.pollOnce(connection: "acme", dryRun: true)
        #expect(preview.map(\.object) == ["incident", "sys_user"] && preview.allSatisfy { $0.eventCount == 1 })
        #expect(try temp.events().isEmpty)
        let reports = try await engine.pollOnce(connection: "acme", object: "incident")
        #expect(reports.count == 1 && reports[0].events.map(\.recordID) == ["i1"])
        await #expect(throws: EngineError.self) { _ = try await engine.pollOnce(connection: "other") }

        users.state.withLock { $0.deltaErrors[$0.deltaCalls + 1] = .permission(message: "no rights") }
        do {
            _ = try await engine.pollOnce(connection: "acme")
            Issue.record("expected a failure")
        } catch let failure as PollOnceFailure {
            #expect(failure.object == "sys_user" && failure.completed.map(\.object) == ["incident"])
        }
    }

    @Test("start polls every object at once; update adds and removes objects; trigger and shutdown")
    func startUpdateShutdown() async throws {
        let temp = try TempStore()
        let first = FakeSource(object: "incident")
        let second = FakeSource(object: "problem")
        first.upsert("a", at: at(1), ["v": "1"])
        second.upsert("b", at: at(1), ["v": "1"])
        var options = Engine.Options()
        options.timing = quickTiming()
        let engine = engine(temp, options: options)
        engine.update(targets: [target(first)])
        #expect(engine.trigger(connection: "acme") == 0)       // not started yet
        engine.start()
        #expect(await eventually { (try? temp.events().count) == 1 })
        engine.update(targets: [target(first), target(second)])
        #expect(engine.keys.map(\.object) == ["incident", "problem"])
        #expect(await eventually { (try? temp.events().count) == 2 })
        first.upsert("a", at: at(2), ["v": "2"])
        let callsBefore = first.deltaCalls
        #expect(engine.trigger(connection: "acme", object: "incident") == 1)
        #expect(await eventually { first.deltaCalls > callsBefore && (try? temp.events().count) == 3 })
        engine.update(targets: [target(second)])
        #expect(engine.keys.map(\.object) == ["problem"])
        await engine.shutdown()
        #expect(try temp.events().map(\.kind) == [.created, .created, .updated])
    }

    @Test("a hinted trigger labels the next cycle .hint (log line and onCycle); scheduled cycles stay .schedule")
    func hintedTriggerLabelsTheCycle() async throws {
        final class Cycles: Sendable {
            let seen = Mutex<[(CycleTrigger, CycleTrigger, Int)]>([])
        }
        let temp = try TempStore()
        let source = FakeSource(object: "incident")
        source.upsert("a", at: at(1), ["v": "1"])
        let cycles = Cycles()
        var options = Engine.Options()
        options.timing = quickTiming()
        options.onCycle = { report, trigger in cycles.seen.withLock { $0.append((trigger, report.trigger, report.eventCount)) } }
        let engine = engine(temp, options: options)
        engine.update(targets: [target(source)])
        engine.start()
        #expect(await eventually { cycles.seen.withLock { $0.count } == 1 })
        source.upsert("a", at: at(2), ["v": "2"])
        #expect(engine.trigger(connection: "acme", object: "incident", reason: .hint) == 1)
        #expect(await eventually { cycles.seen.withLock { $0.count } == 2 })
        await engine.shutdown()
        let seen = cycles.seen.withLock { $0 }
        #expect(seen.map(\.0) == [.schedule, .hint] && seen.map(\.1) == [.schedule, .hint])
        #expect(seen.map(\.2) == [1, 1])
    }

    @Test("the supervisor heartbeat feeds the watchdog; the debug hook stalls it")
    func heartbeat() async throws {
        let temp = try TempStore()
        var options = Engine.Options()
        options.heartbeatInterval = .milliseconds(10)
        let engine = engine(temp, options: options)
        engine.start()
        #expect(await eventually { engine.liveness.started && engine.isAlive(within: .seconds(5)) })
        engine.debugStallHeartbeat(true)
        #expect(await eventually { !engine.isAlive(within: .milliseconds(100)) })
        engine.debugStallHeartbeat(false)
        #expect(await eventually { engine.isAlive(within: .milliseconds(100)) })
        await engine.shutdown()
    }
}
