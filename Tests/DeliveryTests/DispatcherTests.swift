// The dispatcher end to end: real store (temp SQLite), real libcurl client, the verifying receiver emulator on
// 127.0.0.1. Schedules are scaled down to milliseconds; assertions are about order and lower bounds, never
// about how fast something happened.
import Foundation
import Testing
import Core
import Crypto
import Store
import HTTPClient
import Emulators
import Logging
import TestSupport
@testable import Delivery

final class Harness: @unchecked Sendable {
    /// Everything the dispatcher logged, at debug level.
    let logs = MemoryLogSink()
    let dir: URL
    let store: StateStore
    let receiver: ReceiverEmulator
    let client: CurlHTTPClient
    let dispatcher: Dispatcher
    let metrics = MetricsRegistry()
    let subscriber = "s1"
    let settings: SubscriberSettings
    private(set) var committed: [ChangeEvent] = []

    struct Setup {
        var schedule: [Duration] = [.zero, .milliseconds(50), .milliseconds(100)]
        var pauseAfter: Duration = .seconds(3600)
        var probeInterval: Duration = .seconds(1)
        var maxInFlight = 8
        var allowPrivateNetwork = true
        var subscriberSecrets: [String]?
        var receiverSecrets: [String]?
        var url: String?
        var rateLimit: Double?
        var githubSignature = false
        var includeRaw = false
    }

    init(_ setup: Setup = Setup()) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-delivery-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        store = try StateStore(path: dir.appendingPathComponent(StateStore.fileName).path)
        let secret = try StandardWebhooks.generateSecret()
        receiver = try ReceiverEmulator(secrets: setup.receiverSecrets ?? [secret])
        client = try CurlHTTPClient()
        let options = Dispatcher.Options(
            userAgent: "deltahook/test", policy: RetryPolicy(schedule: setup.schedule, jitter: 0),
            pauseAfter: setup.pauseAfter, probeInterval: setup.probeInterval, storePollInterval: .milliseconds(50),
            claimBatch: 64, leaseMargin: .seconds(30))
        dispatcher = Dispatcher(store: store, transport: client, options: options,
                                logger: Logger(level: .debug, sink: logs), metrics: metrics)
        settings = SubscriberSettings(
            id: subscriber, url: try #require(URL(string: setup.url ?? receiver.url)),
            secrets: try (setup.subscriberSecrets ?? [secret]).map { try StandardWebhooks.Secret($0) },
            limits: .init(timeout: .seconds(10), maxInFlight: setup.maxInFlight, rateLimit: setup.rateLimit),
            githubSignature: setup.githubSignature, includeRaw: setup.includeRaw,
            network: .init(allowInsecureHTTP: true, allowPrivateNetwork: setup.allowPrivateNetwork))
        dispatcher.setSubscribers([settings])
    }

    /// Commits events (one page) routed to the subscriber and rings the dispatcher, as the engine does.
    func enqueue(_ events: [ChangeEvent]) throws {
        _ = try store.commitPage(PageCommit(connection: "c", object: "o",
                                            events: events.map { OutgoingEvent(event: $0, subscribers: [subscriber]) },
                                            now: Date()))
        committed += events
        dispatcher.notifyNewEvents()
    }

    func delivery(_ event: ChangeEvent) throws -> Delivery? {
        try store.deliveries(eventID: event.id).first { $0.subscriber == subscriber }
    }

    /// Polls the store every 10 ms until `predicate` holds (bounded; the shared `Wait.until`).
    func waitStore(timeout: Duration = .seconds(20), _ predicate: (StateStore) throws -> Bool) async throws -> Bool {
        try await Wait.until(timeout: timeout, interval: .milliseconds(10)) { try predicate(store) }
    }

    func close() async {
        await dispatcher.shutdown(deadline: .seconds(5))
        client.shutdown()
        receiver.stop()
        try? FileManager.default.removeItem(at: dir)
    }

    /// Event ids accepted by the receiver for `recordID`, in arrival order.
    func acceptedIDs(record recordID: String) -> [String] {
        receiver.accepted.filter { $0.recordID == recordID }.compactMap(\.webhookID)
    }

    func committedIDs(record recordID: String) -> [String] {
        committed.filter { $0.recordID == recordID }.map(\.id)
    }
}

