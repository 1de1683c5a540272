// Request budgets (docs/DESIGN.md §2 rule 22): the `request_budget` table counts each connection's requests per UTC
// day and per minute, so a restart or another node of the cluster sees the same count (rules 19–21: the limit is
// the provider account's, not the process's); `budget_plans` keeps the scheduler's latest plan per object for
// `status`, which runs in another process. Both tables are schema version 5.
//
// Admitting a request is one short write transaction — read the day's and the minute's counts, refuse when either
// is spent, else add one to both — so two requests (or two nodes) can never both take the last request of a
// window: SQLite serialises writers, PostgreSQL runs writes SERIALIZABLE and retries.
public import Core
public import Foundation

/// What ``StateStore/admitRequest(connection:limits:at:)`` decided.
public enum RequestAdmission: Sendable, Hashable {
    /// Counted in these windows; the request may be sent.
    case admitted(RequestBudgetWindows)
    /// Refused, nothing counted: the day's (`minute == false`) or the minute's budget is spent until `until`.
    case refused(until: Date, minute: Bool, used: Int)
}

/// The scheduler's plan of one object of a budgeted connection, as `status` shows it.
public struct BudgetPlanRow: Sendable, Hashable {
    public var connection: String
    public var object: String
    public var configuredInterval: Duration
    public var effectiveInterval: Duration
    /// Moving average of requests one cycle of the object was charged.
    public var costPerCycle: Double
    /// The connection's `budget.per_day` the plan was made for (so `status` needs no validated config).
    public var perDay: Int
    public var updatedAt: Date

    public init(connection: String, object: String, configuredInterval: Duration, effectiveInterval: Duration,
                costPerCycle: Double, perDay: Int, updatedAt: Date) {
        self.connection = connection
        self.object = object
        self.configuredInterval = configuredInterval
        self.effectiveInterval = effectiveInterval
        self.costPerCycle = costPerCycle
        self.perDay = perDay
        self.updatedAt = updatedAt
    }

    static let columns = "connection, object, configured_interval_ms, effective_interval_ms, cost_per_cycle, "
        + "per_day, updated_at"

    init(_ row: any Row) {
        self.init(connection: row.text(0), object: row.text(1), configuredInterval: .milliseconds(row.int64(2)),
                  effectiveInterval: .milliseconds(row.int64(3)), costPerCycle: row.double(4), perDay: row.int(5),
                  updatedAt: row.date(6) ?? Date(timeIntervalSince1970: 0))
    }
}

extension StateStore {
    static let daySpan = SQLValue.integer(RequestBudgetWindows.daySeconds)
    static let minuteSpan = SQLValue.integer(RequestBudgetWindows.minuteSeconds)

    /// Counts one request of `connection` at `now` if neither the day's nor the minute's budget is spent.
    public func admitRequest(connection: String, limits: RequestBudgetLimits, at now: Date) throws -> RequestAdmission {
        let windows = RequestBudgetWindows(containing: now)
        let day = SQLValue.integer(windows.dayStart), minute = SQLValue.integer(windows.minuteStart)
        return try database.write { db in
            let read = "SELECT used FROM request_budget WHERE connection = ? AND span = ? AND window_start = ?"
            let usedToday = try db.queryOne(read, [.text(connection), Self.daySpan, day]) { $0.int(0) } ?? 0
            if usedToday >= limits.perDay {
                let until = Date(timeIntervalSince1970: Double(windows.dayStart + RequestBudgetWindows.daySeconds))
                return .refused(until: until, minute: false, used: usedToday)
            }
            let minuteRow = try db.queryOne(read, [.text(connection), Self.minuteSpan, minute]) { $0.int(0) }
            if let perMinute = limits.perMinute, let used = minuteRow, used >= perMinute {
                let until = Date(timeIntervalSince1970: Double(windows.minuteStart + RequestBudgetWindows.minuteSeconds))
                return .refused(until: until, minute: true, used: used)
            }
            if minuteRow == nil {
                // A new minute, so at most once a minute per connection: drop the finished minutes and day rows
                // older than yesterday (status reads today's only), keeping the table a few rows per connection.
                try db.execute("""
                    DELETE FROM request_budget WHERE connection = ?
                    AND ((span = ? AND window_start < ?) OR (span = ? AND window_start < ?))
                    """, [.text(connection), Self.minuteSpan, minute, Self.daySpan,
                          .integer(windows.dayStart - RequestBudgetWindows.daySeconds)])
            }
            let add = """
                INSERT INTO request_budget (connection, span, window_start, used) VALUES (?, ?, ?, 1)
                ON CONFLICT (connection, span, window_start) DO UPDATE SET used = request_budget.used + 1
                """
            try db.execute(add, [.text(connection), Self.daySpan, day])
            try db.execute(add, [.text(connection), Self.minuteSpan, minute])
            return .admitted(windows)
        }
    }

