// Push hints (docs/DESIGN.md §2 rule 23, §6 `hints`): `POST /hooks/{connection}[/{object}]` tells the daemon that
// a provider changed something, and the daemon polls sooner. The poll stays the only source of truth: the body is
// read only to check its signature and is never parsed as data. So a forged, replayed or flooded hint can at worst
// cost one extra poll per object per debounce window — and an unauthenticated one costs nothing.
//
// Order of checks, each with its status: method (405), path and connection/object (404 — also for a connection
// without `hints`, so the listener does not say which connections exist), body size (413; the HTTP server already
// refuses a larger body while reading it), signature (401), per-connection rate (429), then the debouncer (202).
//
// Authentication per connection `hints.style`:
//   github   `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, the key being the secret's UTF-8
//            text (GitHub Docs, "Validating webhook deliveries":
//            https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries). `X-GitHub-Event:
//            ping` (sent when the hook is created) is answered 200 without a poll.
//   standard Standard Webhooks `webhook-id` / `webhook-timestamp` (±5 min) / `webhook-signature` (Crypto's verifier).
//   bearer   `Authorization: Bearer <secret>`, compared as SHA-256 digests in constant time (no length leak).
import Config
import Core
import Crypto
import Engine
import Foundation
import HTTPServer
import Logging
import Synchronization

/// Time for the gate: a monotonic "now" as an offset from an arbitrary origin. Injected so tests can drive the
/// debounce windows without sleeping.
protocol HintClock: Sendable {
    var now: Duration { get }
}

struct SystemHintClock: HintClock {
    private let origin = ContinuousClock.now
    var now: Duration { ContinuousClock.now - origin }
}

/// The debounce and coalescing rule, as a value with no I/O (tested with virtual time).
///
/// Per object: a hint when no hinted poll started within the last window starts one at once (the leading edge:
/// a lone change is polled without waiting). A hint inside the window schedules one poll at the window's end
/// (`lastFired + window`), and every later hint until then coalesces into it. So polls of one object are always at
/// least `window` apart, and every accepted hint is followed by a poll that starts after it arrived — the change
/// it announces is seen. A poll still running when the next one is due gets one follow-up (the scheduler's
/// doorbell coalesces rings).
struct HintDebouncer {
    enum Offer: Equatable {
        /// Poll now.
        case fire
        /// A poll is scheduled at this time; the caller arms a timer and calls `due(at:)` then.
        case scheduled(at: Duration)
        /// Folded into the poll already scheduled.
        case coalesced
    }

    private struct Slot {
        var lastFired: Duration?
        var pending: Duration?
    }

    var window: Duration
    private var slots: [JobKey: Slot] = [:]

    init(window: Duration) { self.window = window }

    mutating func offer(_ key: JobKey, at now: Duration) -> Offer {
        var slot = slots[key] ?? Slot()
        defer { slots[key] = slot }
        if slot.pending != nil { return .coalesced }
        if let last = slot.lastFired, now < last + window {
            slot.pending = last + window
            return .scheduled(at: last + window)
        }
        slot.lastFired = now
        return .fire
    }

    /// The scheduled polls due at `now`, marked as fired.
    mutating func due(at now: Duration) -> [JobKey] {
        var fired: [JobKey] = []
        for (key, slot) in slots {
            guard let pending = slot.pending, pending <= now else { continue }
            slots[key] = Slot(lastFired: now, pending: nil)
            fired.append(key)
        }
        return fired.sorted { ($0.connection, $0.object) < ($1.connection, $1.object) }
    }

    /// The earliest scheduled poll, if any.
    var nextDue: Duration? { slots.values.compactMap(\.pending).min() }

    /// Forgets objects no longer configured (reload).
    mutating func retain(_ keys: Set<JobKey>) { slots = slots.filter { keys.contains($0.key) } }
}

/// A token bucket per connection over the gate's clock: `perMinute` hints a minute, bursting up to `perMinute`.
struct HintRateLimiter {
    private struct Bucket {
        var tokens: Double
        var at: Duration
    }

