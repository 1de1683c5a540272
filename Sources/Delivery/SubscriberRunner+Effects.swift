// The subscriber-wide consequences of an attempt (docs/DESIGN.md §5): the failure clock, pause after `pause_after`,
// resume on the first success, 410 disable, Retry-After pause — written to the store so `status` and the CLI see
// them. Split from SubscriberRunner.swift, which holds the loop and the attempt itself.
import Foundation
import Core
import Store
import Logging
import Synchronization

extension SubscriberRunner {
    /// Subscriber-wide consequences of one attempt: the failure clock, pause after `pause_after`, resume on the
    /// first success, 410 disable, Retry-After pause.
    func applySubscriberEffects(_ decision: AttemptDecision, probe: Bool, at: Date) async {
        let store = shared.store
        let id = self.id
        if decision.succeeded {
            let (clearClock, resumed) = state.withLock { st -> (Bool, Bool) in
                if probe { st.probeInFlight = false }
                let clear = st.failingSince != nil
                st.failingSince = nil
                var resumed = false
                if st.storeState == .paused, Dispatcher.isAutoPause(st.reason) {
                    st.storeState = .active
                    st.reason = nil
                    st.nextProbeAt = nil
                    resumed = true
                }
                if clear || resumed { st.generation &+= 1 }
                return (clear, resumed)
            }
            if resumed {
                logger.notice("subscriber answered again; resumed, catching up in order")
                await write { try store.setSubscriberState(id: id, state: .active, reason: nil, at: at) }
                doorbell.ring()
            }
            if clearClock { await write { try store.setSubscriberFailingSince(id: id, nil, at: at) } }
            return
        }

        if let reason = decision.disableReason {
            let changed = state.withLock { st -> Bool in
                if probe { st.probeInFlight = false }
                guard st.storeState != .disabled else { return false }
                st.storeState = .disabled
                st.reason = reason
                st.generation &+= 1
                return true
            }
            if changed {
                logger.warning("subscriber disabled; its deliveries stay pending until `deltahook subscribers resume`",
                               ["REASON": reason])
                await write { try store.setSubscriberState(id: id, state: .disabled, reason: reason, at: at) }
            }
            return
        }

        if let until = decision.pauseSubscriberUntil {
            let extended = state.withLock { st -> Bool in
                guard (st.pausedUntil ?? .distantPast) < until else { return false }
                st.pausedUntil = until
                return true
            }
            if extended {
                logger.notice("receiver asked to wait (Retry-After); subscriber paused until then",
                              ["UNTIL": Timestamps.rfc3339(until)])
            }
        }

        let pauseAfter = options.pauseAfter
        let probeInterval = options.probeInterval
        enum ClockAction { case none, start, pause(since: Date) }
        let action = state.withLock { st -> ClockAction in
            if probe { st.probeInFlight = false }
            guard let since = st.failingSince else {
                st.failingSince = at
                st.generation &+= 1
                return .start
            }
            guard st.storeState == .active, at.timeIntervalSince(since) >= pauseAfter.seconds else { return .none }
            st.storeState = .paused
            st.reason = Dispatcher.autoPauseReason(since: since, pauseAfter: pauseAfter, probeInterval: probeInterval)
            st.nextProbeAt = at.addingTimeInterval(probeInterval.seconds)
            st.generation &+= 1
            return .pause(since: since)
        }
        switch action {
        case .none: break
        case .start:
            await write { try store.setSubscriberFailingSince(id: id, at, at: at) }
        case .pause(let since):
            let reason = Dispatcher.autoPauseReason(since: since, pauseAfter: pauseAfter, probeInterval: probeInterval)
            logger.warning("subscriber failing for pause_after; paused, events keep accumulating and a probe resumes it",
                           ["REASON": reason])
            await write { try store.setSubscriberState(id: id, state: .paused, reason: reason, at: at) }
        }
    }

    func write(_ body: @escaping @Sendable () throws -> Void) async {
        do {
            try await shared.store.perform { _ in try body() }
        } catch {
            logger.error("recording subscriber state failed", error: error)
        }
    }
}
