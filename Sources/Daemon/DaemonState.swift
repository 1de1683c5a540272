// Shared, lock-guarded facts of the running daemon: the config in force, the last store report and the last
// liveness verdict. Written by the reload path, the metrics service and the watchdog; read by STATUS=,
// /healthz and /metrics.
public import Config
import Synchronization

public final class DaemonState: Sendable {
    private struct Facts {
        var config: DeltahookConfig
        var report: StatusReport?
        var alive = true
        var aliveReason = "starting"
        var stopping = false
    }

    private let facts: Mutex<Facts>

    public init(config: DeltahookConfig) { facts = Mutex(Facts(config: config)) }

    public var config: DeltahookConfig { facts.withLock { $0.config } }
    public func setConfig(_ config: DeltahookConfig) { facts.withLock { $0.config = config } }

    public var lastReport: StatusReport? { facts.withLock { $0.report } }
    func setLastReport(_ report: StatusReport) { facts.withLock { $0.report = report } }

    /// The watchdog's latest verdict (what `/healthz` answers).
    public var isAlive: Bool { facts.withLock { $0.alive } }
    public var livenessReason: String { facts.withLock { $0.aliveReason } }
    func setAlive(_ alive: Bool, reason: String) {
        facts.withLock {
            $0.alive = alive
            $0.aliveReason = reason
        }
    }

    /// Set on SIGTERM/SIGINT, so later STATUS= updates keep saying so.
    func markStopping() { facts.withLock { $0.stopping = true } }

    /// "3 connections, 2 subscribers, 0 failing, backlog 12" ("stopping: …" once shutdown began).
    public var statusLine: String {
        facts.withLock { f in
            if f.stopping { return "stopping: draining deliveries, backlog \(f.report?.pendingTotal ?? 0)" }
            let c = f.config.connections.count
            let s = f.config.subscribers.count
            guard let report = f.report else { return "\(c) connections, \(s) subscribers, starting" }
            return report.summaryLine(connections: c, subscribers: s)
        }
    }
}
