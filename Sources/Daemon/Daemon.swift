// `deltahook run`: the daemon's lifecycle under systemd (docs/DESIGN.md §8).
//
//   load + validate config ── bad: every problem on stderr, exit 78, no READY
//   open the store ($STATE_DIRECTORY / state_directory, created 0700)
//   build the pipeline (providers → engine → store → dispatcher), metrics, watchdog, listener, maintenance
//   READY=1 + STATUS=… ── then one task group runs every service
//   SIGHUP  → RELOADING=1 + MONOTONIC_USEC, re-read, apply or keep the old config (logging every problem), READY=1
//   SIGTERM → STOPPING=1, services shut down in reverse order within `shutdown_timeout`, exit 0
import Config
import Core
import Foundation
import Glibc
public import Engine
public import Logging
import Store

/// How `deltahook run` was invoked.
public struct DaemonOptions: Sendable {
    public var configPath: String
    public var environment: [String: String]
    public var makePipeline: PipelineFactory
    /// Where start-up failures go before the logger exists (stderr).
    public var errorOutput: @Sendable (String) -> Void
    /// Overrides the sink `LogOutput.automatic` picks (tests).
    public var logSink: (any LogSink)?
    /// How often metrics and STATUS= are refreshed.
    public var metricsInterval: Duration
    /// Switches only tests set (never the environment, never `deltahook run`).
    public var testHooks: DaemonTestHooks
    /// Told about every finished poll cycle and what started it (`deltahook demo` marks events from hinted polls).
    /// `deltahook run` sets none.
    public var cycleObserver: (@Sendable (CycleReport, CycleTrigger) -> Void)?

    public init(configPath: String, environment: [String: String], makePipeline: @escaping PipelineFactory,
                errorOutput: @escaping @Sendable (String) -> Void, logSink: (any LogSink)? = nil,
                metricsInterval: Duration = .seconds(5), testHooks: DaemonTestHooks = DaemonTestHooks())
    {
        self.configPath = configPath
        self.environment = environment
        self.makePipeline = makePipeline
        self.errorOutput = errorOutput
        self.logSink = logSink
        self.metricsInterval = metricsInterval
        self.testHooks = testHooks
    }
}

/// Misbehaviour a test can ask of the daemon. The production binary (`deltahook run`) always passes the default;
/// `DeltahookWatchdogProof` (Tests/WatchdogProof, a test-only executable) sets `stallEngineLiveness`.
public struct DaemonTestHooks: Sendable {
    /// The engine's liveness signal stops advancing after start-up, so a test can prove that WATCHDOG=1 pings stop
    /// (and systemd's watchdog fires) when the engine is stuck.
    public var stallEngineLiveness: Bool

    public init(stallEngineLiveness: Bool = false) {
        self.stallEngineLiveness = stallEngineLiveness
    }
}

/// Exit codes of `deltahook run` (docs/DESIGN.md §7): 0 clean stop, 1 failure, 78 bad config.
public enum DaemonExitCode {
    public static let ok: Int32 = 0
    public static let failure: Int32 = 1
    public static let config: Int32 = 78
}

public enum Daemon {
    /// The version reported in logs and `deltahook_build_info`.
    public static let version = "0.1.0"

