// The push-hint gate (docs/DESIGN.md §2 rule 23) without HTTP or wall-clock time: signatures of each style,
// the refusal statuses, and the debounce/coalescing rule under a flood, driven by a manual clock.
import Config
import Core
import Crypto
@testable import Daemon
import Engine
import Foundation
import HTTPServer
import Logging
import Synchronization
import Testing

private let githubSecret = "gh-hint-secret-0123456789abcdef"
private let standardSecret = "whsec_" + Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }).base64EncodedString()
private let bearerSecret = "bearer-hint-token-0123456789"

/// Virtual time for the gate.
private final class ManualHintClock: HintClock, Sendable {
    private let time = Mutex(Duration.zero)
    var now: Duration { time.withLock { $0 } }
    func advance(_ by: Duration) { time.withLock { $0 += by } }
}

/// The polls a gate asked for, with the virtual time of each.
private final class PollLog: Sendable {
    let entries = Mutex<[(key: JobKey, at: Duration)]>([])
}

/// A gate over three connections (one per style), one without hints, and the polls it asked for.
private final class GateFixture: Sendable {
    let clock = ManualHintClock()
    let metrics = MetricsRegistry()
    let log = PollLog()
    let gate: HintGate

    init(debounce: Duration = .seconds(1), maxPerMinute: Int = 600) {
        func hints(_ secret: String, _ style: HintStyle) -> ConnectionHints {
            ConnectionHints(secret: Secret(unredactedValue: secret, reference: .environment("X")), style: style)
        }
        let connections: [String: HintGate.Connection] = [
            "gh": .init(objects: ["issues", "pulls"], hints: hints(githubSecret, .github)),
            "sw": .init(objects: ["incident"], hints: hints(standardSecret, .standard)),
            "bb": .init(objects: ["orders"], hints: hints(bearerSecret, .bearer)),
            "quiet": .init(objects: ["things"], hints: nil),
        ]
        let clock = self.clock
        let log = self.log
        gate = HintGate(settings: .init(debounce: debounce, maxPerMinute: maxPerMinute, connections: connections),
                        clock: clock, armsTimers: false, metrics: metrics,
                        logger: Logger(level: .debug, sink: MemoryLogSink())) { key in
            log.entries.withLock { $0.append((key, clock.now)) }
        }
    }

    var polls: [(key: JobKey, at: Duration)] { log.entries.withLock { $0 } }
    var pollCount: Int { log.entries.withLock { $0.count } }

