// The budget planner (docs/DESIGN.md §2 rule 22) as pure arithmetic: no time, no I/O.
import Core
import Engine
import Testing

private func objects(_ costs: [Double], interval: Duration = .seconds(60)) -> [BudgetedObject] {
    costs.enumerated().map { BudgetedObject(object: "o\($0.offset)", configured: interval, costPerCycle: $0.element) }
}

@Suite("Budget planner")
struct BudgetPlannerTests {
    let zoho = RequestBudgetLimits(perDay: 1000)

    @Test("rule 22: intervals that fit the day's planned share stay as configured")
    func fits() {
        let plan = BudgetPlanner.plan(limits: zoho, objects: objects([1], interval: .seconds(600)), usedToday: 0,
                                      secondsLeftInDay: 86_400)
        #expect(plan.stretch == 1)
        #expect(plan.effective == ["o0": .seconds(600)])
        #expect(plan.runsOutIn == nil)
        #expect(abs(plan.projectedToday - 144) < 0.001)
    }

    @Test("rule 22: three 1-minute objects against per_day 1000 are stretched evenly to 900 requests a day")
    func stretchesEvenly() {
        let plan = BudgetPlanner.plan(limits: zoho, objects: objects([1, 1, 1]), usedToday: 0, secondsLeftInDay: 86_400)
        // 3 × 1440 cycles would cost 4320; the planned share is 1000 × (1 − 0.1) = 900: every interval × 4.8.
        #expect(abs(plan.stretch - 4.8) < 1e-9)
        #expect(plan.effective == ["o0": .seconds(288), "o1": .seconds(288), "o2": .seconds(288)])
        #expect(abs(plan.projectedToday - 900) < 0.001)
        #expect(plan.runsOutIn == nil)
    }

    @Test("rule 22: one factor for the connection, so unequal intervals keep their ratio; costlier objects weigh more")
    func commonFactor() {
        let mixed = [BudgetedObject(object: "fast", configured: .seconds(60), costPerCycle: 2),
                     BudgetedObject(object: "slow", configured: .seconds(600), costPerCycle: 1)]
        let plan = BudgetPlanner.plan(limits: zoho, objects: mixed, usedToday: 0, secondsLeftInDay: 86_400)
        let fast = plan.effective["fast"]?.seconds ?? 0, slow = plan.effective["slow"]?.seconds ?? 0
        #expect(abs(slow / fast - 10) < 0.001)
        #expect(abs(plan.projectedToday - 900) < 0.01)
    }

    @Test("rule 22: idle cycles (free 304s) cost nothing, so the configured intervals return")
    func idleShrinks() {
        let plan = BudgetPlanner.plan(limits: zoho, objects: objects([0, 0, 0]), usedToday: 500, secondsLeftInDay: 40_000)
        #expect(plan.stretch == 1)
        #expect(plan.effective["o1"] == .seconds(60))
    }

    @Test("rule 22: requests saved earlier in the day are spent later; a spent share waits for the day to roll")
    func spendsSavings() {
        // Half the day left and only 100 used: 800 may go in 43,200 s, so the intervals stretch less than 4.8.
        let saved = BudgetPlanner.plan(limits: zoho, objects: objects([1, 1, 1]), usedToday: 100, secondsLeftInDay: 43_200)
        #expect(abs(saved.stretch - 2.7) < 1e-9)
        // The planned share spent: wait until the UTC day rolls (one second into it), not forever.
        let spent = BudgetPlanner.plan(limits: zoho, objects: objects([1, 1, 1]), usedToday: 900, secondsLeftInDay: 3_600)
        #expect(spent.effective["o0"] == .seconds(3_601))
        // Beyond the hard limit (another node overspent its estimate): it has already run out.
        let over = BudgetPlanner.plan(limits: zoho, objects: objects([1]), usedToday: 1000, secondsLeftInDay: 3_600)
        #expect(over.runsOutIn == 0)
    }

    @Test("rule 22: per_minute binds when the day's share would not")
    func perMinute() {
        let limits = RequestBudgetLimits(perDay: 10_000_000, perMinute: 100, reserve: 0)
        let plan = BudgetPlanner.plan(limits: limits, objects: objects([50, 50, 50], interval: .seconds(30)),
                                      usedToday: 0, secondsLeftInDay: 86_400)
        // 3 × 50 every 30 s is 300 a minute: intervals × 3.
        #expect(plan.effective["o2"] == .seconds(90))
    }

    @Test("rule 22: the cost estimate is a moving average of charged requests")
    func movingAverage() {
        #expect(BudgetPlanner.averageCost(previous: nil, charged: 4) == 4)
        #expect(abs(BudgetPlanner.averageCost(previous: 4, charged: 0) - 2.8) < 1e-9)
        #expect(BudgetPlanner.averageCost(previous: 1, charged: -3) == 0.7)
    }
}
