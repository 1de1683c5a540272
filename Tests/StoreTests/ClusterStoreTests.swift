// Several daemons on one store (docs/DESIGN.md §2 rules 19–21), on both backends: two `StateStore`s on the same
// SQLite file or the same PostgreSQL database stand for two nodes.
import Foundation
import Testing
import Core
@testable import Store
import PostgresStore
import TestSupport

extension StoreBackend {
    /// `count` stores on ONE database: the nodes of a cluster.
    func makeStores(_ dir: borrowing TempDir, count: Int) throws -> [StateStore] {
        switch self {
        case .sqlite:
            return try (0..<count).map { _ in try StateStore(path: dir.dbPath) }
        case .postgres:
            guard let url = try PostgresTestSupport.freshDatabaseURL(prefix: "cluster") else {
                throw PostgresServerError("PostgreSQL became unavailable during the run")
            }
            return try (0..<count).map { _ in try PostgresBackend.openStore(url: url, poolSize: 2) }
        }
    }
}

private func node(_ id: String) -> NodeIdentity {
    NodeIdentity(id: id, host: "host-\(id)", pid: 1, version: "test", startedAt: t0)
}

private func page(_ object: String, _ recordID: String, _ n: Int) -> PageCommit {
    PageCommit(connection: "c", object: object, snapshots: [snapshotWrite(recordID, n)],
               events: [OutgoingEvent(event: makeEvent(recordID, n), subscribers: ["crm"])],
               cursor: CursorState(connection: "c", object: object, watermark: t0.addingTimeInterval(Double(n))), now: t0)
}

@Suite("Cluster: leases, fencing, shared waits and permits")
struct ClusterStoreTests {
    @Test("rule 19: one owner per object; a node outside any cluster is not fenced", arguments: StoreBackend.all)
    func oneOwnerPerObject(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let stores = try backend.makeStores(dir, count: 3)
        let (a, b, cli) = (stores[0], stores[1], stores[2])
        try a.joinCluster(node("a"), leaseTTL: .seconds(30), objects: 2)
        try b.joinCluster(node("b"), leaseTTL: .seconds(30), objects: 2)
        #expect(try a.acquirePollLease(connection: "c", object: "o1") == .held(token: 1))
        #expect(try a.acquirePollLease(connection: "c", object: "o1") == .held(token: 1), "renewal keeps the token")
        guard case .heldElsewhere(let owner, _) = try b.acquirePollLease(connection: "c", object: "o1") else {
            Issue.record("b took a lease a holds")
            return
        }
        #expect(owner == "a")
        #expect(try b.acquirePollLease(connection: "c", object: "o2") == .held(token: 1))
        #expect(try cli.acquirePollLease(connection: "c", object: "o1") == .unfenced)

        _ = try a.commitPage(page("o1", "r1", 1))
        #expect(throws: StoreError.self, "b holds no lease of o1") { try b.commitPage(page("o1", "r2", 1)) }
        #expect(try a.snapshotHeads(connection: "c", object: "o1", ids: ["r1", "r2"]).keys.sorted() == ["r1"])

        let leases = try cli.pollLeases()
        #expect(leases.map { "\($0.object)=\($0.owner)" } == ["o1=a", "o2=b"])
        #expect(try cli.nodes(aliveWithin: .seconds(30)).map(\.identity.id) == ["a", "b"])
        try a.leaveCluster()
        #expect(try cli.pollLeases().filter { !$0.expired }.map(\.owner) == ["b"], "leaving releases every lease at once")
        #expect(try b.acquirePollLease(connection: "c", object: "o1") == .held(token: 2), "taken at once, new token")
        #expect(try cli.nodes(aliveWithin: .seconds(30)).map(\.identity.id) == ["b"])
    }

