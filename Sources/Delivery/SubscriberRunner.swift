// One subscriber's delivery loop: claim → (rate limit, in-flight bound) → sign → SSRF check → POST → policy →
// result to the batched writer. Also the subscriber-wide states: Retry-After pause (in memory), 410 disable,
// pause after failing for `pause_after` with a periodic probe, and what the operator set with the CLI.
public import Foundation
import Core
import Store
import HTTPClient
import Logging
import Synchronization

extension Dispatcher {
    /// Reasons of automatic pauses start with this, so the loop can tell them from an operator's pause (which
    /// is never probed: the operator resumes it).
    public static let autoPauseReasonPrefix = "failing since "

    /// The reason stored when a subscriber is paused for failing continuously since `since`.
    public static func autoPauseReason(since: Date, pauseAfter: Duration, probeInterval: Duration) -> String {
        autoPauseReasonPrefix + Timestamps.rfc3339(since) + " (pause_after \(DurationText.format(pauseAfter))); "
            + "probing every \(DurationText.format(probeInterval))"
    }

    static func isAutoPause(_ reason: String?) -> Bool { reason?.hasPrefix(autoPauseReasonPrefix) ?? false }
}

final class SubscriberRunner: Sendable {
    struct State {
        var settings: SubscriberSettings
        var semaphore: AsyncSemaphore
        /// `rate_limit` as this node's share of it (``TokenBucket``).
        var bucket: TokenBucket?
        /// Alive nodes sharing the subscriber's `rate_limit` (docs/DESIGN.md §2 rule 21).
        var clusterSize: Int
        /// Claimed and not yet recorded: never claimed twice, even if a lease runs out.
        var held: Set<Int64> = []
        var stopping = false
        /// Retry-After: nothing is sent before this instant.
        var pausedUntil: Date?
        var storeState: SubscriberState = .active
        var reason: String?
        var failingSince: Date?
        /// Bumped by every local state change, so a store read that raced with it is not applied.
        var generation: UInt64 = 0
        var nextRefresh: ContinuousClock.Instant = .now
        var nextProbeAt: Date?
        var probeInFlight = false
    }

    let id: String
    let doorbell = Doorbell()
    let shared: Shared
    let logger: Logger
    let state: Mutex<State>
    private let task = Mutex<Task<Void, Never>?>(nil)
    private let done = Atomic<Bool>(false)

    init(settings: SubscriberSettings, shared: Shared, clusterSize: Int = 1) {
        id = settings.id
        self.shared = shared
        logger = shared.logger.with([.subscriber: settings.id])
        let nodes = max(1, clusterSize)
        state = Mutex(State(settings: settings, semaphore: AsyncSemaphore(value: settings.maxInFlight),
                            bucket: settings.rateLimit.map { TokenBucket(rate: $0, nodes: nodes) },
                            clusterSize: nodes))
    }

    func start() {
        task.withLock { $0 = Task { await self.run() } }
    }

    func update(_ settings: SubscriberSettings) {
        state.withLock { s in
            if settings.maxInFlight != s.settings.maxInFlight {
                s.semaphore = AsyncSemaphore(value: settings.maxInFlight)
            }
            if settings.rateLimit != s.settings.rateLimit {
                s.bucket = settings.rateLimit.map { [nodes = s.clusterSize] in TokenBucket(rate: $0, nodes: nodes) }
            }
            s.settings = settings
        }
        doorbell.ring()
    }

    /// The number of alive nodes changed: the rate limit's share of this node follows at once.
    func setClusterSize(_ nodes: Int, now: ContinuousClock.Instant = .now) {
        state.withLock { s in
            s.clusterSize = max(1, nodes)
            s.bucket?.setNodes(nodes, now: now)
        }
    }

    /// This node's bucket (tests).
    var bucket: TokenBucket? { state.withLock { $0.bucket } }

    /// Stop claiming; requests in flight finish.
    func stop() {
        state.withLock { $0.stopping = true }
        doorbell.close()
    }

    /// Cancel requests still in flight (their deliveries keep the lease and become due again).
    func cancel() { task.withLock { $0 }?.cancel() }

