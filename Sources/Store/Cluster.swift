// Several daemons, one database (docs/DESIGN.md §2 rules 19–21; ARCHITECTURE.md "Cluster"): node heartbeats,
// poll leases with fencing tokens, provider waits every node honours, and cluster-wide permits.
//
// A daemon that joins (``StateStore/joinCluster(_:leaseTTL:objects:)``) polls an object only while it holds the
// object's lease, and every write for that object (page commit, cursor, sweep marks, held sweep) checks — inside
// its own transaction — that the lease row still names this node with the token it was granted, and renews it.
// A node paused past its lease (SIGSTOP, a stall, a partition) finds the row expired or re-granted under a new
// token when it wakes, and its write is refused: nothing of it is stored (`StoreError.leaseLost`). Lease times
// come from the database's clock (``SQLDialect/nowMillis``), so nodes with drifting clocks agree.
//
// A process that never joins (the CLI, a test, a store opened for `poll-once`) is not fenced: its writes are
// checked by nothing, as before clusters existed. The SQLite daemon joins too (a cluster of one).
public import Foundation
import Core
import Synchronization

/// Who this process is in the cluster: shown by `status`, written in `nodes` and in the leases it holds.
public struct NodeIdentity: Sendable, Hashable {
    public var id: String
    public var host: String
    public var pid: Int32
    public var version: String
    public var startedAt: Date

    public init(id: String, host: String, pid: Int32, version: String, startedAt: Date) {
        self.id = id
        self.host = host
        self.pid = pid
        self.version = version
        self.startedAt = startedAt
    }
}

/// One (connection, object): the unit a poll lease covers.
public struct LeaseKey: Sendable, Hashable {
    public var connection: String
    public var object: String
    public init(connection: String, object: String) {
        self.connection = connection
        self.object = object
    }
}

/// The answer to ``StateStore/acquirePollLease(connection:object:)``.
public enum PollLeaseOutcome: Sendable, Equatable {
    /// This process has not joined a cluster: nothing is fenced, it polls.
    case unfenced
    /// This node holds the lease (newly taken or renewed) under `token`: it polls.
    case held(token: Int64)
    /// Another node holds it until `expiresAt` (database clock): this node skips the cycle.
    case heldElsewhere(owner: String, expiresAt: Date)
    /// The lease is free, but this node already holds its fair share (`held` of `share`) while others are alive.
    case overShare(held: Int, share: Int)
    /// This node held it, but holds more than its fair share now that more nodes are alive: it let it go.
    case yielded(share: Int)

    /// Whether the caller may poll.
    public var mayPoll: Bool {
        switch self {
        case .unfenced, .held: true
        case .heldElsewhere, .overShare, .yielded: false
        }
    }
}

/// A row of `nodes`, for `status`.
public struct NodeStatus: Sendable, Hashable {
    public var identity: NodeIdentity
    public var heartbeatAt: Date
    /// Its heartbeat is younger than the lease ttl of the node that asked.
    public var alive: Bool
}

/// A row of `poll_leases`, for `status`.
public struct PollLeaseStatus: Sendable, Hashable {
    public var connection: String
    public var object: String
    public var owner: String
    public var token: Int64
    public var expiresAt: Date
    public var expired: Bool
}

/// This node's part in a cluster: who it is, the lease ttl, and the fencing tokens it holds.
struct ClusterMembership: Sendable {
    var node: NodeIdentity
    var ttlMillis: Int64
    /// Configured (connection, object) pairs: the fair share is `ceil(objects / alive nodes)`.
    var objects: Int
    var tokens: [LeaseKey: Int64] = [:]
}

extension StateStore {
    // MARK: Membership

    /// Makes this store fenced for `node`: from now on writes for an object need its lease (see the file
    /// comment). Writes the node's first heartbeat.
    public func joinCluster(_ node: NodeIdentity, leaseTTL: Duration, objects: Int) throws {
        let ttl = max(Int64(1000), leaseTTL.milliseconds)
        membership.withLock { $0 = ClusterMembership(node: node, ttlMillis: ttl, objects: max(1, objects)) }
        _ = try heartbeat()
    }

    /// The number of configured objects changed (a reload).
    public func updateClusterObjects(_ objects: Int) {
        membership.withLock { $0?.objects = max(1, objects) }
    }

