// The delivery retry policy (docs/DESIGN.md §5), as a pure function from "what happened to this attempt" to "what the
// delivery and the subscriber become". No I/O, no clock, no randomness of its own: the dispatcher passes `now`
// and a random number, so every branch is unit-tested exactly.
public import Foundation
public import Store
import Core
import HTTPClient

/// What one HTTP attempt produced, as the policy sees it.
public enum AttemptObservation: Sendable, Hashable {
    /// A response arrived. `retryAfter` is the raw `Retry-After` header when present.
    case response(status: Int, retryAfter: String?, location: String?)
    /// No response: timeout, refused connection, TLS failure, dropped connection… (`reason` is secret-free).
    case transportError(reason: String)
    /// The SSRF guard (or the https rule) refused the target before any connection was made.
    case refused(reason: String)
}

/// The policy's verdict for one attempt.
public struct AttemptDecision: Sendable, Hashable {
    /// What the delivery row becomes.
    public var outcome: AttemptResult.Outcome
    /// The error text recorded with the attempt (nil on success).
    public var error: String?
    /// Disable the whole subscriber with this reason (410 Gone).
    public var disableReason: String?
    /// Pause the whole subscriber until this instant (429/503 with Retry-After).
    public var pauseSubscriberUntil: Date?
    /// Whether the attempt counts as a success for the subscriber's failure clock.
    public var succeeded: Bool
}

/// Retry schedule with jitter, status-code semantics and Retry-After handling.
///
/// Sources: Standard Webhooks spec v1.0.0 (2xx success, 3xx failure — redirects are not followed, 410 disables
/// the endpoint, 429/502/504 throttle, Retry-After honoured) and Svix's default schedule (field notes §1.1).
public struct RetryPolicy: Sendable, Hashable {
    /// Delay before attempt *n* (index 0 = first attempt, usually 0 s). Its length is the number of attempts.
    public var schedule: [Duration]
    /// ± fraction applied to each delay (0.2 = uniformly within [0.8×, 1.2×]).
    public var jitter: Double
    /// Cap on a receiver's Retry-After (docs/DESIGN.md §5: 1 h by default).
    public var maxRetryAfter: Duration

    public init(schedule: [Duration] = RetryPolicy.defaultSchedule, jitter: Double = 0.2,
                maxRetryAfter: Duration = .seconds(3600)) {
        self.schedule = schedule.isEmpty ? [.zero] : schedule
        self.jitter = min(max(jitter, 0), 1)
        self.maxRetryAfter = maxRetryAfter
    }

    /// Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (Svix's schedule, docs/DESIGN.md §5).
    public static let defaultSchedule: [Duration] = [
        .zero, .seconds(5), .seconds(300), .seconds(1800), .seconds(7200), .seconds(18_000), .seconds(36_000),
        .seconds(36_000),
    ]

    /// The delay before attempt number `index` (0-based) with jitter; nil when the schedule has no such attempt.
    /// `random` is uniform in [0, 1).
    public func delay(beforeAttempt index: Int, random: Double) -> Duration? {
        guard index >= 0, index < schedule.count else { return nil }
        let base = schedule[index].seconds
        let factor = 1 + jitter * (2 * min(max(random, 0), 1) - 1)
        // Saturating: a configured schedule step near the Duration text limit times the jitter factor must not trap
        // in Int64(Double) (docs/DESIGN.md §2 rule 12).
        return .milliseconds(Timestamps.saturatingInt64((base * factor * 1000).rounded()))
    }

    /// Decides what an attempt means.
    /// - Parameters:
    ///   - attemptsMade: attempts of this delivery *including* the one being judged (1 after the first).
    ///   - random: uniform in [0, 1), for jitter.
    public func decide(_ observation: AttemptObservation, attemptsMade: Int, now: Date, random: Double)
        -> AttemptDecision
    {
        func scheduled(_ error: String) -> AttemptDecision {
            guard let wait = delay(beforeAttempt: attemptsMade, random: random) else {
                return AttemptDecision(outcome: .failed, error: error + " (retry schedule exhausted)",
                                       disableReason: nil, pauseSubscriberUntil: nil, succeeded: false)
            }
            return AttemptDecision(outcome: .retry(at: now.addingTimeInterval(wait.seconds)), error: error,
                                   disableReason: nil, pauseSubscriberUntil: nil, succeeded: false)
        }

        switch observation {
        case .response(let status, let retryAfter, let location):
            switch status {
            case 200..<300:
                return AttemptDecision(outcome: .delivered, error: nil, disableReason: nil, pauseSubscriberUntil: nil,
                                       succeeded: true)
            case 300..<400:
                // A Location can carry userinfo, a token in its query or, for hook services, a secret path: it is
                // shown like a subscriber URL (docs/DESIGN.md §1).
                let target = location.map { " to \(URLRedaction.subscriber($0))" } ?? ""
                return scheduled("HTTP \(status) redirect\(target) not followed (update the subscriber URL)")
            case 410:
                // Kept pending (not failed): nothing is lost, and `subscribers resume` sends it first, in order.
                return AttemptDecision(outcome: .retry(at: now), error: "HTTP 410 Gone: subscriber disabled",
                                       disableReason: "receiver answered 410 Gone", pauseSubscriberUntil: nil,
                                       succeeded: false)
            case 429, 503:
                guard let header = retryAfter, let asked = RetryAfter.parse(header, now: now) else {
                    return scheduled("HTTP \(status)")
                }
                let wait = min(asked, maxRetryAfter)
                let until = now.addingTimeInterval(wait.seconds)
                guard attemptsMade < schedule.count else {
                    return AttemptDecision(outcome: .failed, error: "HTTP \(status) (retry schedule exhausted)",
                                           disableReason: nil, pauseSubscriberUntil: until, succeeded: false)
                }
                return AttemptDecision(
                    outcome: .retry(at: until),
                    error: "HTTP \(status), Retry-After \(DurationText.format(wait)): subscriber paused until then",
                    disableReason: nil, pauseSubscriberUntil: until, succeeded: false)
            default:
                return scheduled("HTTP \(status)")
            }
        case .transportError(let reason):
            return scheduled(reason)
        case .refused(let reason):
            return scheduled(reason)
        }
    }
}