    /// True once the loop and every request it started have ended.
    var isDone: Bool { done.load(ordering: .acquiring) }

    /// Called by the writer once these deliveries' results are durable.
    func released(_ ids: [Int64]) {
        state.withLock { s in for id in ids { s.held.remove(id) } }
        doorbell.ring()
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }
    var options: Dispatcher.Options { shared.options }

    // MARK: - The loop

    private func run() async {
        logger.info("delivery loop started")
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled, !isStopping {
                await refreshIfDue()
                let now = Date()
                let s = state.withLock { $0 }
                let poll = options.storePollInterval
                switch s.storeState {
                case .disabled:
                    await doorbell.wait(upTo: poll)
                case .paused where !Dispatcher.isAutoPause(s.reason):
                    await doorbell.wait(upTo: poll)
                case .paused:
                    if s.probeInFlight {
                        await doorbell.wait(upTo: poll)
                    } else if let at = s.nextProbeAt, at > now {
                        await doorbell.wait(upTo: min(poll, Self.duration(from: now, to: at)))
                    } else if let probe = await claim(limit: 1, now: now, settings: s.settings).first {
                        state.withLock { st in
                            st.probeInFlight = true
                            st.nextProbeAt = now.addingTimeInterval(options.probeInterval.seconds)
                        }
                        logger.info("probing paused subscriber", [.eventID: probe.event.id])
                        group.addTask { await self.deliver(probe, probe: true) }
                    } else {
                        await doorbell.wait(upTo: poll)
                    }
                case .active:
                    if let until = s.pausedUntil, until > now {
                        await doorbell.wait(upTo: min(poll, Self.duration(from: now, to: until)))
                        continue
                    }
                    await claimAndSend(now: now, state: s, group: &group)
                }
            }
        }
        logger.info("delivery loop stopped")
        done.store(true, ordering: .releasing)
    }

    private func claimAndSend(now: Date, state s: State, group: inout DiscardingTaskGroup) async {
        let poll = options.storePollInterval
        // Claim in sizeable batches (one write transaction each), not one slot at a time, but never hold much
        // more than a few rounds of `max_in_flight`: claimed deliveries wait in memory, new events behind them.
        var batch = min(options.claimBatch, max(32, s.settings.maxInFlight * 8))
        // A rate-limited subscriber holds at most ~5 s of this node's share of its rate, well inside the lease.
        if let rate = s.bucket?.rate { batch = min(batch, max(1, Int(rate * 5))) }
        let maxHeld = s.settings.maxInFlight + batch
        let room = maxHeld - s.held.count
        if room <= 0 || (s.held.count >= s.settings.maxInFlight && room < batch / 4) {
            await doorbell.wait(upTo: poll)
            return
        }
        guard !isStopping else { return }
        let claimed = await claim(limit: min(room, batch), now: now, settings: s.settings)
        if claimed.isEmpty {
            let next = try? await shared.store.perform { [id] in try $0.nextDueAt(subscriber: id) }
            let wait = next.flatMap { $0 }.map { Self.duration(from: Date(), to: $0) } ?? poll
            // Due now but not claimable = held by us (in flight): the writer rings when they are recorded.
            await doorbell.wait(upTo: max(.milliseconds(1), min(poll, wait)))
            return
        }
        // Every claimed delivery gets its task at once and waits for an in-flight permit there, so the loop is
        // free to claim the next batch while this one is being sent (no gap while a claim transaction runs).
        for (index, item) in claimed.enumerated() {
            let (semaphore, stopping) = state.withLock { st in (st.semaphore, st.stopping) }
            if stopping || Task.isCancelled {
                await abandon(claimed[index...].map(\.delivery.id))
                return
            }
            group.addTask {
                do { try await semaphore.acquire() } catch {
                    await self.abandon([item.delivery.id])
                    return
                }
                let wait = self.state.withLock { $0.bucket?.reserve() ?? .zero }
                if wait > .zero {
                    do { try await Task.sleep(for: wait) } catch {
                        semaphore.release()
                        await self.abandon([item.delivery.id])
                        return
                    }
                }
                await self.deliver(item, probe: false)
                semaphore.release()
            }
        }
    }

    /// Claims due head deliveries with a lease; returns only those not already held.
    private func claim(limit: Int, now: Date, settings: SubscriberSettings) async -> [DueDelivery] {
        let lease = now.addingTimeInterval((settings.timeout + options.leaseMargin).seconds)
        // What is still in flight goes with the claim: a redeliver/replay may have made one of those rows (or an
        // older event of its record) due again, and it must wait for the attempt in flight (one head per record).
        let inFlight = state.withLock { $0.held }
        do {
            let items = try await shared.store.perform { [id] in
                try $0.claimDueDeliveries(subscriber: id, now: now, leaseUntil: lease, limit: limit,
                                          inFlight: inFlight)
            }
            return state.withLock { st in items.filter { st.held.insert($0.delivery.id).inserted } }
        } catch {
            logger.error("claiming due deliveries failed; retrying at the next poll", error: error)
            return []
        }
    }

    /// Claimed but not sent, or cancelled in flight (shutdown, removal): forget them and end their lease now so
    /// they are due again at once (if this write does not happen, the lease still ends on its own).
    private func abandon(_ ids: [Int64]) async {
        guard !ids.isEmpty else { return }
        state.withLock { st in for id in ids { st.held.remove(id) } }
        let now = Date()
        do {
            try await shared.store.perform { try $0.releaseLeases(ids, now: now) }
        } catch {
            logger.warning("releasing leases failed; the deliveries become due when their lease ends", error: error)
        }
    }

    private func refreshIfDue() async {
        let (due, generation) = state.withLock { ($0.nextRefresh <= .now, $0.generation) }
        guard due else { return }
        let stored: SubscriberStatus?
        do {
            stored = try await shared.store.perform { [id] in try $0.subscriber(id: id) }
        } catch {
            logger.error("reading subscriber state failed", error: error)
            state.withLock { $0.nextRefresh = .now + options.storePollInterval }
            return
        }
        let poll = options.storePollInterval
        let change = state.withLock { st -> (from: SubscriberState, to: SubscriberState)? in
            st.nextRefresh = .now + poll
            guard st.generation == generation else { return nil }
            let newState = stored?.state ?? .active
            let old = st.storeState
            if newState == .paused, old != .paused { st.nextProbeAt = nil }
            st.storeState = newState
            st.reason = stored?.reason
            st.failingSince = stored?.failingSince
            return old == newState ? nil : (old, newState)
        }
        if let change {
            logger.notice("subscriber state changed in the store",
                          ["FROM": change.from.rawValue, "TO": change.to.rawValue])
        }
    }

    static func duration(from: Date, to: Date) -> Duration {
        .milliseconds(max(0, Timestamps.saturatingInt64((to.timeIntervalSince(from) * 1000).rounded(.up))))
    }

    // MARK: - One attempt

    private func deliver(_ item: DueDelivery, probe: Bool) async {
        // A Retry-After pause that began after this delivery was claimed holds it back too.
        while let until = state.withLock({ $0.pausedUntil }), until > Date(), !probe {
            if isStopping || Task.isCancelled { await abandon([item.delivery.id]); return }
            try? await Task.sleep(for: min(.milliseconds(250), Self.duration(from: Date(), to: until)))
        }
        // Disabled (410), paused or stopping since this was claimed: give it back instead of sending.
        let (settings, blocked) = state.withLock { st in
            (st.settings, st.stopping || (!probe && st.storeState != .active))
        }
        if blocked {
            await abandon([item.delivery.id])
            return
        }
        let started = Date()
        if item.delivery.attempts == 0 {
            shared.metrics?.observe("deltahook_delivery_enqueue_to_send_seconds",
                                    max(0, started.timeIntervalSince(item.delivery.createdAt)), labels: [id])
        }
        let observation: AttemptObservation
        var status: Int?
        var excerpt: String?
        do {
            let target = try await shared.guardian.vet(url: settings.url, allowInsecureHTTP: settings.allowInsecureHTTP,
                                                       allowPrivateNetwork: settings.allowPrivateNetwork)
            let body = WebhookSigner.body(for: item.event, includeRaw: settings.includeRaw)
            let headers = try WebhookSigner.headers(
                eventID: item.event.id, body: body, timestamp: Timestamps.unixSeconds(started),
                secrets: settings.secrets, githubSignature: settings.githubSignature, userAgent: options.userAgent)
            let request = HTTPRequest(
                method: "POST", url: settings.url.absoluteString, headers: headers, body: body,
                timeout: settings.timeout,
                options: HTTPRequestOptions(connectTimeout: min(settings.timeout, .seconds(10)),
                                            maxResponseBytes: 64 << 20, captureLimit: options.responseCaptureLimit,
                                            caFile: settings.caFile, pinnedAddress: target.address.description,
                                            acceptCompressed: false))
            let response = try await shared.transport.send(request)
            status = response.status
            excerpt = response.body.isEmpty ? nil : response.bodyText
            observation = .response(status: response.status, retryAfter: response.headers["retry-after"],
                                    location: response.headers["location"])
        } catch let refusal as SSRFRefusal {
            observation = .refused(reason: refusal.reason)
        } catch is CancellationError {
            await abandon([item.delivery.id])
            return
        } catch let error as HTTPClientError {
            if error.kind == .shutdown { await abandon([item.delivery.id]); return }
            observation = .transportError(reason: error.description)
        } catch {
            observation = .transportError(reason: String(describing: error))
        }
        let finishedAt = Date()
        var decision = options.policy.decide(observation, attemptsMade: item.delivery.attempts + 1, now: finishedAt,
                                             random: options.random())
        if probe, !decision.succeeded, decision.disableReason == nil {
            // While paused the schedule is suspended: the probe delivery waits for the next probe.
            decision.outcome = .retry(at: finishedAt.addingTimeInterval(options.probeInterval.seconds))
            decision.pauseSubscriberUntil = nil
        }
        await applySubscriberEffects(decision, probe: probe, at: finishedAt)
        let latency = Timestamps.saturatingInt64((finishedAt.timeIntervalSince(started) * 1000).rounded())
        shared.metrics?.observe("deltahook_delivery_request_seconds", finishedAt.timeIntervalSince(started),
                                labels: [id])
        // A receiver may echo the signature or its URL's secret path; a curl error names the URL: both pass the
        // process's scrubber before they are stored (docs/DESIGN.md §1).
        let scrubber = shared.logger.scrubber
        shared.writer.submit(AttemptResult(deliveryID: item.delivery.id, attemptedAt: started, httpStatus: status,
                                           latencyMilliseconds: latency, responseExcerpt: excerpt.map(scrubber.scrub),
                                           error: decision.error.map(scrubber.scrub), outcome: decision.outcome,
                                           leaseToken: item.delivery.leaseToken), from: self)
        let outcome: String
        switch decision.outcome {
        case .delivered: outcome = "delivered"
        case .retry: outcome = "retry"
        case .failed: outcome = "failed"
        }
        shared.metrics?.increment("deltahook_deliveries_total", labels: [id, outcome])
        // One debug line per attempt (docs/DESIGN.md §8): what an operator at `log_level: debug` wants to follow.
        if logger.isEnabled(.debug) {
            logger.debug("delivery attempt", [.eventID: item.event.id, .recordID: item.event.recordID,
                                              "STATUS": status.map(String.init) ?? "none",
                                              "LATENCY_MS": String(latency), "ATTEMPT": String(item.delivery.attempts + 1),
                                              "OUTCOME": outcome, "PROBE": probe ? "yes" : "no"])
        }
        switch decision.outcome {
        case .delivered: break
        case .retry(let at):
            logger.info("delivery attempt failed; will retry",
                        [.eventID: item.event.id, .recordID: item.event.recordID, "NEXT_ATTEMPT": Timestamps.rfc3339(at),
                         "REASON": decision.error ?? ""])
        case .failed:
            logger.warning("delivery failed after its last attempt; kept and replayable",
                           [.eventID: item.event.id, .recordID: item.event.recordID, "REASON": decision.error ?? ""])
        }
    }
}