    /// Takes back one request counted in `windows` (the provider did not charge it); never below zero.
    public func refundRequest(connection: String, windows: RequestBudgetWindows) throws {
        try database.write { db in
            let sql = """
                UPDATE request_budget SET used = used - 1
                WHERE connection = ? AND span = ? AND window_start = ? AND used > 0
                """
            try db.execute(sql, [.text(connection), Self.daySpan, .integer(windows.dayStart)])
            try db.execute(sql, [.text(connection), Self.minuteSpan, .integer(windows.minuteStart)])
        }
    }

    /// The connection's count in the day and minute containing `now` (0 when nothing was sent).
    public func requestUsage(connection: String, at now: Date) throws -> RequestBudgetUsage {
        let windows = RequestBudgetWindows(containing: now)
        return try database.read { db in
            let read = "SELECT used FROM request_budget WHERE connection = ? AND span = ? AND window_start = ?"
            let day = try db.queryOne(read, [.text(connection), Self.daySpan, .integer(windows.dayStart)]) { $0.int(0) }
            let minute = try db.queryOne(read, [.text(connection), Self.minuteSpan, .integer(windows.minuteStart)]) {
                $0.int(0)
            }
            return RequestBudgetUsage(usedToday: day ?? 0, usedThisMinute: minute ?? 0)
        }
    }

    /// Replaces the stored plan of each object in `plans` (the scheduler writes its connection's plan after a cycle).
    public func saveBudgetPlans(_ plans: [BudgetPlanRow]) throws {
        guard !plans.isEmpty else { return }
        try database.write { db in
            for plan in plans {
                try db.execute("""
                    INSERT INTO budget_plans (\(BudgetPlanRow.columns)) VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (connection, object) DO UPDATE SET
                        configured_interval_ms = excluded.configured_interval_ms,
                        effective_interval_ms = excluded.effective_interval_ms,
                        cost_per_cycle = excluded.cost_per_cycle, per_day = excluded.per_day,
                        updated_at = excluded.updated_at
                    """, [.text(plan.connection), .text(plan.object), .integer(plan.configuredInterval.milliseconds),
                          .integer(plan.effectiveInterval.milliseconds), .double(plan.costPerCycle),
                          .integer(Int64(plan.perDay)), .integer(Millis.from(plan.updatedAt))])
            }
        }
    }

    /// The stored plans of one connection, by object.
    public func budgetPlans(connection: String) throws -> [BudgetPlanRow] {
        try database.read { db in
            try db.queryAll("SELECT \(BudgetPlanRow.columns) FROM budget_plans WHERE connection = ? ORDER BY object LIMIT 100000",
                            [.text(connection)]) { BudgetPlanRow($0) }
        }
    }

    /// Every stored plan, by connection and object.
    public func budgetPlans() throws -> [BudgetPlanRow] {
        try database.read { db in
            try db.queryAll("SELECT \(BudgetPlanRow.columns) FROM budget_plans ORDER BY connection, object LIMIT 100000") {
                BudgetPlanRow($0)
            }
        }
    }
}
