// Request budgets in the scheduler (docs/DESIGN.md §2 rule 22), on the manual clock: virtual days pass in event
// steps (time jumps to the next sleeper's deadline), and everything is asserted by exact counts per virtual UTC day.
import Core
import Engine
import Foundation
import Synchronization
import TestSupport
import Testing

/// An in-memory ``RequestBudget`` with the store's rules (count per UTC day and minute, refuse when spent), on the
/// manual clock's wall time.
final class MemoryRequestBudget: RequestBudget {
    private struct State {
        var counts: [String: Int] = [:]  // "day:<start>" / "minute:<start>"
        var refusals = 0
        var costs: [String: Double] = [:]  // what budget_plans holds: object → cost, written by its poller
    }
    private let state = Mutex(State())
    let now: @Sendable () -> Date

    init(now: @escaping @Sendable () -> Date) { self.now = now }

    func admit(connection: String, limits: RequestBudgetLimits) async throws -> RequestBudgetWindows {
        let at = now()
        let windows = RequestBudgetWindows(containing: at)
        let day = "day:\(windows.dayStart)", minute = "minute:\(windows.minuteStart)"
        let refusedFor: Int64? = state.withLock { s in
            if s.counts[day, default: 0] >= limits.perDay {
                s.refusals += 1
                return windows.dayStart + RequestBudgetWindows.daySeconds
            }
            if let perMinute = limits.perMinute, s.counts[minute, default: 0] >= perMinute {
                s.refusals += 1
                return windows.minuteStart + RequestBudgetWindows.minuteSeconds
            }
            s.counts[day, default: 0] += 1
            s.counts[minute, default: 0] += 1
            return nil
        }
        if let until = refusedFor {
            let wait = max(Double(until) - at.timeIntervalSince1970, 0.001)
            throw ProviderError.rateLimited(retryAfter: .milliseconds(Int64(wait * 1000)), message: "budget spent")
        }
        return windows
    }

    func refund(connection: String, windows: RequestBudgetWindows) async {
        state.withLock { s in
            s.counts["day:\(windows.dayStart)", default: 0] -= 1
            s.counts["minute:\(windows.minuteStart)", default: 0] -= 1
        }
    }

    func usage(connection: String) async throws -> RequestBudgetUsage {
        let windows = RequestBudgetWindows(containing: now())
        return state.withLock {
            RequestBudgetUsage(usedToday: $0.counts["day:\(windows.dayStart)", default: 0],
                               usedThisMinute: $0.counts["minute:\(windows.minuteStart)", default: 0])
        }
    }

    func sharedCosts(connection: String) async -> [String: Double] { state.withLock { $0.costs } }

    /// What the engine stores from a plan: the rows of the objects this node measured.
    func store(_ report: BudgetPlanReport) {
        state.withLock { s in for object in report.objects where object.measuredHere { s.costs[object.object] = object.costPerCycle } }
    }

    /// Requests charged in the UTC day starting `dayStart`.
    func used(dayStart: Int64) -> Int { state.withLock { $0.counts["day:\(dayStart)", default: 0] } }
    var refusals: Int { state.withLock { $0.refusals } }
}

/// What the providers' budgeted transport does around one request (Providers/BudgetedTransport), without HTTP.
private func send(_ budget: MemoryRequestBudget, _ connection: String, _ limits: RequestBudgetLimits, free: Bool)
    async throws
{
    let windows = try await budget.admit(connection: connection, limits: limits)
    if free { await budget.refund(connection: connection, windows: windows) }
    RequestMeter.current?.count(free: free)
}

/// A fake provider object: changes appear at given virtual times; a poll that finds some delivers them with one
/// charged request, an idle poll is a 304 (free when `freeIdle`, else charged like a 200).
final class FakeFeed: Sendable {
    private struct State {
        var pending: [Duration]
        var delivered: [(change: Duration, at: Duration)] = []
        var charges: [Duration] = []
    }
    private let state: Mutex<State>
    let freeIdle = Mutex(false)
    /// Requests a charged poll sends.
    let cost: Int

    init(changes: [Duration], cost: Int = 1) {
        state = Mutex(State(pending: changes.sorted()))
        self.cost = cost
    }

    func poll(at now: Duration, wall: Date, budget: MemoryRequestBudget, connection: String,
              limits: RequestBudgetLimits) async throws {
        let due = state.withLock { s in s.pending.prefix { $0 <= now } }
        let free = due.isEmpty && freeIdle.withLock { $0 }
        for _ in 0..<(free ? 1 : cost) { try await send(budget, connection, limits, free: free) }
        state.withLock { s in
            s.pending.removeFirst(due.count)
            s.delivered += due.map { (change: $0, at: now) }
            if !free { s.charges.append(now) }
        }
    }

    var undelivered: Int { state.withLock { $0.pending.count } }
    var delivered: [(change: Duration, at: Duration)] { state.withLock { $0.delivered } }
    var charges: [Duration] { state.withLock { $0.charges } }
}

@Suite("Budget: the scheduler plans requests to fit (rule 22)")
struct BudgetSchedulerTests {
    static let day = Duration.seconds(86_400)