    /// Runs the daemon until SIGTERM/SIGINT or a fatal error; returns the process exit code.
    public static func run(_ options: DaemonOptions) async -> Int32 {
        // A peer closing a socket must not kill the process; every writer handles EPIPE itself.
        signal(SIGPIPE, SIG_IGN)
        // Installed first, so a SIGTERM during start-up is queued rather than fatal.
        let signals = UnixSignals([.hangup, .terminate, .interrupt])
        defer { signals.cancel() }
        let notifier = SystemdNotifier(environment: options.environment)

        // 1. Config: every problem, exit 78, before READY.
        let config: DeltahookConfig
        do {
            config = try ConfigLoader.load(path: options.configPath,
                                           environment: ConfigEnvironment(variables: options.environment))
        } catch {
            options.errorOutput("deltahook run: \(error)\n")
            notifier.notify("STATUS=refusing to start: invalid config (\(error.problems.count) problems)")
            return DaemonExitCode.config
        }

        // The process's one scrubber (docs/DESIGN.md §1): the logger carries it to every component, which scrub
        // what they store with it and register the tokens they mint.
        let scrubber = SecretScrubber()
        config.register(in: scrubber)
        let sink = options.logSink ?? LogOutput.automatic(variables: options.environment)
        let logger = Logger(level: LogLevel(name: config.logLevel.rawValue) ?? .info, sink: sink, scrubber: scrubber)

        // 2. Store, and the one-poller-per-state-directory lock (held until this function returns). A shared
        // PostgreSQL store takes no lock: daemons on it divide the objects by poll leases (rule 19).
        let location = StoreLocation(directory: config.stateDirectory, store: config.store)
        let store: any StateStoring
        var pollerLock: PollerLock?
        do {
            store = try openStore(location, directory: config.stateDirectory, logger: logger)
            if !location.isShared {
                guard let lock = try PollerLock.acquire(directory: config.stateDirectory) else {
                    options.errorOutput("deltahook run: another deltahook process is polling \(config.stateDirectory) "
                        + "(\(PollerLock.fileName) is locked); stop it first, or give this one its own state_directory\n")
                    notifier.notify("STATUS=refusing to start: the state directory is in use")
                    return DaemonExitCode.failure
                }
                pollerLock = lock
                // Whoever wrote leases into this file before is gone (the lock was free): no waiting them out.
                try store.clearStaleClusterState()
            }
        } catch {
            logger.critical("cannot open the state store", ["STORE": location.description], error: error)
            notifier.notify("STATUS=cannot open the state store")
            return DaemonExitCode.failure
        }
        defer { withExtendedLifetime(pollerLock) {} }

        // Joined before the pipeline starts, so the engine's first cycle already polls under a lease.
        let node = ClusterService.identity(configured: config.store.nodeID, version: version, now: Date())
        do {
            try await ClusterService.join(store: store, node: node, leaseTTL: config.store.leaseTTL,
                                          objects: config.objectCount)
        } catch {
            logger.critical("cannot join the cluster of daemons on this store", ["NODE": node.id], error: error)
            notifier.notify("STATUS=cannot write to the state store")
            return DaemonExitCode.failure
        }

        // 3. Pipeline and the daemon's own services.
        // Every series carries this node's id, so a cluster's metrics can be told apart (rule 19).
        let registry = MetricsRegistry(scrubber: scrubber, constantLabels: [(name: "node", value: node.id)])
        DaemonMetric.declare(in: registry, version: version)
        let state = DaemonState(config: config)
        let stall = options.testHooks.stallEngineLiveness
        if stall { logger.warning("test hook stallEngineLiveness: the engine's liveness will stall") }
        let pipeline: any Pipeline
        do {
            pipeline = try await options.makePipeline(
                config, store, PipelineContext(logger: logger, metrics: registry, environment: options.environment,
                                               stallEngineLiveness: stall, cycleObserver: options.cycleObserver))
        } catch let error as ConfigError {
            options.errorOutput("deltahook run: \(error)\n")
            return DaemonExitCode.config
        } catch {
            logger.critical("cannot build the pipeline", error: error)
            return DaemonExitCode.failure
        }

        let textfile = MetricsService.textfilePath(environment: options.environment)
        if textfile == nil {
            logger.debug("no writable $RUNTIME_DIRECTORY or /run/deltahook; metrics textfile skipped")
        }
        let metrics = MetricsService(registry: registry, store: store, state: state, textfile: textfile,
                                     interval: options.metricsInterval, notifier: notifier, logger: logger)
        // Push hints (rule 23) are heard on `hints.listen` when set, else on `http.listen`.
        let hintGate = HintGate(settings: HintGate.Settings(config), metrics: registry, logger: logger) { key in
            pipeline.triggerHintedPoll(connection: key.connection, object: key.object)
        }
        defer { hintGate.stop() }
        var health: HealthServer?
        if let listen = config.http {
            do {
                health = try HealthServer(listen: listen, registry: registry, state: state, logger: logger,
                                          hints: config.hints.listen == nil ? hintGate : nil)
            } catch {
                logger.critical("cannot listen for /metrics and /healthz",
                                ["LISTEN": "\(listen.host):\(listen.port)"], error: error)
                return DaemonExitCode.failure
            }
        }
        var hintServer: HintServer?
        if let listen = config.hints.listen {
            do {
                hintServer = try HintServer(listen: listen, gate: hintGate, logger: logger)
            } catch {
                logger.critical("cannot listen for push hints", ["LISTEN": "\(listen.host):\(listen.port)"],
                                error: error)
                return DaemonExitCode.failure
            }
        }
        let trigger = ShutdownTrigger()
        let control = ControlService(signals: signals, notifier: notifier, trigger: trigger, state: state,
                                     logger: logger) { [options] in
            await reload(options: options, pipeline: pipeline, store: store, state: state, scrubber: scrubber,
                         registry: registry, logger: logger)
            hintGate.update(HintGate.Settings(state.config))
        }
        let watchdog = WatchdogService(notifier: notifier, liveness: pipeline, store: store, state: state,
                                       registry: registry, logger: logger)
        let maintenance = MaintenanceService(store: store, logger: logger,
                                             settings: { MaintenanceService.Settings(config: state.config) })
        let cluster = ClusterService(store: store, node: node, leaseTTL: config.store.leaseTTL, registry: registry,
                                     logger: logger, onClusterSize: { pipeline.setClusterSize($0) })
        // Second to start, so it is second to last to stop: the node leaves the cluster after its pipeline drained.
        var services: [any Service] = [control, cluster, maintenance, metrics]
        if let health { services.append(health) }
        if let hintServer { services.append(hintServer) }
        services.append(watchdog)
        services += pipeline.services

        // 4. READY=1 once the store answers and the first report is in.
        try? await metrics.refresh()
        notifier.ready(status: state.statusLine)
        logger.notice("deltahook started", ["VERSION": version, "CONNECTIONS": String(config.connections.count),
                                            "SUBSCRIBERS": String(config.subscribers.count),
                                            "STATE_DIRECTORY": config.stateDirectory, "STORE": location.description,
                                            "NODE": node.id])

        let outcome = await ServiceGroup.run(services, trigger: trigger, shutdownTimeout: state.config.shutdownTimeout,
                                             logger: logger)
        if let textfile { unlink(textfile) }
        do {
            try store.checkpoint()
        } catch {
            logger.warning("final WAL checkpoint failed", error: error)
        }
        if outcome.failures.isEmpty {
            logger.notice("deltahook stopped", ["REASON": trigger.reason ?? "stopped",
                                                "DRAINED": outcome.deadlineExceeded ? "no" : "yes"])
            return DaemonExitCode.ok
        }
        logger.error("deltahook stopped after a failure", ["REASON": trigger.reason ?? "failure"])
        return DaemonExitCode.failure
    }

