// What the daemon derives from the configuration for one polled object, and the few types every engine
// component shares (routing, errors). docs/DESIGN.md §2 and §6.
public import Core
public import Foundation

/// How the first complete scan of an object (no cursor yet) is treated (docs/DESIGN.md §6 `initial_sync`).
public enum InitialSyncMode: String, Sendable, Hashable, CaseIterable {
    /// Baseline: snapshots only, no events.
    case silent
    /// A `created` event per existing record.
    case emit
}

/// Returns the subscriber ids an event goes to. The daemon builds it from the subscribers' event globs and
/// connection lists; the engine calls it inside the page commit so the event and its delivery rows are
/// created in the same transaction (docs/DESIGN.md §2 rule 1, §5).
public typealias EventRouter = @Sendable (ChangeEvent) -> [String]

/// The polling plan of one (connection, object, partition).
public struct ObjectPlan: Sendable {
    public var descriptor: ObjectDescriptor
    /// Time between the end of one cycle and the start of the next.
    public var interval: Duration
    /// Extra re-read window below the watermark for rows that become visible late (long transactions,
    /// replica lag). The engine always overlaps one more granule on top (docs/DESIGN.md §2 rule 2).
    public var lookback: Duration
    /// Full id-set reconciliation period (docs/DESIGN.md §2 rule 6); nil disables reconciliation.
    public var reconcileEvery: Duration?
    public var initialSync: InitialSyncMode
    /// Records per provider page; also the size of reconciliation id pages and delete transactions.
    public var pageSize: Int
    /// Read the provider's delete feed after each delta scan (ServiceNow `sys_audit_delete`,
    /// NetSuite `DeletedRecord`), when the source has one.
    public var useDeleteFeed: Bool
    // The bounds below come from the untrusted-input and event rules; they have safe defaults and are set after
    // `init` by whoever has the configuration (`Daemon/Wiring`), which keeps `init` to the polling essentials.

    /// A record dated later than scan start + this is emitted but left out of the watermark
    /// (docs/DESIGN.md §2 rule 14: one record dated 2099 must not freeze the cursor).
    public var maxClockSkew: Duration = .seconds(300)
    /// Pages one delta scan may read before it stops with a warning (rule 18); the next cycle resumes. At least 1.
    public var maxPagesPerScan: Int = 10_000 {
        didSet { if maxPagesPerScan < 1 { maxPagesPerScan = 1 } }
    }
    /// nil: sweeps apply whatever they find (`"delete_guard": false`). Rule 17.
    public var deleteGuard: DeleteGuardPolicy? = .defaults
    /// Which content changes become `updated` events (rule 5a).
    public var emit: EmitPolicy = .anyChange
    /// The connection's request budget (rule 22): the scheduler stretches `interval` to fit it. nil: none.
    public var budget: RequestBudgetLimits?

    public init(descriptor: ObjectDescriptor, interval: Duration, lookback: Duration = .seconds(1),
                reconcileEvery: Duration? = .seconds(6 * 3600), initialSync: InitialSyncMode = .silent,
                pageSize: Int = 1000, useDeleteFeed: Bool = true) {
        self.descriptor = descriptor
        self.interval = interval
        self.lookback = lookback
        self.reconcileEvery = reconcileEvery
        self.initialSync = initialSync
        self.pageSize = max(1, pageSize)
        self.useDeleteFeed = useDeleteFeed
    }

    public var key: JobKey { JobKey(connection: descriptor.connection, object: descriptor.object) }

    /// The inclusive lower bound of a delta scan that starts from `watermark`: one granule plus the lookback
    /// window below it, so rows sharing the watermark's timestamp and rows committed late are re-read (and
    /// suppressed by hash when unchanged). nil watermark: from the beginning.
    public func lowerBound(fromWatermark watermark: Date?) -> Date? {
        guard let watermark else { return nil }
        let overlap = lookback.seconds + descriptor.granularity.seconds
        return watermark.addingTimeInterval(-max(0, overlap))
    }
}

/// An object the engine polls: its plan and the provider adapter that reads it.
public struct PollTarget: Sendable {
    public var plan: ObjectPlan
    public var source: any ObjectSource
    /// What the target was built from (the daemon uses its connection's config revision). Equal revisions on
    /// reload mean "unchanged": the engine keeps the running target and schedule. nil: no comparison.
    public var revision: String?

    public init(plan: ObjectPlan, source: any ObjectSource, revision: String? = nil) {
        self.plan = plan
        self.source = source
        self.revision = revision
    }
}

/// Failures the engine itself detects (provider failures arrive as ``Core/ProviderError``).
public enum EngineError: Error, Sendable, CustomStringConvertible {
    /// The provider returned a scan position it had already returned in this scan: following it would loop
    /// forever. This is a provider (adapter) bug; the cursor stays at the last committed page.
    case paginationStalled(connection: String, object: String, position: String)
    /// The id listing of a reconciliation sweep repeated a page token.
    case idListingStalled(connection: String, object: String, token: String)
    /// The delete feed repeated a position.
    case deleteFeedStalled(connection: String, object: String, position: String)
    /// `pollOnce` / `trigger` named an object the engine does not poll.
    case unknownObject(connection: String, object: String?)

    public var description: String {
        switch self {
        case .paginationStalled(let c, let o, let p):
            "\(c)/\(o): the provider returned scan position \(p) twice in one scan; stopping instead of looping "
                + "(adapter bug: a page must advance the keyset). The cursor stays at the last committed page."
        case .idListingStalled(let c, let o, let t):
            "\(c)/\(o): the id listing returned page token \(t) twice; the reconciliation sweep was abandoned and "
                + "no deletes were inferred."
        case .deleteFeedStalled(let c, let o, let p):
            "\(c)/\(o): the delete feed returned position \(p) twice; stopping instead of looping."
        case .unknownObject(let c, let o):
            if let o { "no polled object \(c)/\(o) (hint: check the connection id and object name in the config)" }
            else { "no polled objects for connection \(c) (hint: check the connection id in the config)" }
        }
    }
}

extension ScanPosition {
    /// Short human form for errors and logs.
    var summary: String {
        var text = "(\(Timestamps.rfc3339Milliseconds(timestamp)), \(recordID))"
        if !hints.isEmpty {
            text += " " + hints.keys.sorted().map { "\($0)=\(hints[$0] ?? "")" }.joined(separator: ",")
        }
        return text
    }
}