func withHarness(_ setup: Harness.Setup = Harness.Setup(), _ body: (Harness) async throws -> Void) async throws {
    let harness = try Harness(setup)
    do {
        try await body(harness)
    } catch {
        await harness.close()
        throw error
    }
    await harness.close()
}

/// Interleaved events: `perRecord` events for each record, committed round-robin.
func interleaved(records: [String], perRecord: Int) -> [ChangeEvent] {
    var out: [ChangeEvent] = []
    for n in 1...perRecord { for r in records { out.append(sampleEvent(r, n)) } }
    return out
}

@Suite(.serialized) struct DispatcherTests {
    @Test func receiverDownThenUpEveryEventArrivesInPerRecordOrder() async throws {
        var setup = Harness.Setup()
        setup.schedule = [.zero] + Array(repeating: .milliseconds(50), count: 20)
        try await withHarness(setup) { h in
            h.receiver.down(forRequests: 8)
            let records = ["r1", "r2", "r3", "r4"]
            try h.enqueue(interleaved(records: records, perRecord: 5))
            let done = await h.receiver.waitUntil(timeout: .seconds(20)) { $0.filter(\.accepted).count >= 20 }
            #expect(done)
            for r in records {
                #expect(h.acceptedIDs(record: r) == h.committedIDs(record: r), "record \(r) out of order")
            }
            #expect(h.receiver.received.allSatisfy { $0.verified })
            #expect(try await h.waitStore { try $0.backlog(subscriber: "s1").pending == 0 })
            #expect(try h.store.deliveries(subscriber: "s1", state: .delivered, limit: 100).count == 20)
            #expect(h.metrics.value("deltahook_deliveries_total", labels: ["s1", "delivered"]) == 20)
            #expect(h.metrics.value("deltahook_deliveries_total", labels: ["s1", "retry"]) == 8)
            #expect(h.metrics.render().contains("deltahook_delivery_enqueue_to_send_seconds_count{subscriber=\"s1\"} 20"))
            // Keep-alive: far fewer connections than requests.
            #expect(h.receiver.acceptedConnections < h.receiver.receivedCount)
            let first = try #require(h.receiver.accepted.first)
            #expect(first.header("user-agent") == "deltahook/test")
            #expect(first.header("content-type") == "application/json")
        }
    }

    @Test func aFailingRecordDoesNotDelayOthers() async throws {
        var setup = Harness.Setup()
        setup.schedule = [.zero, .seconds(60)]
        try await withHarness(setup) { h in
            h.receiver.always(record: "bad", .status(500, body: "boom"))
            let bad = [sampleEvent("bad", 1), sampleEvent("bad", 2)]
            let good = (1...6).map { sampleEvent("good\($0)", 1) }
            try h.enqueue([bad[0], bad[1]] + good)
            let done = await h.receiver.waitUntil(timeout: .seconds(20)) { received in
                Set(received.filter(\.accepted).compactMap(\.recordID)).count == 6
            }
            #expect(done)
            #expect(try await h.waitStore { _ in try h.delivery(bad[0])?.attempts == 1 })
            // Give the loop a few polls in which it could wrongly send the record's second event.
            try await Task.sleep(for: .milliseconds(200))
            let badRequests = h.receiver.received.filter { $0.recordID == "bad" }
            #expect(badRequests.count == 1)
            #expect(badRequests.allSatisfy { $0.webhookID == bad[0].id }, "the second event of a failing record must wait")
            let head = try #require(try h.delivery(bad[0]))
            #expect(head.state == .pending)
            #expect(try h.delivery(bad[1])?.attempts == 0)
        }
    }

