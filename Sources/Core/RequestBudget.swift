// Request budgets (docs/DESIGN.md §2 rule 22): a connection may send at most `per_day` requests per UTC day and
// `per_minute` per minute (Zoho Books' free plan: 1,000 a day, 100 a minute per organisation). The count must be
// shared by every node of a cluster and survive restarts, so it lives in the store; providers never see the store,
// so — like ``AuthStateStore`` and ``ClusterPermits`` — this protocol is declared here, the store implements it
// (through the daemon) and the providers' transport calls it before every request.
public import Foundation
import Synchronization

/// The configured `budget` of one connection.
public struct RequestBudgetLimits: Sendable, Hashable {
    /// Requests per UTC day; the hard limit.
    public var perDay: Int
    /// Requests per minute (UTC minute); nil: no minute limit.
    public var perMinute: Int?
    /// Share of `perDay` the scheduler leaves unplanned for reconciliation sweeps and token refreshes, which
    /// cost more than a regular cycle and come at times of their own. In `0 ..< 1`.
    public var reserve: Double

    public static let defaultReserve = 0.1

    public init(perDay: Int, perMinute: Int? = nil, reserve: Double = RequestBudgetLimits.defaultReserve) {
        self.perDay = max(1, perDay)
        self.perMinute = perMinute.map { max(1, $0) }
        self.reserve = min(max(reserve, 0), 0.99)
    }

    /// Requests a day the scheduler plans regular cycles for: `perDay × (1 − reserve)`.
    public var plannedPerDay: Double { Double(perDay) * (1 - reserve) }
}

/// The UTC day and minute a request was counted in; the store's rows are keyed by their starts.
public struct RequestBudgetWindows: Sendable, Hashable {
    /// Unix seconds of the UTC day's start (a multiple of 86 400).
    public var dayStart: Int64
    /// Unix seconds of the minute's start (a multiple of 60).
    public var minuteStart: Int64

    public static let daySeconds: Int64 = 86_400
    public static let minuteSeconds: Int64 = 60

    public init(dayStart: Int64, minuteStart: Int64) {
        self.dayStart = dayStart
        self.minuteStart = minuteStart
    }

    /// The windows `date` falls in (dates before 1970 or past Int64 count as the nearest representable second).
    public init(containing date: Date) {
        let seconds = Timestamps.saturatingInt64(date.timeIntervalSince1970.rounded(.down))
        dayStart = Self.floor(seconds, Self.daySeconds)
        minuteStart = Self.floor(seconds, Self.minuteSeconds)
    }

    /// Seconds from `date` until the UTC day rolls.
    public static func secondsLeftInDay(at date: Date) -> Double {
        let start = Double(RequestBudgetWindows(containing: date).dayStart)
        return max(0, start + Double(daySeconds) - date.timeIntervalSince1970)
    }

    private static func floor(_ value: Int64, _ step: Int64) -> Int64 {
        let r = value % step
        return r >= 0 ? value - r : value - r - step
    }
}

/// A connection's count in its current windows.
public struct RequestBudgetUsage: Sendable, Hashable {
    public var usedToday: Int
    public var usedThisMinute: Int

    public init(usedToday: Int, usedThisMinute: Int) {
        self.usedToday = usedToday
        self.usedThisMinute = usedThisMinute
    }
}

/// The shared request counter of every connection with a `budget` (docs/DESIGN.md §2 rule 22).
public protocol RequestBudget: Sendable {
    /// Counts one request of `connection` in the current day and minute if neither limit is spent, and returns
    /// the windows it was counted in. Check and count are one step (one store transaction), so concurrent
    /// requests — of this node or another — together never exceed either limit.
    /// - Throws: `ProviderError.rateLimited` with the wait until the spent window rolls: the request must not be
    ///   sent, and the scheduler holds the whole connection until then (rule 10).
    func admit(connection: String, limits: RequestBudgetLimits) async throws -> RequestBudgetWindows
    /// Takes back one request counted by ``admit(connection:limits:)`` that the provider did not charge (a
    /// GitHub 304 Not Modified). Best effort: a failure leaves the count one too high, which is the safe side.
    func refund(connection: String, windows: RequestBudgetWindows) async
    /// The connection's count in the windows containing now.
    func usage(connection: String) async throws -> RequestBudgetUsage
    /// Requests per cycle of each object of `connection` as measured by whichever node polls it (the plans the
    /// nodes stored), so a node plans with the cost of objects another node polls (rule 19 splits objects).
    func sharedCosts(connection: String) async -> [String: Double]
}

extension RequestBudget {
    /// No shared costs: a single process measures every object itself.
    public func sharedCosts(connection: String) async -> [String: Double] { [:] }
}

/// Requests one poll cycle sent, counted by the providers' budgeted transport and read by the scheduler to learn
/// what a cycle of each object costs. Bound to the cycle's task through ``RequestMeter/current``.
public final class RequestTally: Sendable {
    private let counts = Mutex((charged: 0, free: 0, skipped: false))

    public init() {}

    /// The cycle did not poll: another node holds the object's poll lease (rule 19), so what it cost says
    /// nothing about the object.
    public func markSkipped() { counts.withLock { $0.skipped = true } }
    public var skipped: Bool { counts.withLock { $0.skipped } }

    /// One request sent; `free` when the provider did not charge it (a 304).
    public func count(free: Bool) {
        counts.withLock { if free { $0.free += 1 } else { $0.charged += 1 } }
    }

    /// Requests charged against the budget so far.
    public var charged: Int { counts.withLock { $0.charged } }
    /// Requests the provider did not charge.
    public var free: Int { counts.withLock { $0.free } }
}

/// The tally of the poll cycle running in the current task. A task-local rather than a parameter because the
/// count is taken at the transport, many calls below the scheduler, through provider code that has no reason to
/// know about it; every request of a cycle runs in the cycle's task or its child tasks, which inherit the value.
public enum RequestMeter {
    @TaskLocal public static var current: RequestTally?
}