    var perMinute: Int
    private var buckets: [String: Bucket] = [:]

    init(perMinute: Int) { self.perMinute = perMinute }

    mutating func take(_ connection: String, at now: Duration) -> Bool {
        let capacity = Double(perMinute)
        var bucket = buckets[connection] ?? Bucket(tokens: capacity, at: now)
        let elapsed = max(0, Double((now - bucket.at).components.seconds)
                          + Double((now - bucket.at).components.attoseconds) / 1e18)
        bucket.tokens = min(capacity, bucket.tokens + elapsed * capacity / 60)
        bucket.at = now
        defer { buckets[connection] = bucket }
        guard bucket.tokens >= 1 else { return false }
        bucket.tokens -= 1
        return true
    }

    mutating func retain(_ connections: Set<String>) { buckets = buckets.filter { connections.contains($0.key) } }
}

/// Authenticates, rate-limits and debounces hints, and triggers polls through `trigger`.
final class HintGate: Sendable {
    /// The largest hint body read (the 1 MiB); the HTTP server enforces it while reading.
    static let maxBodyBytes = 1 << 20
    static let receivedMetric = "deltahook_hints_received_total"
    static let pollsMetric = "deltahook_hint_polls_total"

    /// What the gate knows of one connection.
    struct Connection: Sendable {
        var objects: [String]
        var hints: ConnectionHints?
    }

    struct Settings: Sendable {
        var debounce: Duration
        var maxPerMinute: Int
        var connections: [String: Connection]

        init(debounce: Duration, maxPerMinute: Int, connections: [String: Connection]) {
            self.debounce = debounce
            self.maxPerMinute = maxPerMinute
            self.connections = connections
        }

        init(_ config: DeltahookConfig) {
            var connections: [String: Connection] = [:]
            for connection in config.connections {
                connections[connection.id] = Connection(objects: connection.objects.map(\.name), hints: connection.hints)
            }
            self.init(debounce: config.hints.debounce, maxPerMinute: config.hints.maxPerMinute,
                      connections: connections)
        }
    }

    private struct State {
        var settings: Settings
        var debouncer: HintDebouncer
        var limiter: HintRateLimiter
        /// The one timer task for scheduled polls, and the time it sleeps until.
        var timer: Task<Void, Never>?
        var timerDue: Duration?
        var stopped = false
        /// Rejections since the last warning, per connection ("" for unknown ones), and when it was logged.
        var rejected: [String: Int] = [:]
        var lastRejectWarning: Duration?
    }

    private let state: Mutex<State>
    private let clock: any HintClock
    private let armsTimers: Bool
    private let trigger: @Sendable (JobKey) -> Void
    private let metrics: MetricsRegistry?
    private let logger: Logger

    /// - Parameters:
    ///   - armsTimers: false in tests, which call ``fireDue()`` themselves after moving the clock.
    ///   - trigger: starts a poll of one object (`Pipeline.triggerPoll`).
    init(settings: Settings, clock: any HintClock = SystemHintClock(), armsTimers: Bool = true,
         metrics: MetricsRegistry?, logger: Logger, trigger: @escaping @Sendable (JobKey) -> Void) {
        state = Mutex(State(settings: settings, debouncer: HintDebouncer(window: settings.debounce),
                            limiter: HintRateLimiter(perMinute: settings.maxPerMinute)))
        self.clock = clock
        self.armsTimers = armsTimers
        self.trigger = trigger
        self.metrics = metrics
        self.logger = logger
        metrics?.declare(Self.receivedMetric, kind: .counter,
                         help: "Push hints received, by outcome (accepted, coalesced, ping, unauthorized, unknown, rate_limited).",
                         labels: ["connection", "outcome"])
        metrics?.declare(Self.pollsMetric, kind: .counter, help: "Polls started by push hints.",
                         labels: ["connection", "object"])
    }

