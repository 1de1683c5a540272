// Cluster-wide semaphores (docs/DESIGN.md §2 rule 21, shared limits): a limit that belongs to a provider account
// — NetSuite's per-account concurrency — must hold for all daemons sharing one database together, not per process.
// The store keeps the slots as rows with an expiry, so a slot held by a node that died frees itself; adapters see
// only this protocol (Providers never import Store, like ``AuthStateStore``).

/// A semaphore shared by every node of the cluster: `capacity` slots per `name`, each held until released or
/// until its `ttl` runs out.
public protocol ClusterPermits: Sendable {
    /// Takes one free slot of `name` (0 ..< `capacity`) for at most `ttl`, or returns nil at once when all are
    /// taken: the caller decides how to wait (``ClusterPermits/withPermit(name:capacity:ttl:backoff:_:)``).
    /// `ttl` must exceed the longest time the slot can be held, or a slow holder's slot is given to another.
    func acquire(name: String, capacity: Int, ttl: Duration) async throws -> Int?
    /// Gives a slot back. Called on every outcome, cancellation included, so it must run to completion in a
    /// cancelled task; a failure is the implementation's to report (the slot then frees itself at its ttl).
    func release(name: String, slot: Int) async
}

/// How long to wait before asking again when every slot is taken: uniformly random in `minimum ... maximum`,
/// so nodes that were refused together do not all ask again together.
public struct PermitBackoff: Sendable {
    public var minimum: Duration
    public var maximum: Duration
    /// A number in 0..<1; tests make it deterministic.
    public var random: @Sendable () -> Double

    /// Short waits: a slot is held for one provider request, so one frees up within a request's time, and asking
    /// every 50–250 ms costs the database a few small writes per second per waiting request.
    public init(minimum: Duration = .milliseconds(50), maximum: Duration = .milliseconds(250),
                random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.minimum = max(.zero, minimum)
        self.maximum = max(self.minimum, maximum)
        self.random = random
    }

    /// The next wait, within `minimum ... maximum`.
    public func nextWait() -> Duration {
        let fraction = min(max(random(), 0), 1)
        return minimum + (maximum - minimum) * fraction
    }
}

extension ClusterPermits {
    /// Runs `body` holding one slot of `name`: asks for a slot, and while none is free sleeps a
    /// ``PermitBackoff`` wait and asks again. The slot is released on every outcome of `body` (a value, an error,
    /// cancellation). Cancellation while waiting ends the wait at once with `CancellationError` (no slot is held
    /// then); an error of ``acquire(name:capacity:ttl:)`` is thrown as is.
    public func withPermit<T: Sendable>(name: String, capacity: Int, ttl: Duration,
                                        backoff: PermitBackoff = PermitBackoff(),
                                        _ body: () async throws -> T) async throws -> T {
        let slot = try await waitForSlot(name: name, capacity: capacity, ttl: ttl, backoff: backoff)
        let result: T
        do {
            result = try await body()
        } catch {
            await release(name: name, slot: slot)
            throw error
        }
        await release(name: name, slot: slot)
        return result
    }

    private func waitForSlot(name: String, capacity: Int, ttl: Duration, backoff: PermitBackoff) async throws
        -> Int
    {
        while true {
            try Task.checkCancellation()
            if let slot = try await acquire(name: name, capacity: capacity, ttl: ttl) {
                // Cancelled while the slot was being taken: give it back rather than hold it to its ttl.
                if Task.isCancelled {
                    await release(name: name, slot: slot)
                    throw CancellationError()
                }
                return slot
            }
            try await Task.sleep(for: backoff.nextWait())
        }
    }
}
