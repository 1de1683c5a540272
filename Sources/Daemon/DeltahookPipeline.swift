// The real pipeline: provider adapters (ProviderFactory, through Wiring) → Engine (one PollRunner per object,
// routing events to subscribers inside the page commit) → store → Dispatcher (signed POSTs), one curl client.
public import Config
import Core
import Delivery
import Engine
import Foundation
import HTTPClient
import Logging
public import Store
import Synchronization

public final class DeltahookPipeline: Pipeline {
    let engine: Engine
    let dispatcher: Dispatcher
    let transport: CurlHTTPClient
    /// The shared request count of budgeted connections (docs/DESIGN.md §2 rule 22).
    let requestBudget: StoreRequestBudget
    let store: any StateStoring
    let logger: Logger
    let stallEngineLiveness: Bool
    /// What the last successful `apply` built, per connection id (reused for connections a reload left unchanged).
    private let applied = Mutex<[String: AppliedConnection]>([:])
    /// The engine beats every second; three missed beats mean it is stuck.
    static let livenessWindow: Duration = .seconds(3)

    public let services: [any Service]

    init(config: DeltahookConfig, store: any StateStoring, context: PipelineContext) throws {
        self.store = store
        logger = context.logger
        stallEngineLiveness = context.stallEngineLiveness
        transport = try CurlHTTPClient(configuration: .init(userAgent: "deltahook/\(Daemon.version)"))
        dispatcher = Dispatcher(store: store, transport: transport,
                                options: Dispatcher.Options(delivery: config.delivery,
                                                            userAgent: "deltahook/\(Daemon.version)"),
                                logger: context.logger, metrics: context.metrics)
        // A committed page with new events wakes the dispatcher at once (its own store poll, every 2 s, only
        // picks up what the CLI writes from another process).
        let wake = dispatcher
        store.observeCommittedEvents { _ in wake.notifyNewEvents() }
        // One count per connection for every node, in the store (docs/DESIGN.md §2 rule 22).
        requestBudget = StoreRequestBudget(store: store, logger: context.logger)
        var engineOptions = Engine.Options()
        engineOptions.requestBudget = requestBudget
        engineOptions.onCycle = context.cycleObserver
        engine = Engine(store: store, logger: context.logger, metrics: context.metrics,
                        router: Wiring.router(for: config.subscribers), options: engineOptions)
        // Start order: dispatcher, engine — so shutdown (reverse) stops polling before draining deliveries.
        services = [DispatcherService(dispatcher: dispatcher, transport: transport, store: store),
                    EngineService(engine: engine, stallAfterStart: context.stallEngineLiveness, logger: context.logger)]
    }

    /// The `PipelineFactory` of the real binary.
    public static func make(config: DeltahookConfig, store: any StateStoring, context: PipelineContext) async throws
        -> any Pipeline
    {
        let pipeline = try DeltahookPipeline(config: config, store: store, context: context)
        do {
            try await pipeline.apply(config)
        } catch {
            pipeline.transport.shutdown()
            throw error
        }
        return pipeline
    }

    /// Builds every source, plan and subscriber setting first; only when all succeed are they handed to the
    /// engine and the dispatcher, so a config that cannot be applied leaves the running one untouched.
    ///
    /// A connection whose revision (its JSON and resolved secrets) is unchanged keeps the targets built last time —
    /// same adapters, so cached auth tokens and client limits survive — and the engine leaves its schedule alone;
    /// only added and changed connections are built anew (docs/DESIGN.md §6, one file per connection).
    public func apply(_ config: DeltahookConfig) async throws {
        let previous = applied.withLock { $0 }
        // The daemon is always a cluster node (of one on SQLite), so per-account limits go through the store.
        let permits = StoreClusterPermits(store: store, logger: logger)
        var targets: [PollTarget] = []
        var built: [String: AppliedConnection] = [:]
        var problems: [ConfigProblem] = []
        for (index, connection) in config.connections.enumerated() {
            if !connection.revision.isEmpty, let old = previous[connection.id], old.revision == connection.revision {
                targets += old.targets
                built[connection.id] = old
                continue
            }
            do {
                let made = try Wiring.targets(for: connection, transport: transport, logger: logger, authState: store,
                                              permits: permits, budget: requestBudget)
                targets += made
                built[connection.id] = AppliedConnection(revision: connection.revision, targets: made)
            } catch {
                problems.append(DeltahookPipeline.problem(for: connection, index: index, error: error))
            }
        }
        var settings: [SubscriberSettings] = []
        for (index, subscriber) in config.subscribers.enumerated() {
            do {
                settings.append(try SubscriberSettings(subscriber))
            } catch {
                problems.append(ConfigProblem(path: "subscribers[\(index)]", message: String(describing: error)))
            }
        }
        if !problems.isEmpty { throw ConfigError(file: nil, problems: problems) }
        dispatcher.setSubscribers(settings)
        engine.update(targets: targets, router: Wiring.router(for: config.subscribers))
        applied.withLock { $0 = built }
        for connection in config.connections {
            // Unchanged connections were announced when they were applied; a reload names only what it changed.
            if let old = previous[connection.id], old.revision == connection.revision, !connection.revision.isEmpty {
                continue
            }
            logger.info("polling connection", [.connection: connection.id, "PROVIDER": connection.provider.rawValue,
                                               "OBJECTS": connection.objects.map(\.name).joined(separator: ","),
                                               "SOURCE": connection.source ?? "-"])
        }
        for id in previous.keys.sorted() where built[id] == nil {
            logger.info("stopped polling connection; its state stays in the store until pruned", [.connection: id])
        }
        for subscriber in config.subscribers {
            logger.info("delivering to subscriber", [.subscriber: subscriber.id,
                                                     "EVENTS": subscriber.events.map(\.pattern).joined(separator: ",")])
        }
    }