    /// SIGHUP: new secrets, styles, objects, window and rate apply to the next hint. Scheduled polls stay.
    func update(_ settings: Settings) {
        state.withLock { s in
            s.settings = settings
            s.debouncer.window = settings.debounce
            s.limiter.perMinute = settings.maxPerMinute
            var keys = Set<JobKey>()
            for (id, connection) in settings.connections {
                for object in connection.objects { keys.insert(JobKey(connection: id, object: object)) }
            }
            s.debouncer.retain(keys)
            s.limiter.retain(Set(settings.connections.keys))
        }
    }

    /// Cancels the timer; later hints are refused with 503.
    func stop() {
        let timer = state.withLock { s -> Task<Void, Never>? in
            s.stopped = true
            defer { s.timer = nil }
            return s.timer
        }
        timer?.cancel()
    }

    // MARK: - Requests

    /// True for the paths the gate answers, so a shared listener can route to it.
    static func handles(_ path: String) -> Bool { path == "/hooks" || path.hasPrefix("/hooks/") }

    func answer(_ request: HTTPServerRequest) -> HTTPServerResponse {
        // The path: /hooks/{connection} or /hooks/{connection}/{object}.
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst(2)
        guard (1...2).contains(parts.count), let id = parts.first.map(String.init), !id.isEmpty,
              parts.count == 1 || !(parts.last?.isEmpty ?? true)
        else {
            return reject("", outcome: "unknown", status: 404, "no such hook; POST /hooks/{connection}[/{object}]\n")
        }
        let object = parts.count == 2 ? parts.last.map(String.init) : nil
        guard request.method == "POST" else {
            return HTTPServerResponse(status: 405, headers: [("Allow", "POST")], body: Array("use POST\n".utf8))
        }
        let (connection, stopped) = state.withLock { ($0.settings.connections[id], $0.stopped) }
        guard !stopped else { return .text("shutting down\n", status: 503) }
        // Unknown connection, a connection without hints, and an unknown object all look alike (no enumeration);
        // the label is "" so an attacker's path cannot grow the metric's series.
        guard let connection, let hints = connection.hints, object.map(connection.objects.contains) ?? true else {
            return reject("", outcome: "unknown", status: 404, "no such hook\n")
        }
        guard request.body.count <= Self.maxBodyBytes else {
            return reject(id, outcome: "too_large", status: 413, "hint body larger than 1 MiB\n")
        }
        guard Self.authenticate(request, hints: hints) else {
            return reject(id, outcome: "unauthorized", status: 401, "signature does not verify\n")
        }
        if hints.style == .github, request.headers["X-GitHub-Event"]?.lowercased() == "ping" {
            count(id, "ping")
            return .text("pong\n")
        }
        let objects = object.map { [$0] } ?? connection.objects
        let now = clock.now
        let (allowed, offers) = state.withLock { s -> (Bool, [(JobKey, HintDebouncer.Offer)]) in
            guard s.limiter.take(id, at: now) else { return (false, []) }
            let offers = objects.map { name -> (JobKey, HintDebouncer.Offer) in
                let key = JobKey(connection: id, object: name)
                return (key, s.debouncer.offer(key, at: now))
            }
            return (true, offers)
        }
        guard allowed else {
            return reject(id, outcome: "rate_limited", status: 429, "more than hints.max_per_minute hints\n",
                          headers: [("Retry-After", "1")])
        }
        var fired = 0
        for (key, offer) in offers {
            switch offer {
            case .fire:
                fire(key)
                fired += 1
            case .scheduled(let at):
                armTimer(at)
                logger.debug("hint deferred to the end of the debounce window", [.connection: key.connection,
                                                                                  .object: key.object])
            case .coalesced:
                logger.debug("hint coalesced into a scheduled poll", [.connection: key.connection, .object: key.object])
            }
        }
        count(id, fired > 0 ? "accepted" : "coalesced")
        return .text(fired > 0 ? "accepted; polling\n" : "accepted; coalesced into a scheduled poll\n", status: 202)
    }

