// The store's `request_budget` table as the Core `RequestBudget` the providers' transport and the scheduler use
// (docs/DESIGN.md §2 rule 22). Providers never import Store, so the daemon, which sees both, joins them here — as
// it does for `ClusterPermits` and `AuthStateStore`.
public import Core
public import Foundation
public import Logging
public import Store
import Synchronization

/// ``RequestBudget`` on a ``StateStoring``: each call is one short transaction on the store's queue.
public final class StoreRequestBudget: RequestBudget {
    public let store: any StateStoring
    let logger: Logger?
    let now: @Sendable () -> Date
    /// The windows a refusal was already logged for ("connection/day/start"), so a spent budget warns once per
    /// window rather than once per refused request.
    private let warned = Mutex<Set<String>>([])

    public init(store: any StateStoring, logger: Logger? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.logger = logger
        self.now = now
    }

    public func admit(connection: String, limits: RequestBudgetLimits) async throws -> RequestBudgetWindows {
        let at = now()
        let admission = try await store.perform { try $0.admitRequest(connection: connection, limits: limits, at: at) }
        switch admission {
        case .admitted(let windows):
            return windows
        case .refused(let until, let minute, let used):
            let window = minute ? "minute" : "day"
            let limit = minute ? (limits.perMinute ?? used) : limits.perDay
            let key = "\(connection)/\(window)/\(Int64(until.timeIntervalSince1970))"
            let first = warned.withLock { set -> Bool in
                if set.count >= 1000 { set.removeAll() }  // old windows; bounded memory
                return set.insert(key).inserted
            }
            if first {
                logger?.warning("request budget spent; the connection waits until the window rolls", [
                    .connection: connection, "WINDOW": window, "USED": String(used), "LIMIT": String(limit),
                    "UNTIL": Timestamps.rfc3339(until),
                ])
            }
            let wait = max(until.timeIntervalSince(at), 0.001)
            throw ProviderError.rateLimited(retryAfter: .milliseconds(Int64((wait * 1000).rounded(.up))),
                                            message: "\(connection): request budget of \(limit) per \(window) spent "
                                                + "(budget.per_\(window)); resumes when the window rolls")
        }
    }

    public func refund(connection: String, windows: RequestBudgetWindows) async {
        do {
            try await store.perform { try $0.refundRequest(connection: connection, windows: windows) }
        } catch {
            logger?.warning("cannot give back a free request; the budget's count stays one too high",
                            [.connection: connection], error: error)
        }
    }

    /// The stored plans' costs: each row is written by the node that polls the object. A failed read plans with
    /// this node's own measurements only (the hard stop still holds the limit).
    public func sharedCosts(connection: String) async -> [String: Double] {
        let rows = (try? await store.perform { try $0.budgetPlans(connection: connection) }) ?? []
        return Dictionary(rows.map { ($0.object, $0.costPerCycle) }, uniquingKeysWith: { first, _ in first })
    }

    public func usage(connection: String) async throws -> RequestBudgetUsage {
        let at = now()
        return try await store.perform { try $0.requestUsage(connection: connection, at: at) }
    }
}
