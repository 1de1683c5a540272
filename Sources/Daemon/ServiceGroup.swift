// A cut-down swift-service-lifecycle ServiceGroup (reference A1/A10): every long-running part of the daemon is
// a `Service` run as one child of a single task group; graceful shutdown visits the services in REVERSE start
// order (the dispatcher drains after the engine stopped producing, the store outlives both), waiting for each
// `run()` to return before asking the next, all within one deadline; whatever is left then is cancelled.
import Core
public import Logging
import Synchronization

/// A long-running part of the daemon.
public protocol Service: Sendable {
    /// For logs ("engine", "dispatcher", "metrics").
    var name: String { get }
    /// Runs until asked to shut down (returns) or until it fails (throws). Must also return promptly when the
    /// task is cancelled.
    func run() async throws
    /// Asks `run()` to finish its in-flight work and return, ideally before `deadline`. Called at most once per
    /// shutdown, possibly before `run()` started; must not wait for `run()` itself.
    func shutdown(deadline: ContinuousClock.Instant) async
}

/// Fires once; every waiter (any number of them) wakes. The reason is kept for the log.
public final class ShutdownTrigger: Sendable {
    private struct State {
        var reason: String?
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Starts graceful shutdown. Later calls keep the first reason.
    public func fire(reason: String) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard s.reason == nil else { return [] }
            s.reason = reason
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    public var isFired: Bool { state.withLock { $0.reason != nil } }
    public var reason: String? { state.withLock { $0.reason } }

    /// Returns once fired (or when the task is cancelled).
    public func wait() async {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.reason != nil || Task.isCancelled { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}

/// Why the group stopped, for the exit code.
public struct ServiceGroupOutcome: Sendable {
    /// Services that threw, with their error text (secret-free: errors never carry secrets).
    public var failures: [(service: String, error: String)]
    /// True when the shutdown deadline passed and remaining services were cancelled.
    public var deadlineExceeded: Bool
    /// True when services ignored even cancellation and were left behind (the process should exit now).
    public var abandoned = false
}

public enum ServiceGroup {
    private enum ChildResult: Sendable {
        case serviceExited(index: Int, error: String?)
        case shutdownDone(overdue: String?)
    }

    /// Time a service gets after the drain deadline to return from `run()` once its `shutdown` returned.
    static let windDown: Duration = .seconds(2)

    /// Runs `services` (in order) until `trigger` fires or any service returns or throws, then shuts them down in
    /// reverse order: each is asked (`shutdown(deadline:)`) and awaited before the next, all within
    /// `shutdownTimeout` (plus a short wind-down). Services still running after that are cancelled; if they ignore
    /// cancellation for `cancellationGrace` too, this returns anyway (`abandoned`) so the process can exit before
    /// systemd's TimeoutStopSec= escalates to SIGKILL.
    /// `shutdownTimeout` is read when shutdown starts, so a reloaded `shutdown_timeout` applies.
    public static func run(_ services: [any Service], trigger: ShutdownTrigger,
                           shutdownTimeout: @autoclosure @escaping @Sendable () -> Duration,
                           cancellationGrace: Duration = .seconds(5), logger: Logger) async -> ServiceGroupOutcome
    {
        let first = FirstResult<ServiceGroupOutcome>()
        let group = Task {
            first.resume(await runGroup(services, trigger: trigger, shutdownTimeout: shutdownTimeout, logger: logger))
        }
        let guardian = Task {
            await trigger.wait()
            guard (try? await Task.sleep(for: shutdownTimeout() + windDown + cancellationGrace)) != nil else { return }
            logger.critical("services ignored cancellation; exiting without them")
            first.resume(ServiceGroupOutcome(failures: [("shutdown", "services ignored cancellation")],
                                             deadlineExceeded: true, abandoned: true))
        }
        let outcome = await first.value()
        guardian.cancel()
        if outcome.abandoned { group.cancel() }
        return outcome
    }

    private static func runGroup(_ services: [any Service], trigger: ShutdownTrigger,
                                 shutdownTimeout: @escaping @Sendable () -> Duration, logger: Logger) async
        -> ServiceGroupOutcome
    {
        let finished = services.map { _ in Doorbell() }
        var failures: [(service: String, error: String)] = []
        var deadlineExceeded = false
        await withTaskGroup(of: ChildResult.self) { group in
            for (index, service) in services.enumerated() {
                group.addTask {
                    defer { finished[index].close() }
                    do {
                        try await service.run()
                        return .serviceExited(index: index, error: nil)
                    } catch is CancellationError {
                        return .serviceExited(index: index, error: nil)
                    } catch {
                        return .serviceExited(index: index, error: String(describing: error))
                    }
                }
            }
            group.addTask {
                await trigger.wait()
                let deadline = ContinuousClock.now.advanced(by: shutdownTimeout())
                let hard = deadline.advanced(by: windDown)
                for index in services.indices.reversed() {
                    let service = services[index]
                    // Asked from its own task, so a shutdown that hangs cannot hold the deadline hostage.
                    let asked = Doorbell()
                    let request = Task {
                        await service.shutdown(deadline: deadline)
                        asked.close()
                    }
                    var returned = await asked.wait(upTo: max(.zero, ContinuousClock.now.duration(to: hard)))
                    if returned {
                        returned = await finished[index].wait(upTo: max(.zero, ContinuousClock.now.duration(to: hard)))
                    }
                    if !returned {
                        request.cancel()
                        return .shutdownDone(overdue: service.name)
                    }
                }
                return .shutdownDone(overdue: nil)
            }
            while let result = await group.next() {
                switch result {
                case .serviceExited(let index, let error):
                    let name = services[index].name
                    if let error {
                        failures.append((name, error))
                        logger.error("service failed; shutting down", ["SERVICE": name, "ERROR": error])
                        trigger.fire(reason: "\(name) failed")
                    } else if !trigger.isFired {
                        logger.warning("service stopped on its own; shutting down", ["SERVICE": name])
                        trigger.fire(reason: "\(name) stopped")
                    }
                case .shutdownDone(let overdue):
                    if let overdue {
                        deadlineExceeded = true
                        logger.warning("shutdown deadline passed; cancelling remaining work",
                                       ["SERVICE": overdue, "TIMEOUT": DurationText.format(shutdownTimeout())])
                        group.cancelAll()
                    }
                }
            }
        }
        return ServiceGroupOutcome(failures: failures, deadlineExceeded: deadlineExceeded)
    }
}

/// The first of several racing answers; later ones are dropped. `value()` may be awaited once.
final class FirstResult<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiter: CheckedContinuation<Value, Never>?
    }

    private let state = Mutex(State())

    func resume(_ value: Value) {
        let waiter = state.withLock { s -> CheckedContinuation<Value, Never>? in
            guard s.value == nil else { return nil }
            s.value = value
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: value)
    }

    func value() async -> Value {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { s -> Value? in
                if let value = s.value { return value }
                s.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