    /// Writes this node's heartbeat and renews every lease it holds. Returns the leases it found lost (expired
    /// and re-granted, or gone): their tokens are dropped, so no later write for those objects passes.
    @discardableResult
    public func heartbeat() throws -> [LeaseKey] {
        guard let member = membership.withLock({ $0 }) else { return [] }
        let node = member.node
        let lost: [LeaseKey] = try database.write { db in
            let now = try Self.databaseNow(db)
            try db.execute("""
                INSERT INTO nodes (node_id, host, pid, version, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at
                """, [.text(node.id), .text(node.host), .integer(Int64(node.pid)), .text(node.version),
                      .date(node.startedAt), .integer(now)])
            // Nodes silent for a day are history, not members.
            try db.execute("DELETE FROM nodes WHERE heartbeat_at < ?", [.integer(now - 86_400_000)])
            var lost: [LeaseKey] = []
            for (key, token) in member.tokens {
                let renewed = try Self.renewLease(key, token: token, member: member, now: now, db)
                if !renewed { lost.append(key) }
            }
            return lost
        }
        if !lost.isEmpty { membership.withLock { for key in lost { $0?.tokens[key] = nil } } }
        return lost
    }

    /// Leaves the cluster (graceful shutdown): gives up every lease and permit at once, so another node takes
    /// over without waiting for the ttl, and removes this node's row.
    public func leaveCluster() throws {
        guard let member = membership.withLock({ state -> ClusterMembership? in
            defer { state = nil }
            return state
        }) else { return }
        try database.write { db in
            // Expired, not deleted: tokens only grow, and `status` shows who held them last.
            try db.execute("UPDATE poll_leases SET expires_at = 0 WHERE owner = ?", [.text(member.node.id)])
            try db.execute("DELETE FROM permits WHERE owner = ?", [.text(member.node.id)])
            try db.execute("DELETE FROM nodes WHERE node_id = ?", [.text(member.node.id)])
        }
    }

    /// For a store only this process can write (a SQLite file whose poller lock it holds): every lease, node row
    /// and permit left by an earlier process is stale — that process is dead, or the lock would not be free —
    /// so they are cleared at start instead of waited out (a crash-restart would otherwise poll nothing for
    /// up to `lease_ttl`, and NetSuite's slots would stay taken until they expire).
    public func clearStaleClusterState() throws {
        try database.write { db in
            try db.execute("UPDATE poll_leases SET expires_at = 0 WHERE expires_at > 0")
            try db.execute("DELETE FROM permits")
            try db.execute("DELETE FROM nodes")
        }
    }

    // MARK: Poll leases

    /// Takes or renews the poll lease of (connection, object) for this node, within its fair share. Without
    /// membership, `.unfenced`.
    public func acquirePollLease(connection: String, object: String) throws -> PollLeaseOutcome {
        guard let member = membership.withLock({ $0 }) else { return .unfenced }
        let key = LeaseKey(connection: connection, object: object)
        let me = member.node.id
        let (outcome, token): (PollLeaseOutcome, Int64?) = try database.write { db in
            let now = try Self.databaseNow(db)
            let current = try db.queryOne(
                "SELECT owner, token, expires_at FROM poll_leases WHERE connection = ? AND object = ?",
                [.text(connection), .text(object)]) { (owner: $0.text(0), token: $0.int64(1), expiresAt: $0.int64(2)) }
            let share = try Self.fairShare(member: member, now: now, db)
            let held = try db.queryOne(
                "SELECT COUNT(*) FROM poll_leases WHERE owner = ? AND expires_at > ?",
                [.text(me), .integer(now)]) { $0.int(0) } ?? 0
            if let current, current.expiresAt > now {
                guard current.owner == me else {
                    return (.heldElsewhere(owner: current.owner, expiresAt: Millis.date(current.expiresAt)), nil)
                }
                if held > share {
                    // Expired rather than deleted, so the next owner's token is larger than every earlier one.
                    try db.execute("""
                        UPDATE poll_leases SET expires_at = 0
                        WHERE connection = ? AND object = ? AND owner = ? AND token = ?
                        """, [.text(connection), .text(object), .text(me), .integer(current.token)])
                    return (.yielded(share: share), nil)
                }
                let renewed = try db.execute("""
                    UPDATE poll_leases SET expires_at = ?
                    WHERE connection = ? AND object = ? AND owner = ? AND token = ? AND expires_at > ?
                    """, [.integer(now + member.ttlMillis), .text(connection), .text(object), .text(me),
                          .integer(current.token), .integer(now)])
                return renewed == 1 ? (.held(token: current.token), current.token) : (.overShare(held: held, share: share), nil)
            }
            guard held < share else { return (.overShare(held: held, share: share), nil) }
            // Free, or expired (whoever held it): a new owner under a new token, so the old owner's writes fail.
            // Compare-and-set on the token that was read: of two nodes taking the same expired lease at once, the
            // second finds the row changed (a row lock, then the condition re-checked) and takes nothing.
            let token = (current?.token ?? 0) + 1
            let taken: Int
            if let current {
                taken = try db.execute("""
                    UPDATE poll_leases SET owner = ?, token = ?, acquired_at = ?, expires_at = ?
                    WHERE connection = ? AND object = ? AND token = ? AND expires_at <= ?
                    """, [.text(me), .integer(token), .integer(now), .integer(now + member.ttlMillis),
                          .text(connection), .text(object), .integer(current.token), .integer(now)])
            } else {
                taken = try db.execute("""
                    INSERT INTO poll_leases (connection, object, owner, token, acquired_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (connection, object) DO NOTHING
                    """, [.text(connection), .text(object), .text(me), .integer(token), .integer(now),
                          .integer(now + member.ttlMillis)])
            }
            guard taken == 1 else {
                let owner = try db.queryOne("SELECT owner, expires_at FROM poll_leases WHERE connection = ? AND object = ?",
                                            [.text(connection), .text(object)]) { ($0.text(0), $0.int64(1)) }
                return (.heldElsewhere(owner: owner?.0 ?? "another node", expiresAt: Millis.date(owner?.1 ?? now)), nil)
            }
            return (.held(token: token), token)
        }
        membership.withLock { $0?.tokens[key] = token }
        return outcome
    }