    /// A node paused past its lease (SIGSTOP, a stall, a partition) commits nothing when it wakes: the lease
    /// expired by the database's clock and another node took it over under a new token.
    @Test("rule 19: fencing refuses the writes of a node whose lease was taken over", arguments: StoreBackend.all)
    func fencingAfterTakeover(_ backend: StoreBackend) async throws {
        let dir = try TempDir()
        let stores = try backend.makeStores(dir, count: 2)
        let (a, b) = (stores[0], stores[1])
        try a.joinCluster(node("a"), leaseTTL: .seconds(1), objects: 1)
        try b.joinCluster(node("b"), leaseTTL: .seconds(1), objects: 1)
        #expect(try a.acquirePollLease(connection: "c", object: "o") == .held(token: 1))
        _ = try a.commitPage(page("o", "r1", 1))

        // a is "paused": no heartbeat, no commit. Wait (bounded) until b can take the expired lease.
        var taken = false
        for _ in 0..<40 where !taken {
            try await Task.sleep(for: .milliseconds(100))
            taken = try b.acquirePollLease(connection: "c", object: "o") == .held(token: 2)
        }
        #expect(taken, "b takes the lease over after it expired")

        // a wakes up mid-scan: its page, its cursor and its sweep marks are all refused.
        let stale = page("o", "r2", 2)
        #expect { try a.commitPage(stale) } throws: { ($0 as? StoreError)?.code == .leaseLost }
        #expect { try a.setCursor(CursorState(connection: "c", object: "o", watermark: t0), now: t0) } throws: {
            ($0 as? StoreError)?.code == .leaseLost
        }
        #expect { try a.markSeen(connection: "c", object: "o", ids: ["r1"], sweep: t0) } throws: {
            ($0 as? StoreError)?.code == .leaseLost
        }
        #expect(try b.snapshotHeads(connection: "c", object: "o", ids: ["r2"]).isEmpty, "nothing of a's page")
        #expect(try b.cursor(connection: "c", object: "o", partition: "")?.watermark == t0.addingTimeInterval(1))
        #expect(try b.heartbeat().isEmpty)
        #expect(try a.heartbeat().isEmpty, "a's lost token was already dropped by the refused write")
        guard case .heldElsewhere = try a.acquirePollLease(connection: "c", object: "o") else {
            Issue.record("a got the lease back while b holds it")
            return
        }
        _ = try b.commitPage(page("o", "r3", 3))
    }

    @Test("rule 19: a node takes at most its fair share while others are alive, and yields the excess",
          arguments: StoreBackend.all)
    func fairShare(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let stores = try backend.makeStores(dir, count: 2)
        let (a, b) = (stores[0], stores[1])
        try a.joinCluster(node("a"), leaseTTL: .seconds(30), objects: 4)
        for object in ["o1", "o2", "o3", "o4"] {
            #expect(try a.acquirePollLease(connection: "c", object: object).mayPoll, "alone, a polls all four")
        }
        try b.joinCluster(node("b"), leaseTTL: .seconds(30), objects: 4)
        // Now the share is 2: a gives up leases as it meets them until it holds 2.
        #expect(try a.acquirePollLease(connection: "c", object: "o1") == .yielded(share: 2))
        #expect(try a.acquirePollLease(connection: "c", object: "o2") == .yielded(share: 2))
        #expect(try a.acquirePollLease(connection: "c", object: "o3") == .held(token: 1))
        #expect(try b.acquirePollLease(connection: "c", object: "o1") == .held(token: 2))
        #expect(try b.acquirePollLease(connection: "c", object: "o2") == .held(token: 2))
        guard case .heldElsewhere(let owner, _) = try a.acquirePollLease(connection: "c", object: "o1") else {
            Issue.record("a took o1 back from b")
            return
        }
        #expect(owner == "b")
        let owners = Dictionary(uniqueKeysWithValues: try a.pollLeases().map { ($0.object, $0.owner) })
        #expect(owners == ["o1": "b", "o2": "b", "o3": "a", "o4": "a"])
    }

    /// Two nodes' dispatchers claim at once: no delivery is claimed twice, and a record's second event is not
    /// claimable by any node while its first is pending (per-record order across nodes).
    @Test("rule 20: concurrent claims from two nodes are disjoint and keep per-record order", arguments: StoreBackend.all)
    func claimsAcrossNodes(_ backend: StoreBackend) async throws {
        let dir = try TempDir()
        let stores = try backend.makeStores(dir, count: 2)
        // 40 records with one event each, plus a second event for r0…r9.
        var events = (0..<40).map { makeEvent("r\($0)", 1) }
        events += (0..<10).map { makeEvent("r\($0)", 2) }
        _ = try stores[0].commitPage(PageCommit(connection: "c", object: "o",
                                                events: events.map { OutgoingEvent(event: $0, subscribers: ["crm"]) },
                                                now: t0))
        let lease = t0.addingTimeInterval(60)
        async let first = stores[0].perform { store in
            try (0..<5).flatMap { _ in try store.claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: lease, limit: 5) }
        }
        async let second = stores[1].perform { store in
            try (0..<5).flatMap { _ in try store.claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: lease, limit: 5) }
        }
        let (a, b) = try await (first, second)
        let ids = (a + b).map(\.delivery.id)
        #expect(Set(ids).count == ids.count, "no delivery claimed by both nodes")
        #expect(ids.count == 40, "every head claimed once, no second event while its first is pending")
        #expect((a + b).allSatisfy { $0.event.occurredAt == t0.addingTimeInterval(1) }, "only first events are heads")
        // Once a head is delivered, its record's next event becomes claimable — by either node.
        let head = try #require((a + b).first { $0.event.recordID == "r3" })
        try stores[1].recordAttempt(AttemptResult(deliveryID: head.delivery.id, attemptedAt: t0, httpStatus: 200,
                                                  latencyMilliseconds: 5, outcome: .delivered,
                                                  leaseToken: head.delivery.leaseToken))
        let next = try stores[0].claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: lease, limit: 10)
        #expect(next.map(\.event.recordID) == ["r3"])
    }

    /// A SQLite daemon restarting after a crash holds the file's poller lock: the dead process's leases, node row
    /// and permits are cleared instead of waited out.
    @Test("rule 19: an exclusive restart clears the dead process's leases and permits at once")
    func exclusiveRestartClearsStaleState() throws {
        let dir = try TempDir()
        let crashed = try StateStore(path: dir.dbPath)
        try crashed.joinCluster(node("old"), leaseTTL: .seconds(30), objects: 1)
        #expect(try crashed.acquirePollLease(connection: "c", object: "o") == .held(token: 1))
        #expect(try crashed.acquirePermit(name: "netsuite:1", capacity: 1, ttl: .seconds(150)) == 0)

        let restarted = try StateStore(path: dir.dbPath)
        try restarted.clearStaleClusterState()
        try restarted.joinCluster(node("new"), leaseTTL: .seconds(30), objects: 1)
        #expect(try restarted.acquirePollLease(connection: "c", object: "o") == .held(token: 2))
        #expect(try restarted.acquirePermit(name: "netsuite:1", capacity: 1, ttl: .seconds(150)) == 0)
        #expect(try restarted.nodes(aliveWithin: .seconds(30)).map(\.identity.id) == ["new"])
    }

    @Test("rule 21: a provider's wait is seen by every node; the later wait wins", arguments: StoreBackend.all)
    func sharedProviderWait(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let stores = try backend.makeStores(dir, count: 2)
        try stores[0].setProviderWait(connection: "ns", until: t0.addingTimeInterval(60), reason: "429 Retry-After: 60")
        try stores[1].setProviderWait(connection: "ns", until: t0.addingTimeInterval(10), reason: "earlier")
        let wait = try #require(try stores[1].providerWait(connection: "ns", now: t0))
        #expect(wait.until == t0.addingTimeInterval(60) && wait.reason == "429 Retry-After: 60")
        #expect(try stores[0].providerWait(connection: "ns", now: t0.addingTimeInterval(61)) == nil)
        #expect(try stores[0].providerWait(connection: "other", now: t0) == nil)
    }

    @Test("rule 21: cluster-wide permits never exceed their capacity; a released slot is reused",
          arguments: StoreBackend.all)
    func permits(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let stores = try backend.makeStores(dir, count: 2)
        try stores[0].joinCluster(node("a"), leaseTTL: .seconds(30), objects: 1)
        try stores[1].joinCluster(node("b"), leaseTTL: .seconds(30), objects: 1)
        let first = try stores[0].acquirePermit(name: "netsuite:123", capacity: 2, ttl: .seconds(60))
        let second = try stores[1].acquirePermit(name: "netsuite:123", capacity: 2, ttl: .seconds(60))
        #expect(Set([first, second]) == Set([0, 1]))
        #expect(try stores[0].acquirePermit(name: "netsuite:123", capacity: 2, ttl: .seconds(60)) == nil)
        #expect(try stores[1].acquirePermit(name: "netsuite:other", capacity: 2, ttl: .seconds(60)) == 0)
        try stores[1].releasePermit(name: "netsuite:123", slot: try #require(second))
        #expect(try stores[0].acquirePermit(name: "netsuite:123", capacity: 2, ttl: .seconds(60)) == second)
        try stores[0].leaveCluster()
        #expect(try stores[1].acquirePermit(name: "netsuite:123", capacity: 2, ttl: .seconds(60)) != nil,
                "a node leaving frees its permits")
    }
}
