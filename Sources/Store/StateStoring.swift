// The store's surface: what the engine, the dispatcher, the daemon and the CLI ask of durable state. `StateStore`
// implements it once for every backend: its tables' SQL runs on an `SQLDatabase` (SQLBackend.swift) — SQLite here,
// PostgreSQL in the `PostgresStore` module. A test double or a different kind of store implements this protocol.
//
// The contract of each method is documented on `StateStore`, in the file of its table (ARCHITECTURE.md, "Store").
// What every backend must keep: a page commit is one transaction (invariant 1), event ids are unique in the outbox
// (invariant 2), only the head of each (subscriber, record) queue is claimable and results are written only under
// the claim's lease token (invariant 6), listings are bounded and keyset-paged.
//
// Requirements carry no default arguments (a protocol cannot); `StateStore` keeps its defaults for callers that
// hold the concrete type.
public import Foundation
public import Core

public protocol StateStoring: AuthStateStore, Sendable {
    // MARK: Running work off the cooperative pool

    /// Runs `body` where blocking storage calls belong (the store's own queue) and returns its result.
    func perform<T: Sendable>(_ body: @escaping @Sendable (Self) throws -> T) async throws -> T
    /// Queues `body` now, before anything queued after this call returns; the task delivers its result.
    func enqueue<T: Sendable>(_ body: @escaping @Sendable (Self) throws -> T) -> Task<T, any Error>
    /// The one observer told, after a commit, how many new events a page inserted.
    func observeCommittedEvents(_ observer: (@Sendable (Int) -> Void)?)

    // MARK: Page commit (CommitPage.swift)

    func commitPage(_ commit: PageCommit) throws -> PageCommitResult

    // MARK: Snapshots (Snapshots.swift, Watermarks.swift)

    func snapshotHeads(connection: String, object: String, ids: [String]) throws -> [String: SnapshotHead]
    func snapshots(connection: String, object: String, ids: [String]) throws -> [String: Snapshot]
    func snapshotRecords(connection: String, object: String, ids: [String]) throws -> [String: JSONValue]
    func snapshotPriors(connection: String, object: String, ids: [String]) throws -> [String: SnapshotBody]
    func liveRecordIDs(connection: String, object: String, after: String?, limit: Int) throws -> [String]
    func markSeen(connection: String, object: String, ids: [String], sweep: Date) throws
    func unseenLiveIDs(connection: String, object: String, sweep: Date, after: String?, limit: Int) throws -> [String]
    func newestSourceTimestamp(connection: String, object: String, notAfter: Date) throws -> Date?

    // MARK: Held sweeps (HeldSweeps.swift)

    func sweepCounts(connection: String, object: String, sweep: Date) throws -> (live: Int, unseen: Int)
    func holdSweep(_ held: HeldSweep) throws
    func heldSweep(connection: String, object: String) throws -> HeldSweep?
    func heldSweeps() throws -> [HeldSweep]
    func heldSweepIDs(connection: String, object: String) throws -> [String]
    func stillUnseenLiveIDs(connection: String, object: String, since sweep: Date, among ids: [String]) throws
        -> [String]
    func requestHeldSweepApply(connection: String, object: String) throws -> Bool
    @discardableResult
    func clearHeldSweep(connection: String, object: String) throws -> Bool

    // MARK: Cursors and poll status (Cursors.swift, PollStatuses.swift)

    func cursor(connection: String, object: String, partition: String) throws -> CursorState?
    func cursors(connection: String, object: String) throws -> [CursorState]
    func setCursor(_ cursor: CursorState, now: Date) throws
    func recordPoll(_ report: PollReport) throws
    func pollStatuses() throws -> [PollStatus]

    // MARK: Quarantine (Quarantine.swift)

    func quarantine(connection: String?, object: String?, limit: Int) throws -> [QuarantineEntry]
    func quarantineCounts() throws -> [ObjectCount]
    @discardableResult
    func clearQuarantine(connection: String, object: String?, recordKey: String?) throws -> Int
    func quarantinedIDs(connection: String, object: String, among ids: [String]) throws -> Set<String>

    // MARK: Events (Events.swift)

    func event(id: String) throws -> StoredEvent?
    func events(_ query: EventQuery) throws -> [StoredEvent]
    func events(seqIn range: ClosedRange<Int64>, limit: Int) throws -> [StoredEvent]
    func eventSummaries(since: Date?, afterSeq: Int64, limit: Int) throws -> [EventSummary]