    func post(_ path: String, body: [UInt8] = Array(#"{"action":"edited"}"#.utf8),
              headers: [(name: String, value: String)]) -> Int {
        gate.answer(HTTPServerRequest(method: "POST", target: path, path: path, rawQuery: "", query: [],
                                      headers: HTTPServerHeaders(headers), body: body)).status
    }

    func github(_ path: String = "/hooks/gh", body: [UInt8] = Array(#"{"action":"edited"}"#.utf8),
                secret: String = githubSecret, event: String = "issues") -> Int {
        let signature = "sha256=" + HMAC.sha256(key: Array(secret.utf8), message: body).hexString
        return post(path, body: body, headers: [("X-Hub-Signature-256", signature), ("X-GitHub-Event", event),
                                                ("X-GitHub-Delivery", UUID().uuidString)])
    }

    func standard(_ path: String = "/hooks/sw", body: [UInt8] = Array("{}".utf8), secret: String = standardSecret,
                  timestamp: Int64 = Int64(Date().timeIntervalSince1970)) throws -> Int {
        let key = try StandardWebhooks.Secret(secret)
        let id = "msg_" + UUID().uuidString
        let signature = StandardWebhooks.signature(id: id, timestamp: timestamp, body: body, secret: key)
        return post(path, body: body, headers: [("webhook-id", id), ("webhook-timestamp", String(timestamp)),
                                                ("webhook-signature", signature)])
    }
}

@Suite("Push hint gate")
struct HintGateTests {
    @Test("a valid GitHub-style hint polls the named object at once; a wrong or missing signature gets 401, never a poll")
    func githubStyle() {
        let f = GateFixture()
        #expect(f.github(secret: "not-the-secret-0123456789") == 401)
        #expect(f.post("/hooks/gh", headers: []) == 401)
        #expect(f.post("/hooks/gh", headers: [("X-Hub-Signature-256", "sha256=00")]) == 401)
        #expect(f.pollCount == 0)
        #expect(f.github("/hooks/gh/issues") == 202)
        #expect(f.polls.map(\.key) == [JobKey(connection: "gh", object: "issues")])
        #expect(f.metrics.value(HintGate.receivedMetric, labels: ["gh", "unauthorized"]) == 3)
        #expect(f.metrics.value(HintGate.pollsMetric, labels: ["gh", "issues"]) == 1)
    }

    @Test("a hint without an object polls every object of the connection; GitHub's ping polls nothing")
    func wholeConnectionAndPing() {
        let f = GateFixture()
        #expect(f.github(event: "ping") == 200)
        #expect(f.pollCount == 0)
        #expect(f.github() == 202)
        #expect(Set(f.polls.map(\.key.object)) == ["issues", "pulls"])
    }

    @Test("Standard Webhooks style: valid polls; wrong secret, stale timestamp or missing headers get 401")
    func standardStyle() throws {
        let f = GateFixture()
        let other = "whsec_" + Data((0..<32).map { UInt8($0) }).base64EncodedString()
        #expect(try f.standard(secret: other) == 401)
        #expect(try f.standard(timestamp: Int64(Date().timeIntervalSince1970) - 3600) == 401)
        #expect(f.post("/hooks/sw", headers: []) == 401)
        // A GitHub-style signature is not accepted on a standard-style connection.
        #expect(f.github("/hooks/sw", secret: standardSecret) == 401)
        #expect(f.pollCount == 0)
        #expect(try f.standard("/hooks/sw/incident") == 202)
        #expect(f.pollCount == 1)
    }

    @Test("bearer style: the exact token polls; another token, another scheme or none get 401")
    func bearerStyle() {
        let f = GateFixture()
        #expect(f.post("/hooks/bb", headers: [("Authorization", "Bearer " + bearerSecret + "x")]) == 401)
        #expect(f.post("/hooks/bb", headers: [("Authorization", "Basic " + bearerSecret)]) == 401)
        #expect(f.post("/hooks/bb", headers: []) == 401)
        #expect(f.pollCount == 0)
        #expect(f.post("/hooks/bb", headers: [("Authorization", "Bearer " + bearerSecret)]) == 202)
        #expect(f.pollCount == 1)
    }

    @Test("unknown connection, a connection without hints, an unknown object, a bad path: 404; GET: 405; over 1 MiB: 413")
    func refusals() {
        let f = GateFixture()
        #expect(f.github("/hooks/nope") == 404)
        #expect(f.github("/hooks/quiet") == 404)
        #expect(f.github("/hooks/gh/nope") == 404)
        #expect(f.github("/hooks/gh/issues/extra") == 404)
        #expect(f.github("/hooks/") == 404)
        #expect(f.gate.answer(HTTPServerRequest(method: "GET", target: "/hooks/gh", path: "/hooks/gh", rawQuery: "",
                                                query: [], headers: .init(), body: [])).status == 405)
        #expect(f.github(body: [UInt8](repeating: 0x20, count: HintGate.maxBodyBytes + 1)) == 413)
        #expect(f.pollCount == 0)
        // Unknown connections share one label value, so a scan of paths cannot grow the metric.
        #expect(f.metrics.value(HintGate.receivedMetric, labels: ["", "unknown"]) == 5)
    }

    @Test("more than max_per_minute valid hints get 429; the bucket refills with time")
    func rateLimit() {
        let f = GateFixture(maxPerMinute: 5)
        for _ in 0..<5 { #expect(f.github() == 202) }
        #expect(f.github() == 429)
        #expect(f.metrics.value(HintGate.receivedMetric, labels: ["gh", "rate_limited"]) == 1)
        f.clock.advance(.seconds(12)) // one token back
        #expect(f.github() == 202)
        #expect(f.github() == 429)
    }

    @Test("debounce: a lone hint polls at once; hints inside the window coalesce into one poll at its end")
    func debounceWindow() {
        let f = GateFixture(debounce: .seconds(1))
        #expect(f.github("/hooks/gh/issues") == 202)
        #expect(f.pollCount == 1)
        f.clock.advance(.milliseconds(100))
        #expect(f.github("/hooks/gh/issues") == 202)
        f.clock.advance(.milliseconds(400))
        #expect(f.github("/hooks/gh/issues") == 202)
        f.gate.fireDue()
        #expect(f.pollCount == 1)
        f.clock.advance(.milliseconds(499)) // 0.999 s
        f.gate.fireDue()
        #expect(f.pollCount == 1)
        f.clock.advance(.milliseconds(1))
        f.gate.fireDue()
        #expect(f.polls.map(\.at) == [.zero, .seconds(1)])
        #expect(f.metrics.value(HintGate.receivedMetric, labels: ["gh", "coalesced"]) == 2)
        // Quiet for a window: the next hint polls at once again.
        f.clock.advance(.seconds(5))
        #expect(f.github("/hooks/gh/issues") == 202)
        #expect(f.pollCount == 3)
    }

    @Test("a flood of 10,000 valid hints in 10 s starts at most one poll per object per debounce window")
    func flood() {
        let window = Duration.seconds(1)
        let f = GateFixture(debounce: window, maxPerMinute: 1_000_000)
        // One hint every millisecond, alternating between the whole connection and one object; the timer fires
        // whenever the clock passes a scheduled poll.
        for i in 0..<10_000 {
            #expect(f.github(i % 2 == 0 ? "/hooks/gh" : "/hooks/gh/issues") == 202)
            f.clock.advance(.milliseconds(1))
            f.gate.fireDue()
        }
        f.clock.advance(window)
        f.gate.fireDue()
        let polls = f.polls
        for object in ["issues", "pulls"] {
            let times = polls.filter { $0.key.object == object }.map(\.at)
            // 10 s of hints plus the trailing poll: at most 11 polls, each at least a window after the last.
            #expect(times.count <= 11 && times.count >= 10, "\(object): \(times.count) polls")
            for (a, b) in zip(times, times.dropFirst()) { #expect(b - a >= window) }
            // The last hint (at 9.999 s) is followed by a poll that starts after it.
            #expect((times.last ?? .zero) >= .milliseconds(9_999))
        }
    }

    @Test("reload replaces secrets and styles for the next hint")
    func reload() {
        let f = GateFixture()
        let rotated = "rotated-gh-secret-0123456789abc"
        f.gate.update(.init(debounce: .seconds(1), maxPerMinute: 600, connections: [
            "gh": .init(objects: ["issues"], hints: ConnectionHints(
                secret: Secret(unredactedValue: rotated, reference: .environment("X")), style: .github)),
        ]))
        #expect(f.github() == 401)
        #expect(f.github(secret: rotated) == 202)
        #expect(f.github("/hooks/sw") == 404)
        #expect(f.polls.map(\.key) == [JobKey(connection: "gh", object: "issues")])
    }
}