    /// Gives up the leases this node holds on objects no longer in `configured` (a reload removed them): the
    /// heartbeat would otherwise renew them for ever, and they would count against this node's fair share.
    /// Returns the released keys.
    @discardableResult
    public func releasePollLeases(notIn configured: Set<LeaseKey>) throws -> [LeaseKey] {
        guard let member = membership.withLock({ $0 }) else { return [] }
        let stale = member.tokens.filter { !configured.contains($0.key) }
        guard !stale.isEmpty else { return [] }
        try database.write { db in
            for (key, token) in stale {
                try db.execute("""
                    UPDATE poll_leases SET expires_at = 0
                    WHERE connection = ? AND object = ? AND owner = ? AND token = ?
                    """, [.text(key.connection), .text(key.object), .text(member.node.id), .integer(token)])
            }
        }
        membership.withLock { for key in stale.keys { $0?.tokens[key] = nil } }
        return Array(stale.keys)
    }

    /// Every lease row, for `status` (at most 100000 rows: one per configured object).
    public func pollLeases() throws -> [PollLeaseStatus] {
        try database.read { db in
            let now = try Self.databaseNow(db)
            return try db.queryAll("""
                SELECT connection, object, owner, token, expires_at FROM poll_leases
                ORDER BY connection, object LIMIT 100000
                """) { row in
                PollLeaseStatus(connection: row.text(0), object: row.text(1), owner: row.text(2), token: row.int64(3),
                                expiresAt: Millis.date(row.int64(4)), expired: row.int64(4) <= now)
            }
        }
    }

    /// Every node seen in the last day; `alive` by `within` (the asking node's lease ttl by default: 30 s).
    public func nodes(aliveWithin within: Duration = .seconds(30)) throws -> [NodeStatus] {
        try database.read { db in
            let now = try Self.databaseNow(db)
            return try db.queryAll("""
                SELECT node_id, host, pid, version, started_at, heartbeat_at FROM nodes ORDER BY node_id LIMIT 1000
                """) { row in
                let identity = NodeIdentity(id: row.text(0), host: row.text(1), pid: Int32(truncatingIfNeeded: row.int64(2)),
                                            version: row.text(3), startedAt: Millis.date(row.int64(4)))
                return NodeStatus(identity: identity, heartbeatAt: Millis.date(row.int64(5)),
                                  alive: row.int64(5) > now - within.milliseconds)
            }
        }
    }

    // MARK: Fencing (called inside the writes of an object)

    /// Inside a write for (connection, object): when this store is fenced, the lease must still name this node
    /// with the token it was granted and be unexpired; it is renewed. Throws `.leaseLost` otherwise.
    func checkFence(connection: String, object: String, _ db: any SQLConnection) throws {
        guard let member = membership.withLock({ $0 }) else { return }
        let key = LeaseKey(connection: connection, object: object)
        guard let token = member.tokens[key] else {
            throw StoreError(code: .leaseLost, message: "this node does not hold the poll lease of \(connection)/\(object)",
                             hint: "another node polls it; this node's write was dropped (fencing)")
        }
        let now = try Self.databaseNow(db)
        guard try Self.renewLease(key, token: token, member: member, now: now, db) else {
            throw StoreError(code: .leaseLost,
                             message: "the poll lease of \(connection)/\(object) (token \(token)) expired or was taken over",
                             hint: "this node was paused or partitioned past lease_ttl; its write was dropped (fencing)")
        }
    }

    /// Drops the token of a lease a write found lost, so the next cycle asks for the lease again.
    func forgetLease(connection: String, object: String) {
        membership.withLock { $0?.tokens[LeaseKey(connection: connection, object: object)] = nil }
    }

