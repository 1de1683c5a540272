// Per-subscriber rate limit (subscriber `rate_limit`, requests per second): a token bucket that reserves
// tokens ahead, so a caller learns how long to wait instead of polling. The limit holds for the cluster
// (docs/DESIGN.md §2 rule 21): with N alive nodes each node's bucket runs at rate/N with burst/N.

import Core

/// A token bucket refilled at `rate` tokens per second up to `burst`. Value type: the owner guards it.
///
/// In a cluster of `nodes` daemons each one delivers to the same subscriber, so each bucket gets a 1/`nodes`
/// share of the configured rate and burst: over any window T the nodes together send at most
/// `burst + rate·T`, the bound of one daemon alone. A share of the burst may be below one token; the reservation
/// math handles that (the first request then waits until a whole token has accrued).
public struct TokenBucket: Sendable {
    /// The configured (cluster-wide) rate and burst.
    public let configuredRate: Double
    public let configuredBurst: Double
    /// How many alive nodes share the configured limit (at least 1).
    public private(set) var nodes: Int
    /// This node's share: `configuredRate / nodes` tokens per second up to `configuredBurst / nodes`.
    public private(set) var rate: Double
    public private(set) var burst: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant

    /// `burst` defaults to one second's worth (at least 1), so a fresh bucket allows a short burst. `nodes` 1 (the
    /// default) is the bucket of a daemon alone.
    public init(rate: Double, burst: Double? = nil, nodes: Int = 1, now: ContinuousClock.Instant = .now) {
        configuredRate = max(rate, 0.001)
        configuredBurst = max(1, burst ?? rate)
        self.nodes = max(1, nodes)
        self.rate = configuredRate / Double(self.nodes)
        self.burst = configuredBurst / Double(self.nodes)
        self.tokens = self.burst
        self.last = now
    }

    /// Takes one token and returns how long the caller must wait before using it (zero when one was available).
    /// Tokens may go negative: later callers queue behind earlier reservations, keeping the average rate.
    public mutating func reserve(now: ContinuousClock.Instant = .now) -> Duration {
        refill(now: now)
        tokens -= 1
        guard tokens < 0 else { return .zero }
        return .milliseconds(Timestamps.saturatingInt64((-tokens / rate * 1000).rounded(.up)))
    }

    /// The number of alive nodes changed: from `now` on this bucket runs at its new share. Tokens accrued so far
    /// count at the old rate; what is saved is cut to the new (smaller) burst, and reservations already made
    /// (negative tokens) stay owed, now repaid at the new rate. Values below 1 count as 1.
    public mutating func setNodes(_ count: Int, now: ContinuousClock.Instant = .now) {
        let count = max(1, count)
        guard count != nodes else { return }
        refill(now: now)
        nodes = count
        rate = configuredRate / Double(count)
        burst = configuredBurst / Double(count)
        tokens = min(tokens, burst)
    }

    private mutating func refill(now: ContinuousClock.Instant) {
        let elapsed = (now - last).seconds
        if elapsed > 0 {
            tokens = min(burst, tokens + elapsed * rate)
            last = now
        }
    }
}
