// The store's `permits` table as the Core `ClusterPermits` that provider clients use (docs/DESIGN.md §2 rule 21):
// Providers never import Store, so the daemon, which sees both, joins them here — as it passes the store as an
// `AuthStateStore`.
public import Core
public import Logging
public import Store

/// ``ClusterPermits`` on a ``StateStoring``: each call runs on the store's queue (its writes block).
public struct StoreClusterPermits: ClusterPermits {
    public let store: any StateStoring
    let logger: Logger?

    /// - Parameter logger: reports a slot that could not be given back (it frees itself at its ttl).
    public init(store: any StateStoring, logger: Logger? = nil) {
        self.store = store
        self.logger = logger
    }

    public func acquire(name: String, capacity: Int, ttl: Duration) async throws -> Int? {
        try await store.perform { try $0.acquirePermit(name: name, capacity: capacity, ttl: ttl) }
    }

    /// `perform` does not look at cancellation, so the release runs in a cancelled task too.
    public func release(name: String, slot: Int) async {
        do {
            try await store.perform { try $0.releasePermit(name: name, slot: slot) }
        } catch {
            logger?.warning("cannot give back a cluster permit; it frees itself at its ttl",
                            ["PERMIT": name, "SLOT": String(slot)], error: error)
        }
    }
}