    /// Runs a write for (connection, object) with its fence checked in the same transaction.
    func fencedWrite<T>(connection: String, object: String, _ body: (any SQLConnection) throws -> T) throws -> T {
        do {
            return try database.write { db in
                try checkFence(connection: connection, object: object, db)
                return try body(db)
            }
        } catch let error as StoreError where error.code == .leaseLost {
            forgetLease(connection: connection, object: object)
            throw error
        }
    }

    private static func renewLease(_ key: LeaseKey, token: Int64, member: ClusterMembership, now: Int64,
                                   _ db: any SQLConnection) throws -> Bool {
        try db.execute("""
            UPDATE poll_leases SET expires_at = ?
            WHERE connection = ? AND object = ? AND owner = ? AND token = ? AND expires_at > ?
            """, [.integer(now + member.ttlMillis), .text(key.connection), .text(key.object), .text(member.node.id),
                  .integer(token), .integer(now)]) == 1
    }

    private static func fairShare(member: ClusterMembership, now: Int64, _ db: any SQLConnection) throws -> Int {
        let alive = try db.queryOne("SELECT COUNT(*) FROM nodes WHERE heartbeat_at > ? AND node_id != ?",
                                    [.integer(now - member.ttlMillis), .text(member.node.id)]) { $0.int(0) } ?? 0
        let nodes = alive + 1
        return (member.objects + nodes - 1) / nodes
    }

    /// The database server's clock (Unix ms).
    static func databaseNow(_ db: any SQLConnection) throws -> Int64 {
        try db.queryOne("SELECT \(db.dialect.nowMillis)") { $0.int64(0) } ?? 0
    }

    // MARK: Shared provider waits

    /// Records that `connection`'s provider asked for a wait until `until` (a 429's Retry-After, a rate-limit
    /// reset): every node skips the connection until then. A later wait wins over an earlier one.
    public func setProviderWait(connection: String, until: Date, reason: String) throws {
        let setter = membership.withLock { $0?.node.id } ?? "local"
        try database.write { db in
            try db.execute("""
                INSERT INTO provider_waits (connection, until, reason, set_by) VALUES (?, ?, ?, ?)
                ON CONFLICT (connection) DO UPDATE SET
                    reason = CASE WHEN excluded.until > provider_waits.until THEN excluded.reason ELSE provider_waits.reason END,
                    set_by = CASE WHEN excluded.until > provider_waits.until THEN excluded.set_by ELSE provider_waits.set_by END,
                    until = \(db.dialect.greatest("provider_waits.until", "excluded.until"))
                """, [.text(connection), .date(until), .text(reason), .text(setter)])
        }
    }

    /// The wait a provider imposed on `connection`, if it ends after `now`.
    public func providerWait(connection: String, now: Date) throws -> (until: Date, reason: String)? {
        try database.read { db in
            try db.queryOne("SELECT until, reason FROM provider_waits WHERE connection = ? AND until > ?",
                            [.text(connection), .date(now)]) { (Millis.date($0.int64(0)), $0.text(1)) }
        }
    }

    // MARK: Cluster-wide permits

    /// Takes one of `capacity` slots of the semaphore `name` for `ttl` (a dead holder's slot frees itself then).
    /// Returns the slot, or nil when all are taken.
    public func acquirePermit(name: String, capacity: Int, ttl: Duration) throws -> Int? {
        let owner = permitOwner
        return try database.write { db in
            let now = try Self.databaseNow(db)
            try db.execute("DELETE FROM permits WHERE name = ? AND expires_at <= ?", [.text(name), .integer(now)])
            var taken = Set<Int>()
            try db.query("SELECT slot FROM permits WHERE name = ? LIMIT 10000", [.text(name)]) { taken.insert($0.int(0)) }
            guard let slot = (0..<max(0, capacity)).first(where: { !taken.contains($0) }) else { return nil }
            let inserted = try db.execute("""
                INSERT INTO permits (name, slot, owner, expires_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (name, slot) DO NOTHING
                """, [.text(name), .integer(Int64(slot)), .text(owner), .integer(now + ttl.milliseconds)])
            return inserted == 1 ? slot : nil
        }
    }

    /// Gives a slot back — only if this node still holds it: a holder paused past the slot's ttl must not free the
    /// slot another node has taken since (that would let one request too many through).
    public func releasePermit(name: String, slot: Int) throws {
        let owner = permitOwner
        try database.write { db in
            try db.execute("DELETE FROM permits WHERE name = ? AND slot = ? AND owner = ?",
                           [.text(name), .integer(Int64(slot)), .text(owner)])
        }
    }

    /// Who holds the permits this process takes: its node id, or its pid outside a cluster.
    private var permitOwner: String {
        membership.withLock { $0?.node.id } ?? "local-\(ProcessInfo.processInfo.processIdentifier)"
    }
}