    /// Creates the state directory 0700 (parents as needed) or tightens a looser one, tightens existing store
    /// files to 0600 (each with a warning: the data was readable by others until now), and opens the store.
    static func openStore(_ location: StoreLocation, directory: String, logger: Logger) throws -> any StateStoring {
        for warning in try PrivateFiles.prepareStateDirectory(directory) {
            logger.warning("state directory or store file was readable by others; tightened", ["DETAIL": warning])
        }
        return try location.open(write: true)
    }

    /// SIGHUP: RELOADING=1, re-read, apply or keep the old config, READY=1.
    static func reload(options: DaemonOptions, pipeline: any Pipeline, store: any StateStoring, state: DaemonState,
                       scrubber: SecretScrubber, registry: MetricsRegistry, logger: Logger) async
    {
        let notifier = SystemdNotifier(environment: options.environment)
        notifier.reloading()
        logger.notice("reloading configuration", ["CONFIG": options.configPath])
        let old = state.config
        do {
            let new = try ConfigLoader.load(path: options.configPath,
                                            environment: ConfigEnvironment(variables: options.environment))
            new.register(in: scrubber)
            try await pipeline.apply(new)
            state.setConfig(new)
            // Leases of objects the reload removed are given up, so the node's fair share counts only what it polls.
            do {
                let configured = Set(new.connections.flatMap { connection in
                    connection.objects.map { LeaseKey(connection: connection.id, object: $0.name) }
                })
                try store.releasePollLeases(notIn: configured)
            } catch {
                logger.warning("could not release the poll leases of removed objects; they expire after lease_ttl",
                               error: error)
            }
            store.updateClusterObjects(new.objectCount)
            registry.increment(DaemonMetric.reloads, labels: ["ok"])
            let delivery = (new.delivery.retrySchedule, new.delivery.jitter, new.delivery.pauseAfter,
                            new.delivery.probeInterval, new.delivery.maxRetryAfter)
            let oldDelivery = (old.delivery.retrySchedule, old.delivery.jitter, old.delivery.pauseAfter,
                               old.delivery.probeInterval, old.delivery.maxRetryAfter)
            if new.stateDirectory != old.stateDirectory || new.http != old.http || new.logLevel != old.logLevel
                || delivery != oldDelivery || new.hints.listen != old.hints.listen
            {
                logger.warning("state_directory, http, hints.listen, log_level and delivery changes take effect after a restart")
            }
            // Only these connections were touched; every other one kept its schedule, cursors and leases.
            let changes = new.connectionChanges(since: old)
            func list(_ ids: [String]) -> String { ids.isEmpty ? "-" : ids.joined(separator: ",") }
            logger.notice("configuration reloaded",
                          ["CONNECTIONS": String(new.connections.count), "SUBSCRIBERS": String(new.subscribers.count),
                           "SUMMARY": "added \(changes.added.count), changed \(changes.changed.count), "
                               + "removed \(changes.removed.count)",
                           "ADDED": list(changes.added), "CHANGED": list(changes.changed),
                           "REMOVED": list(changes.removed)])
        } catch let error as ConfigError {
            registry.increment(DaemonMetric.reloads, labels: ["rejected"])
            for problem in error.problems {
                logger.error("reload rejected; the running configuration stays in force",
                             ["CONFIG": options.configPath, "FILE": error.file(of: problem) ?? options.configPath,
                              "PROBLEM": problem.description])
            }
        } catch {
            registry.increment(DaemonMetric.reloads, labels: ["failed"])
            logger.error("reload could not be applied; the running configuration stays in force", error: error)
        }
        notifier.ready(status: state.statusLine)
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Consumes signals: SIGHUP reloads (one at a time), SIGTERM/SIGINT start graceful shutdown. Started first, so it
/// is shut down last and a second SIGTERM during the drain is still consumed (and ignored).
final class ControlService: Service {
    let name = "signals"
    let signals: UnixSignals
    let notifier: SystemdNotifier
    let trigger: ShutdownTrigger
    let state: DaemonState
    let logger: Logger
    let reload: @Sendable () async -> Void

    init(signals: UnixSignals, notifier: SystemdNotifier, trigger: ShutdownTrigger, state: DaemonState, logger: Logger,
         reload: @escaping @Sendable () async -> Void)
    {
        self.signals = signals
        self.notifier = notifier
        self.trigger = trigger
        self.state = state
        self.logger = logger
        self.reload = reload
    }

    func run() async throws {
        for await signal in signals.stream {
            switch signal {
            case .hangup:
                if trigger.isFired {
                    logger.info("SIGHUP ignored during shutdown")
                } else {
                    await reload()
                }
            case .terminate, .interrupt:
                if !trigger.isFired {
                    state.markStopping()
                    notifier.stopping(status: state.statusLine)
                    logger.notice("stopping", ["SIGNAL": signal.description])
                    trigger.fire(reason: signal.description)
                }
            }
        }
    }

    func shutdown(deadline: ContinuousClock.Instant) async { signals.cancel() }
}
