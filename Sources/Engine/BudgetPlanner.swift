// Planning a connection's polls to fit its request budget (docs/DESIGN.md §2 rule 22). Pure arithmetic on what the
// scheduler measured, so it is tested without time or I/O (`Tests/EngineTests/BudgetPlannerTests`).
//
// The plan spreads what is left of the day's planned share (`per_day × (1 − reserve)` minus what was used today)
// evenly over what is left of the UTC day: when the objects' configured intervals, at the requests a cycle of each
// measurably costs, would spend faster than that, every interval of the connection is stretched by one common
// factor; when they would not — idle cycles answered by free 304s, or savings from an idle morning — the
// configured intervals apply again (never faster: an interval is the operator's ceiling on freshness, not a
// target to exceed). The hard limit itself is not the planner's job: the budgeted transport refuses a request
// that would exceed either window, so a wrong estimate can delay polls but never overspend.
public import Core

/// One object of a budgeted connection, as the planner sees it.
public struct BudgetedObject: Sendable, Hashable {
    public var object: String
    /// The configured `interval`.
    public var configured: Duration
    /// Requests one cycle is charged, on average (a moving average of measured cycles).
    public var costPerCycle: Double
    /// Whether this node measured `costPerCycle` (it polls the object) or took it from the node that does.
    public var measuredHere: Bool

    public init(object: String, configured: Duration, costPerCycle: Double, measuredHere: Bool = true) {
        self.object = object
        self.configured = configured
        self.costPerCycle = costPerCycle
        self.measuredHere = measuredHere
    }
}

/// The plan for one connection.
public struct BudgetPlan: Sendable, Hashable {
    /// How much every configured interval is stretched (≥ 1).
    public var stretch: Double
    /// The interval each object waits between cycles under this plan.
    public var effective: [String: Duration]
    /// Requests the connection will have used by the day's end at these intervals.
    public var projectedToday: Double
    /// Seconds until the day's hard limit is reached at the current rate; nil when it lasts the day.
    public var runsOutIn: Double?
}

public enum BudgetPlanner {
    /// Weight of the newest cycle in the moving average of a cycle's cost: recent enough that a burst of idle
    /// 304s lowers the estimate within a handful of cycles, smooth enough that one sweep does not dominate it.
    public static let smoothing = 0.3

    /// The moving average after a cycle that was charged `charged` requests (`previous` nil: the first cycle).
    public static func averageCost(previous: Double?, charged: Int) -> Double {
        guard let previous else { return Double(max(0, charged)) }
        return previous + smoothing * (Double(max(0, charged)) - previous)
    }

    /// The plan of one connection.
    /// - Parameters:
    ///   - usedToday: requests counted today by every node (the store's count).
    ///   - secondsLeftInDay: until the UTC day rolls and the count starts again.
    public static func plan(limits: RequestBudgetLimits, objects: [BudgetedObject], usedToday: Int,
                            secondsLeftInDay: Double) -> BudgetPlan {
        let left = max(secondsLeftInDay, 1)
        // Requests per second the configured intervals would spend.
        let demand = objects.reduce(0.0) { $0 + max($1.costPerCycle, 0) / max($1.configured.seconds, 0.001) }
        // Requests per second the rest of the day's planned share allows.
        let allowed = max(0, limits.plannedPerDay - Double(usedToday)) / left
        var stretch = 1.0
        if demand > allowed {
            stretch = allowed > 0 ? demand / allowed : .infinity
        }
        if let perMinute = limits.perMinute, demand * 60 > Double(perMinute) * (1 - limits.reserve) {
            stretch = max(stretch, demand * 60 / (Double(perMinute) * (1 - limits.reserve)))
        }
        var effective: [String: Duration] = [:]
        var rate = 0.0
        for object in objects {
            let configured = max(object.configured.seconds, 0.001)
            // A spent share waits for the day to roll (plus a second, so the wait ends in the new window), never
            // longer: an infinite stretch is not a schedule.
            let seconds = stretch.isFinite ? min(configured * stretch, max(configured, left + 1)) : max(configured, left + 1)
            // Whole milliseconds, rounded to nearest (not up): 60 s × 4.8 is 288 s, not 288.001 s.
            let millis = min(max((seconds * 1000).rounded(), 1), 2 * 86_400_000)
            let interval = millis.isFinite ? Duration.milliseconds(Int64(millis)) : object.configured
            effective[object.object] = interval
            rate += max(object.costPerCycle, 0) / interval.seconds
        }
        let projected = Double(usedToday) + rate * left
        var runsOutIn: Double?
        if projected > Double(limits.perDay), rate > 0 {
            runsOutIn = max(0, Double(limits.perDay - usedToday)) / rate
        }
        return BudgetPlan(stretch: stretch, effective: effective, projectedToday: projected, runsOutIn: runsOutIn)
    }
}
