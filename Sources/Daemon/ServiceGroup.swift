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

/// Fires once; everyone waiting sees it. The reason is kept for the log.
public final class ShutdownTrigger: Sendable {
    private let bell = Doorbell()
    private let why = Mutex<String?>(nil)

    public init() {}

    /// Starts graceful shutdown. Later calls keep the first reason.
    public func fire(reason: String) {
        why.withLock { if $0 == nil { $0 = reason } }
        bell.close()
    }

    public var isFired: Bool { bell.isClosed }
    public var reason: String? { why.withLock { $0 } }

    /// Returns once fired (or when the task is cancelled).
    public func wait() async { await bell.wait() }
}

/// Why the group stopped, for the exit code.
public struct ServiceGroupOutcome: Sendable {
    /// Services that threw, with their error text (secret-free: errors never carry secrets).
    public var failures: [(service: String, error: String)]
    /// True when the shutdown deadline passed and remaining services were cancelled.
    public var deadlineExceeded: Bool
}

public enum ServiceGroup {
    private enum ChildResult: Sendable {
        case serviceExited(index: Int, error: String?)
        case shutdownDone(deadlineExceeded: Bool)
    }

    /// Runs `services` (in order) until `trigger` fires or any service returns or throws, then shuts them down in
    /// reverse order within `shutdownTimeout`, cancelling what is left after it.
    public static func run(_ services: [any Service], trigger: ShutdownTrigger, shutdownTimeout: Duration,
                           logger: Logger) async -> ServiceGroupOutcome
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
                let deadline = ContinuousClock.now.advanced(by: shutdownTimeout)
                for index in services.indices.reversed() {
                    await services[index].shutdown(deadline: deadline)
                    let remaining = ContinuousClock.now.duration(to: deadline)
                    if !(await finished[index].wait(upTo: max(remaining, .zero))) {
                        return .shutdownDone(deadlineExceeded: true)
                    }
                }
                return .shutdownDone(deadlineExceeded: false)
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
                case .shutdownDone(let exceeded):
                    if exceeded {
                        deadlineExceeded = true
                        logger.warning("shutdown deadline passed; cancelling remaining work",
                                       ["TIMEOUT": DurationText.format(shutdownTimeout)])
                        group.cancelAll()
                    }
                }
            }
        }
        return ServiceGroupOutcome(failures: failures, deadlineExceeded: deadlineExceeded)
    }
}
