// The store's permits as the cluster-wide semaphore of provider clients (docs/DESIGN.md §2 rule 21), on a real
// SQLite file shared by two "nodes" (two StateStore instances that joined the cluster under different ids).
import Core
import Daemon
import Foundation
import HTTPClient
import Providers
import Store
import Synchronization
import TestSupport
import Testing

@Suite("cluster permits on the state store")
struct StoreClusterPermitsTests {
    /// Two stores on one database file, each a node of the cluster.
    static func twoNodes(_ directory: TemporaryDirectory) throws -> [StateStore] {
        let path = directory.file(StateStore.fileName)
        return try ["node-a", "node-b"].map { id in
            let store = try StateStore(path: path)
            try store.joinCluster(NodeIdentity(id: id, host: "localhost", pid: 1, version: "test", startedAt: Date()),
                                  leaseTTL: .seconds(30), objects: 1)
            return store
        }
    }

    /// Answers SuiteQL after a short delay, counting requests in flight at once across both nodes.
    final class CountingTransport: HTTPTransport {
        let counts = Mutex((inFlight: 0, max: 0, requests: 0))

        func send(_ request: HTTPRequest) async throws -> HTTPResponse {
            counts.withLock { c in
                c.inFlight += 1
                c.requests += 1
                c.max = Swift.max(c.max, c.inFlight)
            }
            defer { counts.withLock { $0.inFlight -= 1 } }
            try await Task.sleep(for: .milliseconds(15))
            return HTTPResponse(status: 200, body: Array(#"{"links":[],"count":0,"hasMore":false,"items":[],"offset":0,"totalResults":0}"#.utf8))
        }
    }

    @Test("Two nodes' NetSuite clients with max_concurrency 2 each never exceed 2 requests at once together")
    func netSuiteAcrossNodes() async throws {
        let directory = try TemporaryDirectory(prefix: "permits")
        defer { directory.remove() }
        let stores = try Self.twoNodes(directory)
        let transport = CountingTransport()
        let clients = stores.map { store in
            var options = NetSuiteClient.Options(maxConcurrency: 2, permitBackoff: PermitBackoff(minimum: .milliseconds(2),
                                                                                                 maximum: .milliseconds(10)))
            options.permits = StoreClusterPermits(store: store)
            return NetSuiteClient(connection: "ns", accountID: "1234567_SB1", baseURL: "https://ns.example",
                                  timeZone: TimeZone(identifier: "UTC") ?? .current,
                                  tokens: NetSuiteTokens(consumerKey: "ck", consumerSecret: "cs", tokenID: "t", tokenSecret: "s"),
                                  transport: transport, options: options)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<12 {
                let client = clients[index % 2]
                group.addTask { _ = try await client.query("SELECT id FROM customer", limit: 10, offset: 0) }
            }
            try await group.waitForAll()
        }
        let counts = transport.counts.withLock { $0 }
        #expect(counts.requests == 12)
        #expect(counts.max <= 2, "the account saw \(counts.max) requests at once")
        // Every slot was given back: the whole capacity is free again.
        let permits = StoreClusterPermits(store: stores[0])
        let a = try await permits.acquire(name: "netsuite:1234567_SB1", capacity: 2, ttl: .seconds(5))
        let b = try await permits.acquire(name: "netsuite:1234567_SB1", capacity: 2, ttl: .seconds(5))
        #expect(Set([a, b].compactMap { $0 }) == [0, 1])
    }

    @Test("A dead node's slot frees itself at its ttl; a released slot is free at once, even from a cancelled task")
    func expiryAndRelease() async throws {
        let directory = try TemporaryDirectory(prefix: "permits")
        defer { directory.remove() }
        let stores = try Self.twoNodes(directory)
        let dead = StoreClusterPermits(store: stores[0])
        let alive = StoreClusterPermits(store: stores[1])
        #expect(try await dead.acquire(name: "p", capacity: 1, ttl: .milliseconds(300)) == 0)
        #expect(try await alive.acquire(name: "p", capacity: 1, ttl: .seconds(30)) == nil)
        // The holder never releases (it died): the slot is free once its ttl has passed.
        #expect(try await Wait.until(timeout: .seconds(10), interval: .milliseconds(50)) {
            try await alive.acquire(name: "p", capacity: 1, ttl: .seconds(30)) == 0
        })
        let release = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await alive.release(name: "p", slot: 0)
        }
        await release.value
        #expect(try await dead.acquire(name: "p", capacity: 1, ttl: .seconds(30)) == 0)
    }

    @Test("A holder paused past its slot's ttl cannot free the slot another node took since")
    func staleReleaseKeepsTheNewHolder() async throws {
        let directory = try TemporaryDirectory(prefix: "permits")
        defer { directory.remove() }
        let stores = try Self.twoNodes(directory)
        let paused = StoreClusterPermits(store: stores[0])
        let other = StoreClusterPermits(store: stores[1])
        #expect(try await paused.acquire(name: "p", capacity: 1, ttl: .milliseconds(200)) == 0)
        #expect(try await Wait.until(timeout: .seconds(10), interval: .milliseconds(50)) {
            try await other.acquire(name: "p", capacity: 1, ttl: .seconds(30)) == 0
        })
        // The paused node wakes up and gives back "its" slot: the other node's grant stays.
        await paused.release(name: "p", slot: 0)
        #expect(try await paused.acquire(name: "p", capacity: 1, ttl: .seconds(30)) == nil)
        await other.release(name: "p", slot: 0)
        #expect(try await paused.acquire(name: "p", capacity: 1, ttl: .seconds(30)) == 0)
    }
}
