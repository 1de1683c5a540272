// Scheduler and Engine facade: ordering, never speed. Waits are bounded polls of a condition.
import Core
import Engine
import Foundation
import Logging
import Store
import Synchronization
import TestSupport
import Testing

/// Records when each job's poll started.
final class PollLog: Sendable {
    struct Entry: Sendable {
        var key: JobKey
        var at: ContinuousClock.Instant
    }
    private let entries = Mutex<[Entry]>([])
    func note(_ key: JobKey) { entries.withLock { $0.append(Entry(key: key, at: ContinuousClock.now)) } }
    var all: [Entry] { entries.withLock { $0 } }
    func count(_ key: JobKey) -> Int { all.filter { $0.key == key }.count }
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
    @Test("a rate limit blocks every object of the connection for Retry-After; other connections go on (rules 9, 10)")
    func rateLimitGate() async throws {
        let log = PollLog()
        let a = JobKey(connection: "c1", object: "a")
        let b = JobKey(connection: "c1", object: "b")
        let c = JobKey(connection: "c2", object: "c")
        let thrownAt = Mutex<ContinuousClock.Instant?>(nil)
        let observedAt = Mutex<ContinuousClock.Instant?>(nil)
        let retryAfter = Duration.milliseconds(600)
        let scheduler = Scheduler(maxConcurrentPolls: 8, timing: quickTiming()) { key, outcome in
            if case .rateLimited = outcome, key == a { observedAt.withLock { $0 = ContinuousClock.now } }
        }
        let aCalls = Mutex(0)
        scheduler.update(jobs: [
            ScheduledJob(key: a, interval: .milliseconds(10)) {
                log.note(a)
                let n = aCalls.withLock { $0 += 1; return $0 }
                if n == 2 {
                    thrownAt.withLock { $0 = ContinuousClock.now }
                    throw ProviderError.rateLimited(retryAfter: retryAfter, message: "429")
                }
            },
            ScheduledJob(key: b, interval: .milliseconds(10)) { log.note(b) },
            ScheduledJob(key: c, interval: .milliseconds(10)) { log.note(c) },
        ])
        // Wait until A has been retried after the block and B has polled again too.
        let retried = await eventually {
            guard let thrown = thrownAt.withLock({ $0 }) else { return false }
            return aCalls.withLock { $0 } >= 3 && log.all.contains { $0.key == b && $0.at >= thrown + retryAfter }
        }
        await scheduler.shutdown()
        #expect(retried)
        let thrown = try #require(thrownAt.withLock { $0 })
        let observed = try #require(observedAt.withLock { $0 })
        let gateOpens = thrown + retryAfter
        let c1After = log.all.filter { $0.key.connection == "c1" && $0.at > observed }
        #expect(!c1After.isEmpty)
        // A itself waits out Retry-After exactly.
        #expect(c1After.filter { $0.key == a }.allSatisfy { $0.at >= gateOpens })
        // B may have one cycle that was admitted before A's 429 arrived and only started running after it; an
        // open gate would instead let B (10 ms interval) poll dozens of times inside the window.
        #expect(c1After.filter { $0.key == b && $0.at < gateOpens }.count <= 1)
        #expect(log.all.contains { $0.key == b && $0.at >= gateOpens })
        // The other connection was not blocked: it polled while c1 waited (by order of calls, not wall time,
        // so a starved cooperative pool on a loaded machine cannot fail it).
        let aRetry = try #require(log.all.first { $0.key == a && $0.at > observed })
        #expect(log.all.contains { $0.key == c && $0.at > observed && $0.at < aRetry.at })
    }

    @Test("polls start at once, trigger runs a cycle now, unknown keys are refused (rule 10)")
    func triggerRunsNow() async {
        let log = PollLog()
        let key = JobKey(connection: "c", object: "o")
        let scheduler = Scheduler(timing: quickTiming())
        scheduler.update(jobs: [ScheduledJob(key: key, interval: .seconds(3600)) { log.note(key) }])
        #expect(await eventually { log.count(key) == 1 })
        #expect(scheduler.trigger(key))
        #expect(await eventually { log.count(key) == 2 })
        #expect(!scheduler.trigger(JobKey(connection: "c", object: "nope")))
        await scheduler.shutdown()
    }

    @Test("shutdown cancels a running cycle and stops the loop")
    func cancellationStops() async {
        let key = JobKey(connection: "c", object: "o")
        let started = Mutex(0)
        let cancelled = Mutex(false)
        let scheduler = Scheduler(timing: quickTiming())
        scheduler.update(jobs: [ScheduledJob(key: key, interval: .milliseconds(1)) {
            started.withLock { $0 += 1 }
            do { try await Task.sleep(for: .seconds(3600)) } catch {
                cancelled.withLock { $0 = true }
                throw error
            }
        }])
        #expect(await eventually { started.withLock { $0 } == 1 })
        await scheduler.shutdown()                              // returns only once the cycle has ended
        #expect(cancelled.withLock { $0 })
        #expect(scheduler.jobCount == 0)
        try? await Task.sleep(for: .milliseconds(50))
        #expect(started.withLock { $0 } == 1)
    }

    @Test("update(jobs:) starts new jobs and stops removed ones (SIGHUP reload)")
    func updateAddsAndRemoves() async {
        let log = PollLog()
        let a = JobKey(connection: "c", object: "a")
        let b = JobKey(connection: "c", object: "b")
        let scheduler = Scheduler(timing: quickTiming())
        scheduler.update(jobs: [ScheduledJob(key: a, interval: .milliseconds(5)) { log.note(a) }])
        #expect(await eventually { log.count(a) >= 2 })
        scheduler.update(jobs: [ScheduledJob(key: b, interval: .milliseconds(5)) { log.note(b) }])
        let removedAt = ContinuousClock.now
        #expect(scheduler.jobCount == 1)
        #expect(await eventually { log.count(b) >= 2 })
        await scheduler.shutdown()
        // At most a cycle that had already passed its checks when the update landed may follow.
        #expect(log.all.filter { $0.key == a && $0.at > removedAt }.count <= 1)
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
