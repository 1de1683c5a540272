// A subscriber's `rate_limit` holds for the cluster (docs/DESIGN.md §2 rule 21): with N alive nodes each node's
// bucket runs at rate/N with burst/N, so the nodes together stay within the configured limit. Bucket math on
// explicit instants (no wall clock); each test names what it proves.
import Foundation
import Testing
@testable import Delivery

@Suite struct ClusterRateLimitTests {
    let start = ContinuousClock.now

    /// Sends as fast as `bucket` allows from `start` and counts the sends that happen within `window`.
    func greedySends(_ bucket: inout TokenBucket, window: Duration) -> Int {
        var now = start
        var sent = 0
        while true {
            let sendAt = now + bucket.reserve(now: now)
            if sendAt > start + window { return sent }
            sent += 1
            now = sendAt
        }
    }

    @Test("One node is today's bucket exactly: the same waits for the same calls")
    func oneNodeUnchanged() {
        for (rate, burst) in [(10.0, 2.0), (0.5, nil), (3.0, nil), (250.0, 40.0)] as [(Double, Double?)] {
            var plain = TokenBucket(rate: rate, burst: burst, now: start)
            var clustered = TokenBucket(rate: rate, burst: burst, nodes: 1, now: start)
            clustered.setNodes(1, now: start + .milliseconds(5))
            #expect(clustered.rate == plain.rate && clustered.burst == plain.burst)
            for step in [0, 0, 0, 10, 10, 300, 1000, 1000, 2500] {
                let now = start + .milliseconds(step)
                #expect(plain.reserve(now: now) == clustered.reserve(now: now), "rate \(rate) at +\(step) ms")
            }
        }
    }

    @Test("N nodes: each bucket runs at rate/N with burst/N")
    func shareOfRateAndBurst() {
        var bucket = TokenBucket(rate: 10, burst: 2, nodes: 2, now: start)
        #expect(bucket.rate == 5 && bucket.burst == 1 && bucket.configuredRate == 10 && bucket.nodes == 2)
        #expect(bucket.reserve(now: start) == .zero)
        #expect(bucket.reserve(now: start) == .milliseconds(200))
        #expect(bucket.reserve(now: start) == .milliseconds(400))
        // A share of the burst below one token: the first request waits until a whole token accrued.
        var thin = TokenBucket(rate: 1, nodes: 4, now: start)
        #expect(thin.burst == 0.25)
        #expect(thin.reserve(now: start) == .seconds(3))
    }

    @Test("The nodes together never send more than one daemon alone: burst + rate·T in any window T")
    func clusterStaysWithinTheLimit() {
        let window = Duration.seconds(10)
        for nodes in 1...5 {
            for (rate, burst) in [(10.0, 10.0), (3.0, 1.0), (0.7, 1.0)] {
                var total = 0
                for _ in 0..<nodes {
                    var bucket = TokenBucket(rate: rate, burst: burst, nodes: nodes, now: start)
                    total += greedySends(&bucket, window: window)
                }
                let bound = burst + rate * window.seconds
                #expect(Double(total) <= bound, "\(nodes) nodes at \(rate)/s sent \(total) > \(bound)")
                // And the limit is used, not starved: each node loses less than one request to rounding.
                #expect(Double(total) > bound - Double(nodes) - 1, "\(nodes) nodes at \(rate)/s sent only \(total)")
            }
        }
    }

    @Test("Rescaling: tokens accrued count at the old rate, savings are cut to the new burst, debts stay owed")
    func rescale() {
        var bucket = TokenBucket(rate: 10, burst: 10, now: start)
        for _ in 0..<10 { #expect(bucket.reserve(now: start) == .zero) }
        // One second later the bucket refilled at 10/s (10 tokens); a second node joins: cut to the new burst 5.
        let t1 = start + .seconds(1)
        bucket.setNodes(2, now: t1)
        #expect(bucket.rate == 5 && bucket.burst == 5 && bucket.nodes == 2)
        for _ in 0..<5 { #expect(bucket.reserve(now: t1) == .zero) }
        #expect(bucket.reserve(now: t1) == .milliseconds(200))
        // The other node leaves: one token is owed (-1), repaid at 10/s; the next request waits for two tokens.
        bucket.setNodes(1, now: t1)
        #expect(bucket.rate == 10 && bucket.burst == 10)
        #expect(bucket.reserve(now: t1) == .milliseconds(200))
        // Later it refills up to the full burst of a daemon alone.
        let t2 = t1 + .seconds(5)
        for _ in 0..<10 { #expect(bucket.reserve(now: t2) == .zero) }
        #expect(bucket.reserve(now: t2) > .zero)
    }

    @Test("A cluster size below 1 counts as 1; an unchanged size changes nothing")
    func degenerateSizes() {
        var bucket = TokenBucket(rate: 4, nodes: 0, now: start)
        #expect(bucket.nodes == 1 && bucket.rate == 4)
        bucket.setNodes(-3, now: start)
        #expect(bucket.nodes == 1 && bucket.rate == 4)
        _ = bucket.reserve(now: start)
        let before = bucket
        bucket.setNodes(1, now: start + .seconds(1))
        var unchanged = before
        #expect(bucket.reserve(now: start + .seconds(1)) == unchanged.reserve(now: start + .seconds(1)))
    }

    @Test("The dispatcher rescales every subscriber's bucket when the cluster size changes, and new ones start scaled")
    func dispatcherPropagates() async throws {
        var setup = Harness.Setup()
        setup.rateLimit = 6
        let h = try Harness(setup)
        #expect(h.dispatcher.currentClusterSize == 1)
        #expect(h.dispatcher.runner(h.subscriber)?.bucket?.rate == 6)
        h.dispatcher.setClusterSize(3)
        #expect(h.dispatcher.currentClusterSize == 3)
        #expect(h.dispatcher.runner(h.subscriber)?.bucket?.rate == 2)
        // A subscriber added, and a rate limit changed by a reload, start at the cluster's share.
        var other = h.settings
        other.id = "s2"
        other.rateLimit = 30
        var changed = h.settings
        changed.rateLimit = 9
        h.dispatcher.setSubscribers([changed, other])
        #expect(h.dispatcher.runner("s2")?.bucket?.rate == 10)
        #expect(h.dispatcher.runner(h.subscriber)?.bucket?.rate == 3)
        // Back to a daemon alone: the configured rates.
        h.dispatcher.setClusterSize(0)
        #expect(h.dispatcher.currentClusterSize == 1)
        #expect(h.dispatcher.runner("s2")?.bucket?.rate == 30)
        #expect(h.dispatcher.runner(h.subscriber)?.bucket?.rate == 9)
        await h.close()
    }
}