    /// Runs the clock in event steps until `end`, letting every woken loop finish before the next step.
    private func run(_ clock: ManualClock, loops: Int, until end: Duration) async -> Bool {
        guard await settled(clock, loops: loops) else { return false }
        while let next = clock.nextDeadline, next - clock.now + clock.elapsed <= end {
            clock.advanceToNextDeadline()
            guard await settled(clock, loops: loops) else { return false }
        }
        return true
    }

    /// A generous bound: on a loaded 2-core machine (other suites' synchronous store tests occupy the cooperative
    /// threads) a step can take seconds; this bounds a hang, it measures nothing.
    private func settled(_ clock: ManualClock, loops: Int) async -> Bool {
        await Wait.until(timeout: .seconds(60), interval: .milliseconds(1)) { clock.sleepers == loops }
    }

    @Test("rule 22: three 1-minute objects against per_day 1000 stay under 1000 a day, evenly, and every change arrives")
    func threeObjectsFitTheDay() async throws {
        let clock = ManualClock()
        let budget = MemoryRequestBudget { clock.wallClock }
        let limits = RequestBudgetLimits(perDay: 1000)
        let scheduler = Scheduler(timing: quickTiming(), clock: clock, budgets: SchedulerBudgets(counter: budget))
        // Changes all through the first day, every 7 minutes somewhere, for each object at its own offset.
        var feeds: [FakeFeed] = []
        var jobs: [ScheduledJob] = []
        for index in 0..<3 {
            let changes = stride(from: 60 * index + 13, to: 86_400, by: 420).map { Duration.seconds($0) }
            let feed = FakeFeed(changes: changes)
            feeds.append(feed)
            let key = JobKey(connection: "zoho", object: "o\(index)")
            jobs.append(ScheduledJob(key: key, interval: .seconds(60), budget: limits) {
                try await feed.poll(at: clock.elapsed, wall: clock.wallClock, budget: budget, connection: "zoho",
                                    limits: limits)
            })
        }
        scheduler.update(jobs: jobs)
        #expect(await run(clock, loops: 3, until: Self.day * 2))
        await scheduler.shutdown()

        let day1 = RequestBudgetWindows(containing: clock.wallStart).dayStart
        for start in [day1, day1 + 86_400] {
            let used = budget.used(dayStart: start)
            // Never over the limit, and the plan, not the hard stop, kept it there; the reserve stays unspent.
            #expect(used <= 1000 && used >= 850, "day \(start): \(used)")
        }
        #expect(budget.refusals == 0)
        // Spread evenly: every quarter of the first day gets a quarter of the planned 900, within 10 %.
        let charges = feeds.flatMap(\.charges).filter { $0 < Self.day }
        for quarter in 0..<4 {
            let from = Self.day / 4 * quarter, to = Self.day / 4 * (quarter + 1)
            let count = charges.filter { $0 >= from && $0 < to }.count
            #expect(abs(count - 225) <= 23, "quarter \(quarter): \(count)")
        }
        // The effective interval is the configured minute stretched to fit: 3 × 86,400 s / 900 = 288 s.
        let interval = try #require(scheduler.budgetPlan(connection: "zoho")?.plan.effective["o0"])
        #expect(interval > .seconds(250) && interval < .seconds(330), "\(interval)")
        // Every change was delivered, each within a stretched interval (plus jitter-free slack) of its time.
        for feed in feeds {
            #expect(feed.undelivered == 0)
            #expect(feed.delivered.allSatisfy { $0.at - $0.change <= .seconds(400) })
        }
    }

    @Test("rules 19, 22: two nodes, each polling its share of the objects, plan with each other's costs and fit the day together")
    func twoNodesShareThePlan() async throws {
        let clock = ManualClock()
        let budget = MemoryRequestBudget { clock.wallClock }
        let limits = RequestBudgetLimits(perDay: 1000)
        // Two requests a cycle (a page and a token check, say): more than the planner's first guess of one, so a
        // node that did not learn the other node's costs would under-stretch.
        let feeds = (0..<3).map { _ in FakeFeed(changes: [], cost: 2) }
        let keys = (0..<3).map { JobKey(connection: "zoho", object: "o\($0)") }
        // Node A holds o0's lease, node B o1's and o2's; each node schedules every object (as the engine does) and
        // skips the cycles of objects the other node polls.
        let owners = [0, 1, 1]
        let schedulers = (0..<2).map { node in
            let scheduler = Scheduler(timing: quickTiming(), clock: clock,
                                      budgets: SchedulerBudgets(counter: budget) { budget.store($0) })
            scheduler.update(jobs: (0..<3).map { index in
                ScheduledJob(key: keys[index], interval: .seconds(60), budget: limits) {
                    guard owners[index] == node else {
                        RequestMeter.current?.markSkipped()
                        return
                    }
                    try await feeds[index].poll(at: clock.elapsed, wall: clock.wallClock, budget: budget,
                                                connection: "zoho", limits: limits)
                }
            })
            return scheduler
        }
        #expect(await run(clock, loops: 6, until: Self.day))
        // Both nodes computed the same stretch from all three costs: 3 × 2 × 86,400 s / 900 = 576 s.
        for (node, scheduler) in schedulers.enumerated() {
            let mine = try #require(scheduler.effectiveInterval(keys[owners.firstIndex(of: node) ?? 0]))
            #expect(mine > .seconds(520) && mine < .seconds(640), "node \(node): \(mine)")
        }
        for scheduler in schedulers { await scheduler.shutdown() }
        let used = budget.used(dayStart: RequestBudgetWindows(containing: clock.wallStart).dayStart)
        #expect(used <= 1000 && used >= 850, "\(used)")
        #expect(budget.refusals == 0)
        let charges = feeds.flatMap(\.charges)
        for quarter in 0..<4 {
            let from = Self.day / 4 * quarter, to = Self.day / 4 * (quarter + 1)
            let requests = 2 * charges.filter { $0 >= from && $0 < to }.count
            #expect(abs(requests - 225) <= 23, "quarter \(quarter): \(requests)")
        }
    }

