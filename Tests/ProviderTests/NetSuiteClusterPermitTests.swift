// NetSuite's per-account concurrency limit across the nodes of a cluster (docs/DESIGN.md §2 rule 21): every
// request holds a cluster-wide slot besides the local semaphore, gives it back on every outcome, and a request
// waiting for a slot stops waiting when cancelled. Each test names what it proves.
import Core
import Foundation
import HTTPClient
import Providers
import Synchronization
import TestSupport
import Testing

/// An in-memory ``ClusterPermits``: the slots of each name, shared by every client given this object.
final class FakeClusterPermits: ClusterPermits {
    struct State {
        var held: [String: Set<Int>] = [:]
        var acquires = 0
        var refusals = 0
        var releases = 0
        var asked: [(name: String, capacity: Int, ttl: Duration)] = []
    }

    let state = Mutex(State())
    /// Every slot taken by someone else: every ask is refused.
    let full: Bool

    init(full: Bool = false) { self.full = full }

    func acquire(name: String, capacity: Int, ttl: Duration) async throws -> Int? {
        state.withLock { s in
            s.asked.append((name, capacity, ttl))
            let taken = s.held[name, default: []]
            guard !full, let slot = (0..<capacity).first(where: { !taken.contains($0) }) else {
                s.refusals += 1
                return nil
            }
            s.held[name, default: []].insert(slot)
            s.acquires += 1
            return slot
        }
    }

    func release(name: String, slot: Int) async {
        state.withLock { s in
            s.held[name]?.remove(slot)
            s.releases += 1
        }
    }

    var heldCount: Int { state.withLock { $0.held.values.reduce(0) { $0 + $1.count } } }
    var refusals: Int { state.withLock { $0.refusals } }
}

/// Answers every SuiteQL request with one row after `delay`, counting requests in flight at once (across every
/// client sharing it). `status` other than 200 answers that error instead; `delay` nil waits until cancelled.
final class ConcurrencyCountingTransport: HTTPTransport {
    struct Counts {
        var inFlight = 0
        var maxInFlight = 0
        var requests = 0
    }

    let counts = Mutex(Counts())
    let delay: Duration?
    let status: Int