    /// The targets applied per connection id, with the revision they were built from.
    struct AppliedConnection: Sendable {
        var revision: String
        var targets: [PollTarget]
    }

    /// A connection whose adapters cannot be built becomes a config problem naming the connection and its source
    /// file: exit 78 at start, a rejected reload later — the daemon never runs a config with a connection silently
    /// missing.
    static func problem(for connection: ConnectionConfig, index: Int, error: any Error) -> ConfigProblem {
        ConfigProblem(path: "connections[\(index)]",
                      message: "connection \"\(connection.id)\"\(connection.source.map { " (from \($0))" } ?? ""): "
                          + String(describing: error))
    }

    /// Each subscriber's `rate_limit` becomes this node's share: rate/`nodes` (1 = a daemon alone).
    public func setClusterSize(_ nodes: Int) {
        dispatcher.setClusterSize(nodes)
    }

    @discardableResult
    public func triggerHintedPoll(connection: String, object: String) -> Int {
        engine.trigger(connection: connection, object: object, reason: .hint)
    }

    public func engineLiveness() async -> (alive: Bool, reason: String) {
        let liveness = engine.liveness
        if liveness.sinceLastBeat <= DeltahookPipeline.livenessWindow { return (true, "ok") }
        return (false, "engine heartbeat silent for \(DurationText.format(liveness.sinceLastBeat))"
                    + (stallEngineLiveness ? " (test hook stallEngineLiveness)" : ""))
    }

    /// One `PollTarget` per configured object (built by `Wiring`, shared with `poll-once`). A connection whose
    /// adapters cannot be built becomes a config problem with its JSON path: exit 78 at start, a rejected reload
    /// later — the daemon never runs a config with a connection silently missing.
    static func targets(for config: DeltahookConfig, transport: any HTTPTransport, logger: Logger,
                        authState: (any AuthStateStore)? = nil, permits: (any ClusterPermits)? = nil,
                        budget: (any RequestBudget)? = nil)
        -> (targets: [PollTarget], problems: [ConfigProblem])
    {
        let wired = Wiring.build(config, transport: transport, logger: logger, authState: authState, permits: permits,
                                 budget: budget)
        let problems = wired.failures.map { failure in
            let index = config.connections.firstIndex { $0.id == failure.connection }
            return ConfigProblem(path: index.map { "connections[\($0)]" } ?? "connections",
                                 message: String(describing: failure.error))
        }
        return (wired.targets, problems)
    }
}

/// Polling: starts the engine, and on shutdown stops every schedule and waits for running cycles (a cycle cut
/// between pages resumes after its last committed page on the next start).
final class EngineService: Service {
    let name = "engine"
    let engine: Engine
    let stallAfterStart: Bool
    let logger: Logger
    private let stop = Doorbell()

    init(engine: Engine, stallAfterStart: Bool, logger: Logger) {
        self.engine = engine
        self.stallAfterStart = stallAfterStart
        self.logger = logger
    }

    func run() async throws {
        engine.start()
        if stallAfterStart {
            engine.debugStallHeartbeat(true)
            logger.warning("engine heartbeat stalled by the test hook stallEngineLiveness; the watchdog will stop pinging")
        }
        await stop.wait()
    }

    func shutdown(deadline: ContinuousClock.Instant) async {
        await engine.shutdown()
        stop.close()
    }
}

/// Delivery: the dispatcher's loops run from `setSubscribers`; this service owns their drain and the shared HTTP
/// client's shutdown (after the engine stopped, so no provider request is still using it).
final class DispatcherService: Service {
    let name = "dispatcher"
    let dispatcher: Dispatcher
    let transport: CurlHTTPClient
    let store: any StateStoring
    private let stop = Doorbell()

    init(dispatcher: Dispatcher, transport: CurlHTTPClient, store: any StateStoring) {
        self.dispatcher = dispatcher
        self.transport = transport
        self.store = store
    }

    func run() async throws {
        await stop.wait()
    }

    /// Drains in-flight deliveries until `deadline` (the daemon's `shutdown_timeout`), then the HTTP client.
    func shutdown(deadline: ContinuousClock.Instant) async {
        store.observeCommittedEvents(nil)
        await dispatcher.shutdown(deadline: max(.zero, ContinuousClock.now.duration(to: deadline)))
        transport.shutdown()
        stop.close()
    }
}