    @Test func attemptsFollowTheScheduleThenFail() async throws {
        try await withHarness { h in
            h.receiver.always(record: "x", .status(500, body: "nope"))
            let event = sampleEvent("x", 1)
            try h.enqueue([event])
            #expect(try await h.waitStore { _ in try h.delivery(event)?.state == .failed })
            let delivery = try #require(try h.delivery(event))
            #expect(delivery.attempts == 3)
            let attempts = try h.store.attempts(deliveryID: delivery.id).reversed().map { $0 }
            #expect(attempts.count == 3)
            #expect(attempts.allSatisfy { $0.httpStatus == 500 && $0.responseExcerpt == "nope" })
            #expect(attempts.last?.error?.contains("exhausted") == true)
            let gaps = zip(attempts.dropFirst(), attempts).map { $0.attemptedAt.timeIntervalSince($1.attemptedAt) }
            #expect(gaps[0] >= 0.049)
            #expect(gaps[1] >= 0.099)
            // Every attempt re-signed, same webhook-id.
            let requests = h.receiver.received
            #expect(requests.count == 3)
            #expect(Set(requests.compactMap(\.webhookID)) == [event.id])
            #expect(requests.allSatisfy { $0.verified })
            // Issue 12 item 4: one debug line per attempt, with status, latency and attempt number.
            let lines = h.logs.records.filter { $0.message == "delivery attempt" }
            #expect(lines.count == 3 && lines.allSatisfy { $0.level == .debug })
            let numbers = lines.compactMap { line in line.fields.first { $0.field == "ATTEMPT" }?.value }
            #expect(numbers == ["1", "2", "3"])
            #expect(lines.allSatisfy { line in
                line.fields.contains { $0.field == "STATUS" && $0.value == "500" }
                    && line.fields.contains { $0.field == "SUBSCRIBER" } && line.fields.contains { $0.field == "LATENCY_MS" }
            })
        }
    }

    @Test func goneDisablesTheSubscriberAndKeepsDeliveriesPendingUntilResumed() async throws {
        var setup = Harness.Setup()
        setup.maxInFlight = 1
        try await withHarness(setup) { h in
            h.receiver.setDefault(.gone)
            let events = (1...3).map { sampleEvent("g\($0)", 1) }
            try h.enqueue(events)
            #expect(try await h.waitStore { try $0.subscriber(id: "s1")?.state == .disabled })
            #expect(try h.store.subscriber(id: "s1")?.reason?.contains("410") == true)
            let countAfterDisable = h.receiver.receivedCount
            #expect(try events.allSatisfy { try h.delivery($0)?.state == .pending })

            // The operator resumes (what `deltahook subscribers resume` writes); the loop notices by polling.
            h.receiver.setDefault(.ok)
            try h.store.setSubscriberState(id: "s1", state: .active, reason: nil, at: Date())
            try h.store.setSubscriberFailingSince(id: "s1", nil, at: Date())
            #expect(try await h.waitStore { _ in try events.allSatisfy { try h.delivery($0)?.state == .delivered } })
            // Nothing was sent while disabled: after the resume, exactly one request per event went out (an attempt
            // during the disabled spell, however many store polls it lasted, would show as an extra request).
            #expect(h.receiver.receivedCount == countAfterDisable + events.count,
                    "\(h.receiver.receivedCount) requests, \(countAfterDisable) before the resume")
        }
    }

    @Test func retryAfterPausesTheWholeSubscriberForThatLong() async throws {
        var setup = Harness.Setup()
        setup.maxInFlight = 1
        try await withHarness(setup) { h in
            h.receiver.enqueue([.retryAfter(seconds: 1)])
            let events = (1...3).map { sampleEvent("ra\($0)", 1) }
            try h.enqueue(events)
            let done = await h.receiver.waitUntil(timeout: .seconds(20)) { $0.filter(\.accepted).count == 3 }
            #expect(done)
            let received = h.receiver.received
            let throttled = try #require(received.first)
            #expect(throttled.answeredStatus == 429)
            for later in received.dropFirst() {
                #expect(later.receivedAt.timeIntervalSince(throttled.receivedAt) >= 0.99,
                        "nothing may be sent to the subscriber during Retry-After")
            }
            let throttledEvent = try #require(events.first { $0.id == throttled.webhookID })
            let first = try #require(try h.delivery(throttledEvent))
            let attempts = try h.store.attempts(deliveryID: first.id)
            #expect(attempts.contains { $0.httpStatus == 429 && $0.error?.contains("Retry-After") == true })
        }
    }

    @Test func redirectIsAFailureAndIsNotFollowed() async throws {
        let target = try ReceiverEmulator(secrets: [try StandardWebhooks.generateSecret()])
        defer { target.stop() }
        var setup = Harness.Setup()
        setup.schedule = [.zero]
        try await withHarness(setup) { h in
            h.receiver.setDefault(.redirect(to: target.url))
            let event = sampleEvent("moved", 1)
            try h.enqueue([event])
            #expect(try await h.waitStore { _ in try h.delivery(event)?.state == .failed })
            let delivery = try #require(try h.delivery(event))
            let attempt = try #require(try h.store.attempts(deliveryID: delivery.id).first)
            #expect(attempt.httpStatus == 302)
            #expect(attempt.error?.contains("not followed") == true)
            #expect(target.receivedCount == 0)
        }
    }

    @Test func ssrfRefusalsAreRecordedAsFailedAttemptsAndFollowTheSchedule() async throws {
        var setup = Harness.Setup()
        setup.allowPrivateNetwork = false
        setup.schedule = [.zero, .milliseconds(50)]
        try await withHarness(setup) { h in
            let event = sampleEvent("ssrf", 1)
            try h.enqueue([event])
            #expect(try await h.waitStore { _ in try h.delivery(event)?.state == .failed })
            let delivery = try #require(try h.delivery(event))
            let attempts = try h.store.attempts(deliveryID: delivery.id)
            #expect(attempts.count == 2)
            #expect(attempts.allSatisfy { $0.httpStatus == nil && $0.error?.contains("loopback") == true })
            #expect(h.receiver.receivedCount == 0)
        }
    }

    @Test func pausedSubscriberIsProbedAndCatchesUpInOrder() async throws {
        var setup = Harness.Setup()
        setup.schedule = [.zero] + Array(repeating: .milliseconds(40), count: 200)
        setup.pauseAfter = .milliseconds(150)
        setup.probeInterval = .milliseconds(150)
        try await withHarness(setup) { h in
            h.receiver.setDefault(.status(503, body: "maintenance"))
            try h.enqueue(interleaved(records: ["p1", "p2"], perRecord: 3))
            #expect(try await h.waitStore { try $0.subscriber(id: "s1")?.state == .paused })
            let status = try #require(try h.store.subscriber(id: "s1"))
            #expect(status.reason?.hasPrefix(Dispatcher.autoPauseReasonPrefix) == true)
            #expect(status.failingSince != nil)
            // While paused: only probes, one at a time, spaced by the probe interval. (Requests already in
            // flight when the pause began land first: let them.)
            try await Task.sleep(for: .milliseconds(100))
            let before = h.receiver.receivedCount
            try await Task.sleep(for: .milliseconds(400))
            let during = h.receiver.received.dropFirst(before)
            #expect(during.count <= 4)
            let probeTimes = during.map(\.receivedAt)
            // Probes are 150 ms apart when sent; arrival times can bunch by a few ms on a loaded machine. Anything
            // well above the 40 ms retry spacing proves these are probes, not the retry schedule.
            for (a, b) in zip(probeTimes, probeTimes.dropFirst()) { #expect(b.timeIntervalSince(a) >= 0.1) }

            h.receiver.setDefault(.ok)
            let caughtUp = await h.receiver.waitUntil(timeout: .seconds(20)) { $0.filter(\.accepted).count == 6 }
            #expect(caughtUp)
            #expect(h.acceptedIDs(record: "p1") == h.committedIDs(record: "p1"))
            #expect(h.acceptedIDs(record: "p2") == h.committedIDs(record: "p2"))
            #expect(try await h.waitStore { try $0.subscriber(id: "s1")?.state == .active })
            #expect(try await h.waitStore { try $0.subscriber(id: "s1")?.failingSince == nil })
        }
    }

    @Test func shutdownWaitsForRequestsInFlight() async throws {
        let h = try Harness()
        h.receiver.setDefault(ReceiverReply.ok.delayed(.milliseconds(300)))
        let events = (1...4).map { sampleEvent("d\($0)", 1) }
        try h.enqueue(events)
        _ = await h.receiver.waitUntil(timeout: .seconds(10)) { $0.count == 4 }
        await h.dispatcher.shutdown(deadline: .seconds(10))
        #expect(try events.allSatisfy { try h.delivery($0)?.state == .delivered })
        await h.close()
    }

    @Test func shutdownDeadlineCancelsAndLosesNothing() async throws {
        let h = try Harness()
        h.receiver.setDefault(ReceiverReply.ok.delayed(.seconds(5)))
        let events = (1...3).map { sampleEvent("k\($0)", 1) }
        try h.enqueue(events)
        let arrived = await h.receiver.waitUntil(timeout: .seconds(10)) { $0.count == 3 }
        #expect(arrived)
        await h.dispatcher.shutdown(deadline: .milliseconds(100))
        for event in events {
            let delivery = try #require(try h.delivery(event))
            #expect(delivery.state == .pending)
            #expect(delivery.attempts == 0)
        }
        // Once the lease ends they are due again (after a restart the next daemon claims them).
        let later = Date().addingTimeInterval(3600)
        let due = try h.store.dueDeliveries(subscriber: "s1", now: later).map(\.event.id)
        #expect(Set(due) == Set(events.map(\.id)))
        await h.close()
    }

    @Test func redeliverFromTheCLIIsNoticedAndKeepsTheWebhookID() async throws {
        try await withHarness { h in
            let event = sampleEvent("again", 1)
            try h.enqueue([event])
            #expect(try await h.waitStore { _ in try h.delivery(event)?.state == .delivered })
            // What `deltahook redeliver` does from another process: only the store changes, nothing rings.
            _ = try h.store.redeliver(eventID: event.id, now: Date())
            let twice = await h.receiver.waitUntil(timeout: .seconds(10)) { $0.filter(\.accepted).count == 2 }
            #expect(twice)
            #expect(h.receiver.accepted.map(\.webhookID) == [event.id, event.id])
        }
    }

    @Test func rotationSignsWithBothSecretsAndAReceiverWithEitherVerifies() async throws {
        let old = try StandardWebhooks.generateSecret()
        let new = try StandardWebhooks.generateSecret()
        for receiverSecret in [old, new] {
            var setup = Harness.Setup()
            setup.subscriberSecrets = [new, old]
            setup.receiverSecrets = [receiverSecret]
            try await withHarness(setup) { h in
                try h.enqueue([sampleEvent("rot", 1)])
                let ok = await h.receiver.waitUntil(timeout: .seconds(10)) { $0.count == 1 }
                #expect(ok)
                let request = try #require(h.receiver.received.first)
                #expect(request.verified, "\(request.verificationError ?? "")")
                #expect(request.header("webhook-signature")?.split(separator: " ").count == 2)
            }
        }
    }

    @Test func droppedConnectionsAreRetriedAndGitHubStyleSignatureVerifies() async throws {
        var setup = Harness.Setup()
        setup.githubSignature = true
        setup.includeRaw = true
        try await withHarness(setup) { h in
            h.receiver.enqueue([.drop, .reset])
            let event = sampleEvent("flaky", 1)
            try h.enqueue([event])
            #expect(try await h.waitStore { _ in try h.delivery(event)?.state == .delivered })
            let delivery = try #require(try h.delivery(event))
            let attempts = try h.store.attempts(deliveryID: delivery.id).reversed().map { $0 }
            #expect(attempts.count == 3)
            #expect(attempts.prefix(2).allSatisfy { $0.httpStatus == nil && $0.error?.isEmpty == false })
            let accepted = try #require(h.receiver.accepted.last)
            #expect(accepted.hubSignatureValid == true)
            let body = try JSONValue.parse(accepted.body)
            #expect(body["data"]?["raw"]?["sys_id"]?.stringValue == "flaky")
            #expect(accepted.eventID == event.id)
            #expect(accepted.type == "ticket.updated")
        }
    }

    @Test func rateLimitPacesRequests() async throws {
        var setup = Harness.Setup()
        setup.rateLimit = 10  // burst of 10, then one every 100 ms
        try await withHarness(setup) { h in
            try h.enqueue((1...14).map { sampleEvent("rl\($0)", 1) })
            let done = await h.receiver.waitUntil(timeout: .seconds(20)) { $0.filter(\.accepted).count == 14 }
            #expect(done)
            let times = h.receiver.received.map(\.receivedAt).sorted()
            let first = try #require(times.first)
            let last = try #require(times.last)
            #expect(last.timeIntervalSince(first) >= 0.35, "4 requests beyond the burst need ≥ 400 ms of tokens")
        }
    }

    @Test func subscribersCanBeAddedAndRemovedAtRuntime() async throws {
        try await withHarness { h in
            h.dispatcher.setSubscribers([])
            #expect(h.dispatcher.subscriberIDs.isEmpty)
            let event = sampleEvent("late", 1)
            try h.enqueue([event])
            h.dispatcher.notifyNewEvents()
            #expect(try h.delivery(event)?.state == .pending)
            h.dispatcher.setSubscribers([h.settings])
            #expect(h.dispatcher.subscriberIDs == ["s1"])
            #expect(try await h.waitStore { _ in try h.delivery(event)?.state == .delivered })
            // Delivered by its first attempt, the only request: nothing was tried while no subscriber ran.
            #expect(try h.delivery(event)?.attempts == 1)
            #expect(h.receiver.receivedCount == 1)
        }
    }
}