    init(delay: Duration? = .milliseconds(15), status: Int = 200) {
        self.delay = delay
        self.status = status
    }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        counts.withLock { c in
            c.inFlight += 1
            c.requests += 1
            c.maxInFlight = max(c.maxInFlight, c.inFlight)
        }
        defer { counts.withLock { $0.inFlight -= 1 } }
        if let delay {
            try await Task.sleep(for: delay)
        } else {
            try await Task.sleep(for: .seconds(3600))
        }
        if status != 200 { return HTTPResponse(status: status, body: Array(#"{"title":"Forbidden"}"#.utf8)) }
        return HTTPResponse(status: 200, body: Array(#"{"links":[],"count":1,"hasMore":false,"items":[{"links":[],"id":"1"}],"offset":0,"totalResults":1}"#.utf8))
    }
}

@Suite("NetSuite concurrency limit shared by the cluster")
struct NetSuiteClusterPermitTests {
    static func client(_ transport: any HTTPTransport, permits: (any ClusterPermits)?, account: String = "1234567_SB1",
                       maxConcurrency: Int = 2) -> NetSuiteClient {
        var options = NetSuiteClient.Options(maxConcurrency: maxConcurrency, timeout: .seconds(60),
                                             permitBackoff: PermitBackoff(minimum: .milliseconds(1),
                                                                          maximum: .milliseconds(5)))
        options.permits = permits
        return NetSuiteClient(connection: "ns", accountID: account, baseURL: "https://ns.example",
                              timeZone: TimeZone(identifier: "UTC") ?? .current,
                              tokens: NetSuiteTokens(consumerKey: "ck", consumerSecret: "cs", tokenID: "tid", tokenSecret: "ts"),
                              transport: transport, options: options)
    }

    @Test("Rule 21: two nodes with max_concurrency 2 each never run more than 2 requests at once together")
    func twoNodesShareTheLimit() async throws {
        let permits = FakeClusterPermits()
        let transport = ConcurrencyCountingTransport()
        // Two nodes: two clients, each allowed 2 locally (4 together without the cluster's slots). Spelled
        // differently, the account id still names one account.
        let nodes = [Self.client(transport, permits: permits, account: "1234567_SB1"),
                     Self.client(transport, permits: permits, account: "1234567-sb1")]
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<16 {
                let client = nodes[index % 2]
                group.addTask { try await client.query("SELECT id FROM customer", limit: 10, offset: 0).items.count }
            }
            for try await rows in group { #expect(rows == 1) }
        }
        let counts = transport.counts.withLock { $0 }
        #expect(counts.requests == 16)
        #expect(counts.maxInFlight <= 2, "the account saw \(counts.maxInFlight) requests at once")
        #expect(permits.heldCount == 0, "every slot was given back")
        let asked = permits.state.withLock { $0.asked }
        #expect(asked.allSatisfy { $0.name == "netsuite:1234567_SB1" && $0.capacity == 2 })
        #expect(asked.allSatisfy { $0.ttl == .seconds(60) + NetSuiteClient.permitTTLMargin })
        #expect(nodes[0].permitTTL > nodes[0].options.timeout)
    }

    @Test("Without permits the client takes no cluster slot (tests, poll-once)")
    func noPermitsIsLocalOnly() async throws {
        let transport = ConcurrencyCountingTransport()
        let page = try await Self.client(transport, permits: nil).query("SELECT id FROM customer", limit: 10, offset: 0)
        #expect(page.items.count == 1 && transport.counts.withLock { $0.requests } == 1)
    }

    @Test("A request that fails gives its slot back")
    func releasedOnError() async throws {
        let permits = FakeClusterPermits()
        let client = Self.client(ConcurrencyCountingTransport(status: 403), permits: permits)
        await #expect(throws: ProviderError.self) {
            _ = try await client.query("SELECT id FROM customer", limit: 10, offset: 0)
        }
        #expect(permits.heldCount == 0)
        #expect(permits.state.withLock { $0.releases } == 1)
    }

    @Test("A request cancelled in flight gives its slot back")
    func releasedOnCancellation() async throws {
        let permits = FakeClusterPermits()
        let transport = ConcurrencyCountingTransport(delay: nil)
        let client = Self.client(transport, permits: permits)
        let task = Task { try await client.query("SELECT id FROM customer", limit: 10, offset: 0) }
        #expect(await Wait.until(timeout: .seconds(10)) { transport.counts.withLock { $0.inFlight } == 1 })
        #expect(permits.heldCount == 1)
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        #expect(permits.heldCount == 0)
    }

    @Test("A request waiting for a slot stops waiting when cancelled, and never sends")
    func cancelledWhileWaiting() async throws {
        let permits = FakeClusterPermits(full: true)
        let transport = ConcurrencyCountingTransport()
        let client = Self.client(transport, permits: permits)
        let task = Task { try await client.query("SELECT id FROM customer", limit: 10, offset: 0) }
        #expect(await Wait.until(timeout: .seconds(10)) { permits.refusals >= 3 }, "it keeps asking while all are taken")
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        let refusals = permits.refusals
        try await Task.sleep(for: .milliseconds(50))
        #expect(permits.refusals == refusals, "no more asks after cancellation")
        #expect(transport.counts.withLock { $0.requests } == 0)
        #expect(permits.heldCount == 0)
    }

    @Test("A failing permits backend fails the request as a transport error; nothing is sent")
    func backendFailure() async throws {
        struct Broken: ClusterPermits {
            struct Down: Error {}
            func acquire(name: String, capacity: Int, ttl: Duration) async throws -> Int? { throw Down() }
            func release(name: String, slot: Int) async {}
        }
        let transport = ConcurrencyCountingTransport()
        do {
            _ = try await Self.client(transport, permits: Broken()).query("SELECT id FROM customer", limit: 10, offset: 0)
            Issue.record("expected a transport error")
        } catch ProviderError.transport(let message) {
            #expect(message.contains("netsuite:1234567_SB1"))
        }
        #expect(transport.counts.withLock { $0.requests } == 0)
    }

    @Test("PermitBackoff waits stay within their bounds")
    func backoffBounds() {
        let low = PermitBackoff(random: { 0 })
        let high = PermitBackoff(random: { 0.999_999 })
        #expect(low.nextWait() == .milliseconds(50))
        #expect(high.nextWait() <= .milliseconds(250) && high.nextWait() > .milliseconds(249))
        let odd = PermitBackoff(minimum: .milliseconds(30), maximum: .milliseconds(10), random: { 5 })
        #expect(odd.nextWait() == .milliseconds(30), "maximum below minimum is the minimum; random is clamped")
    }
}