    // MARK: Deliveries on the dispatcher's path (Deliveries.swift, DeliveryLeases.swift)

    func dueDeliveries(subscriber: String, now: Date, limit: Int) throws -> [DueDelivery]
    func claimDueDeliveries(subscriber: String, now: Date, leaseUntil: Date, limit: Int, inFlight: Set<Int64>) throws
        -> [DueDelivery]
    func recordAttempt(_ result: AttemptResult) throws
    @discardableResult
    func recordAttempts(_ results: [AttemptResult]) throws -> [Int64]
    func releaseLeases(_ ids: [Int64], now: Date) throws
    func nextDueAt(subscriber: String) throws -> Date?

    // MARK: Deliveries for operators (DeliveryListings.swift, Redelivery.swift)

    func deliveries(subscriber: String?, state: DeliveryState?, beforeID: Int64?, limit: Int) throws -> [Delivery]
    func deliveries(eventID: String) throws -> [Delivery]
    func attempts(deliveryID: Int64, limit: Int) throws -> [Attempt]
    func backlog(subscriber: String) throws -> SubscriberBacklog
    func pendingCount() throws -> Int
    func replay(subscriber: String, since: Date, now: Date, pageSize: Int,
                matching matches: (EventSummary) -> Bool) throws -> Int
    func redeliver(eventID: String, subscribers: [String]?, now: Date) throws -> Int

    // MARK: Subscribers (Subscribers.swift)

    func subscriber(id: String) throws -> SubscriberStatus?
    func subscribers() throws -> [SubscriberStatus]
    func setSubscriberState(id: String, state: SubscriberState, reason: String?, at: Date) throws
    func setSubscriberFailingSince(id: String, _ since: Date?, at: Date) throws

    // MARK: Cluster (Cluster.swift): heartbeats, poll leases with fencing, shared waits and permits

    func joinCluster(_ node: NodeIdentity, leaseTTL: Duration, objects: Int) throws
    func updateClusterObjects(_ objects: Int)
    @discardableResult
    func heartbeat() throws -> [LeaseKey]
    func leaveCluster() throws
    @discardableResult
    func releasePollLeases(notIn configured: Set<LeaseKey>) throws -> [LeaseKey]
    func clearStaleClusterState() throws
    func acquirePollLease(connection: String, object: String) throws -> PollLeaseOutcome
    func pollLeases() throws -> [PollLeaseStatus]
    func nodes(aliveWithin within: Duration) throws -> [NodeStatus]
    func setProviderWait(connection: String, until: Date, reason: String) throws
    func providerWait(connection: String, now: Date) throws -> (until: Date, reason: String)?
    func acquirePermit(name: String, capacity: Int, ttl: Duration) throws -> Int?
    func releasePermit(name: String, slot: Int) throws

    // MARK: Request budgets (RequestBudgets.swift)

    func admitRequest(connection: String, limits: RequestBudgetLimits, at now: Date) throws -> RequestAdmission
    func refundRequest(connection: String, windows: RequestBudgetWindows) throws
    func requestUsage(connection: String, at now: Date) throws -> RequestBudgetUsage
    func saveBudgetPlans(_ plans: [BudgetPlanRow]) throws
    func budgetPlans() throws -> [BudgetPlanRow]
    func budgetPlans(connection: String) throws -> [BudgetPlanRow]

    // MARK: Retention and space (Retention.swift)

    @discardableResult
    func orphanDeliveries(keeping configured: [String], now: Date, dryRun: Bool) throws -> [String: Int]
    func pruneEventPage(policy: RetentionPolicy, now: Date, afterSeq: Int64, scan: Int, dryRun: Bool) throws
        -> EventPrunePage
    func purgeTombstones(before cutoff: Date, limit: Int, dryRun: Bool) throws -> Int
    func applyRetention(_ policy: RetentionPolicy, configuredSubscribers: [String]?, now: Date, dryRun: Bool,
                        shouldContinue: () -> Bool) throws -> PruneReport
    func checkpoint() throws
    func reclaimSpace() throws
    func vacuum() throws
    func storageSummary() throws -> StorageSummary
}

extension StateStore: StateStoring {}
