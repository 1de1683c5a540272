// Per-subscriber rate limit (subscriber `rate_limit`, requests per second): a token bucket that reserves
// tokens ahead, so a caller learns how long to wait instead of polling.

import Core

/// A token bucket refilled at `rate` tokens per second up to `burst`. Value type: the owner guards it.
public struct TokenBucket: Sendable {
    public let rate: Double
    public let burst: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant

    /// `burst` defaults to one second's worth (at least 1), so a fresh bucket allows a short burst.
    public init(rate: Double, burst: Double? = nil, now: ContinuousClock.Instant = .now) {
        self.rate = max(rate, 0.001)
        self.burst = max(1, burst ?? rate)
        self.tokens = self.burst
        self.last = now
    }

    /// Takes one token and returns how long the caller must wait before using it (zero when one was available).
    /// Tokens may go negative: later callers queue behind earlier reservations, keeping the average rate.
    public mutating func reserve(now: ContinuousClock.Instant = .now) -> Duration {
        let elapsed = (now - last).seconds
        if elapsed > 0 {
            tokens = min(burst, tokens + elapsed * rate)
            last = now
        }
        tokens -= 1
        guard tokens < 0 else { return .zero }
        return .milliseconds(Timestamps.saturatingInt64((-tokens / rate * 1000).rounded(.up)))
    }
}