    @Test("rule 22: a burst of idle 304s (free) lets the intervals shrink back to the configured minute")
    func idleCyclesShrinkIntervals() async throws {
        let clock = ManualClock()
        let budget = MemoryRequestBudget { clock.wallClock }
        let limits = RequestBudgetLimits(perDay: 1000)
        let scheduler = Scheduler(timing: quickTiming(), clock: clock, budgets: SchedulerBudgets(counter: budget))
        let feeds = (0..<3).map { _ in FakeFeed(changes: []) }
        let keys = (0..<3).map { JobKey(connection: "gh", object: "o\($0)") }
        scheduler.update(jobs: zip(keys, feeds).map { key, feed in
            ScheduledJob(key: key, interval: .seconds(60), budget: limits) {
                try await feed.poll(at: clock.elapsed, wall: clock.wallClock, budget: budget, connection: "gh",
                                    limits: limits)
            }
        })
        // Two hours of charged polls: stretched.
        #expect(await run(clock, loops: 3, until: .seconds(7200)))
        let stretched = try #require(scheduler.effectiveInterval(keys[0]))
        #expect(stretched > .seconds(250), "\(stretched)")
        let usedBefore = budget.used(dayStart: RequestBudgetWindows(containing: clock.wallStart).dayStart)
        // Now every poll is a 304: free. Within a few cycles each the estimate falls and the minute returns.
        for feed in feeds { feed.freeIdle.withLock { $0 = true } }
        #expect(await run(clock, loops: 3, until: .seconds(7200 + 3600)))
        for key in keys { #expect(scheduler.effectiveInterval(key) == .seconds(60), "\(key)") }
        // And the free polls were not counted.
        #expect(budget.used(dayStart: RequestBudgetWindows(containing: clock.wallStart).dayStart) == usedBefore)
        await scheduler.shutdown()
    }

    @Test("rule 22: a spent budget stops the whole connection before any request is sent; the next UTC day resumes it")
    func hardStopAndResume() async throws {
        let clock = ManualClock()
        let budget = MemoryRequestBudget { clock.wallClock }
        let limits = RequestBudgetLimits(perDay: 10, reserve: 0)
        let sweepKey = JobKey(connection: "c", object: "sweep")
        let otherKey = JobKey(connection: "c", object: "other")
        let log = PollLog()
        let scheduler = Scheduler(timing: quickTiming(), clock: clock, budgets: SchedulerBudgets(counter: budget))
        scheduler.update(jobs: [
            // A first cycle far costlier than the plan expects (a big sweep): 15 requests; later ones cost 1.
            ScheduledJob(key: sweepKey, interval: .seconds(3600), budget: limits) {
                log.note(sweepKey, at: clock.elapsed)
                let cost = log.count(sweepKey) == 1 ? 15 : 1
                for _ in 0..<cost { try await send(budget, "c", limits, free: false) }
            },
            ScheduledJob(key: otherKey, interval: .seconds(60), budget: limits) {
                log.note(otherKey, at: clock.elapsed)
                try await send(budget, "c", limits, free: false)
            },
        ])
        #expect(await run(clock, loops: 2, until: Self.day + .seconds(120)))
        await scheduler.shutdown()
        let day1 = RequestBudgetWindows(containing: clock.wallStart).dayStart
        // Exactly the limit was counted on day 1, never more; refused requests were never "sent".
        #expect(budget.used(dayStart: day1) == 10)
        #expect(budget.refusals >= 1)
        // Nothing of the connection polled between the stop and midnight; both polled again after it.
        let beforeMidnight = log.all.filter { $0.at > .zero && $0.at < Self.day }
        #expect(beforeMidnight.isEmpty, "\(beforeMidnight.map(\.at))")
        #expect(log.times(otherKey).contains { $0 >= Self.day }, "\(log.all.map { "\($0.key.object)@\($0.at)" }) refusals \(budget.refusals)")
        #expect(budget.used(dayStart: day1 + 86_400) >= 1)
    }
}
