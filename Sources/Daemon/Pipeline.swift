// The daemon supervises "the pipeline" — providers, engine and dispatcher — through this small seam, so the
// lifecycle (READY, reload, watchdog, drain) is written once and does not depend on how the pipeline is built.
public import Config
public import Core
public import Logging
public import Engine
public import Store

/// The polling engine and the dispatcher, as the daemon drives them.
public protocol Pipeline: LivenessSource {
    /// Long-running parts in start order (the dispatcher before the engine, so shutdown — which runs in reverse —
    /// stops polling first and then drains deliveries).
    var services: [any Service] { get }
    /// Applies a reloaded config without a restart: connections, objects and subscribers are added, changed or
    /// removed. Throws when the new config cannot be applied; the running one then stays in force.
    func apply(_ config: DeltahookConfig) async throws
    /// The number of alive cluster nodes changed (the daemon's heartbeat loop): limits the nodes share — a
    /// subscriber's `rate_limit` — are split among them (docs/DESIGN.md §2 rule 21).
    func setClusterSize(_ nodes: Int)
    /// A push hint asks for a poll of one object now (docs/DESIGN.md §2 rule 23); the cycle is labelled as hinted.
    /// Returns how many objects were triggered (0 when the object is not scheduled here).
    @discardableResult
    func triggerHintedPoll(connection: String, object: String) -> Int
}

extension Pipeline {
    /// A pipeline with no shared limits (test doubles) ignores the cluster's size.
    public func setClusterSize(_ nodes: Int) {}
    /// A pipeline without an engine (test doubles) polls nothing on a hint.
    @discardableResult
    public func triggerHintedPoll(connection: String, object: String) -> Int { 0 }
}

/// What a pipeline gets besides the config and the store.
public struct PipelineContext: Sendable {
    public var logger: Logger
    public var metrics: MetricsRegistry
    public var environment: [String: String]
    /// `DaemonTestHooks.stallEngineLiveness`: the engine's liveness signal stops advancing after start-up, so a
    /// test can prove that WATCHDOG=1 pings stop when the engine is stuck. Never set by `deltahook run`.
    public var stallEngineLiveness: Bool
    /// `DaemonOptions.cycleObserver`: told about every finished poll cycle and what started it.
    public var cycleObserver: (@Sendable (CycleReport, CycleTrigger) -> Void)?

    public init(logger: Logger, metrics: MetricsRegistry, environment: [String: String],
                stallEngineLiveness: Bool = false,
                cycleObserver: (@Sendable (CycleReport, CycleTrigger) -> Void)? = nil) {
        self.cycleObserver = cycleObserver
        self.logger = logger
        self.metrics = metrics
        self.environment = environment
        self.stallEngineLiveness = stallEngineLiveness
    }
}

/// Builds the pipeline for a validated config and an open store. Throwing a `ConfigError` exits 78.
public typealias PipelineFactory = @Sendable (DeltahookConfig, any StateStoring, PipelineContext) async throws
    -> any Pipeline