    /// Runs the scheduled polls that are due (the timer's job; tests call it after moving the clock).
    func fireDue() {
        let keys = state.withLock { s -> [JobKey] in
            guard !s.stopped else { return [] }
            return s.debouncer.due(at: clock.now)
        }
        for key in keys { fire(key) }
    }

    private func fire(_ key: JobKey) {
        metrics?.increment(Self.pollsMetric, labels: [key.connection, key.object])
        logger.info("push hint triggered a poll", [.connection: key.connection, .object: key.object])
        trigger(key)
    }

    /// One task sleeps until the earliest scheduled poll, fires what is due, and re-arms for the next.
    private func armTimer(_ at: Duration) {
        guard armsTimers else { return }
        state.withLock { s in
            guard !s.stopped else { return }
            if let due = s.timerDue, due <= at, s.timer != nil { return }
            s.timer?.cancel()
            s.timerDue = at
            s.timer = Task { [weak self, clock] in
                var next: Duration? = at
                while let wake = next, !Task.isCancelled {
                    try? await Task.sleep(for: max(.zero, wake - clock.now))
                    guard !Task.isCancelled, let self else { return }
                    self.fireDue()
                    next = self.state.withLock { s -> Duration? in
                        s.timerDue = s.debouncer.nextDue
                        if s.timerDue == nil { s.timer = nil }
                        return s.timerDue
                    }
                }
            }
        }
    }

    // MARK: - Authentication

    static func authenticate(_ request: HTTPServerRequest, hints: ConnectionHints) -> Bool {
        let secret = hints.secret.unredactedValue
        switch hints.style {
        case .github:
            guard let header = request.headers["X-Hub-Signature-256"] else { return false }
            let expected = Array(("sha256=" + HMAC.sha256(key: Array(secret.utf8), message: request.body).hexString).utf8)
            let given = Array(header.trimmingCharacters(in: .whitespaces).lowercased().utf8)
            return ConstantTime.equals(Digest.sha256(expected), Digest.sha256(given))
        case .standard:
            guard let key = try? StandardWebhooks.Secret(secret) else { return false }
            var headers: [String: String] = [:]
            for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                if let value = request.headers[name] { headers[name] = value }
            }
            do {
                try StandardWebhooks.verify(headers: headers, body: request.body, secrets: [key])
                return true
            } catch {
                return false
            }
        case .bearer:
            guard let header = request.headers["Authorization"], header.count > 7,
                  header.prefix(7).lowercased() == "bearer " else { return false }
            let token = Array(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)
            return ConstantTime.equals(Digest.sha256(token), Digest.sha256(Array(secret.utf8)))
        }
    }

    // MARK: - Accounting

    private func count(_ connection: String, _ outcome: String) {
        metrics?.increment(Self.receivedMetric, labels: [connection, outcome])
    }

    /// Counts the rejection and logs a warning at most once a minute (a flood must not flood the journal).
    private func reject(_ connection: String, outcome: String, status: Int, _ text: String,
                        headers: [(name: String, value: String)] = []) -> HTTPServerResponse {
        count(connection, outcome)
        let now = clock.now
        let report = state.withLock { s -> [String: Int]? in
            s.rejected[connection, default: 0] += 1
            if let last = s.lastRejectWarning, now - last < .seconds(60) { return nil }
            s.lastRejectWarning = now
            defer { s.rejected = [:] }
            return s.rejected
        }
        if let report {
            for (id, rejected) in report.sorted(by: { $0.key < $1.key }) {
                logger.warning("push hints rejected (logged at most once a minute)", [
                    .connection: id.isEmpty ? "(unknown)" : id, "REJECTED": String(rejected),
                    "LAST_STATUS": String(status),
                ])
            }
        }
        return HTTPServerResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + headers,
                                  body: Array(text.utf8))
    }
}
