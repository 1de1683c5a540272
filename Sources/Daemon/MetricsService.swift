// Metrics: the shared MetricsRegistry plus gauges recomputed from the store, written as a node_exporter textfile
// (`deltahook.prom`, reference B6) every few seconds. Atomic: write a temporary name that does not end in
// `.prom`, fchmod 0644 (UMask=0077 would make it 0600, unreadable to node_exporter), rename.
import Core
import Foundation
import Glibc
import Logging
import Store

/// Names of the gauges derived from the store (docs/DESIGN.md §8).
public enum DaemonMetric {
    public static let up = "deltahook_up"
    public static let buildInfo = "deltahook_build_info"
    public static let backlog = "deltahook_subscriber_backlog"
    public static let failed = "deltahook_subscriber_failed_deliveries"
    public static let oldestPendingAge = "deltahook_subscriber_oldest_pending_age_seconds"
    public static let subscriberState = "deltahook_subscriber_state"
    public static let pendingTotal = "deltahook_deliveries_pending"
    /// Shared with the engine (which sets it after each successful cycle); recomputed here from the store so it
    /// keeps growing while polls fail and survives restarts.
    public static let cursorLag = "deltahook_cursor_lag_seconds"
    /// Shared with the engine, recomputed from the store's poll status.
    public static let lastSuccess = "deltahook_last_success_timestamp_seconds"
    public static let pollFailing = "deltahook_object_failing"
    public static let reloads = "deltahook_config_reloads_total"
    /// Records in quarantine per object (docs/DESIGN.md §2 rule 16).
    public static let quarantined = "deltahook_quarantined_records"
    /// 1 while the object's last sweep is held by the mass-delete guard (rule 17).
    public static let sweepHeld = "deltahook_sweep_held"
    /// Request budgets (rule 22), shared with the engine (which sets them at each plan); recomputed here from the
    /// store, so every node shows the cluster's count even while the connection is stopped until the day rolls.
    public static let budgetUsed = "deltahook_budget_requests_used"
    public static let budgetLimit = "deltahook_budget_requests_limit"
    public static let budgetProjected = "deltahook_budget_requests_projected"
    public static let budgetInterval = "deltahook_budget_effective_interval_seconds"

    static func declare(in registry: MetricsRegistry, version: String) {
        registry.declare(up, kind: .gauge, help: "1 while the daemon's engine and store answer the liveness probe.")
        registry.declare(buildInfo, kind: .gauge, help: "Always 1; the version label says which build runs.",
                         labels: ["version"])
        registry.set(buildInfo, to: 1, labels: [version])
        registry.declare(backlog, kind: .gauge, help: "Pending deliveries per subscriber.", labels: ["subscriber"])
        registry.declare(failed, kind: .gauge, help: "Deliveries that exhausted their retries, per subscriber.",
                         labels: ["subscriber"])
        registry.declare(oldestPendingAge, kind: .gauge,
                         help: "Age of the oldest pending delivery per subscriber (0 when none).",
                         labels: ["subscriber"])
        registry.declare(subscriberState, kind: .gauge, help: "1 for the subscriber's current state.",
                         labels: ["subscriber", "state"])
        registry.declare(pendingTotal, kind: .gauge, help: "Pending deliveries across all subscribers.")
        registry.declare(cursorLag, kind: .gauge,
                         help: "Seconds between now and the newest source timestamp committed (the watermark).",
                         labels: ["connection", "object"])
        registry.declare(lastSuccess, kind: .gauge, help: "Unix time of the last successful poll cycle.",
                         labels: ["connection", "object"])
        registry.declare(pollFailing, kind: .gauge, help: "1 when the object's last poll failed.",
                         labels: ["connection", "object"])
        registry.declare(reloads, kind: .counter, help: "SIGHUP reloads by outcome.", labels: ["outcome"])
        registry.declare(quarantined, kind: .gauge, help: "Records in quarantine (rejected by the adapter) per object.",
                         labels: ["connection", "object"])
        registry.declare(sweepHeld, kind: .gauge,
                         help: "1 while the object's last sweep is held by the mass-delete guard.",
                         labels: ["connection", "object"])
        registry.declare(budgetUsed, kind: .gauge, help: "Requests the connection sent today (UTC day, all nodes).",
                         labels: ["connection"])
        registry.declare(budgetLimit, kind: .gauge, help: "The connection's budget.per_day.", labels: ["connection"])
        registry.declare(budgetProjected, kind: .gauge,
                         help: "Requests the connection will have sent by the day's end at the current plan.",
                         labels: ["connection"])
        registry.declare(budgetInterval, kind: .gauge,
                         help: "Seconds between cycles of the object under its connection's request budget.",
                         labels: ["connection", "object"])
    }
}

/// Recomputes the store-derived gauges, writes the textfile and keeps systemd's STATUS= line current.
public final class MetricsService: Service {
    public let name = "metrics"
    let registry: MetricsRegistry
    let store: any StateStoring
    let state: DaemonState
    let textfile: String?
    let interval: Duration
    let notifier: SystemdNotifier
    let logger: Logger
    private let stop = Doorbell()

    /// `textfile` nil: only keep the registry current (for `/metrics`).
    init(registry: MetricsRegistry, store: any StateStoring, state: DaemonState, textfile: String?, interval: Duration,
         notifier: SystemdNotifier, logger: Logger)
    {
        self.notifier = notifier
        self.registry = registry
        self.store = store
        self.state = state
        self.textfile = textfile
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        var warned = false
        var lastStatus = state.statusLine
        while !stop.isClosed, !Task.isCancelled {
            do {
                try await refresh()
                if let textfile { try MetricsService.writeAtomically(registry.render(), to: textfile) }
                let status = state.statusLine
                if status != lastStatus, !stop.isClosed {
                    notifier.status(status)
                    lastStatus = status
                }
                warned = false
            } catch {
                // Once per failure run: a full disk must not flood the journal every 5 s.
                if !warned { logger.warning("metrics refresh failed", error: error) }
                warned = true
            }
            await stop.wait(upTo: interval)
        }
        if let textfile { try? FileManager.default.removeItem(atPath: textfile) }
    }

    public func shutdown(deadline: ContinuousClock.Instant) async { stop.close() }

    /// Reads the store (through its queue) and replaces the derived gauges.
    func refresh() async throws {
        let subscribers = state.config.subscribers.map(\.id)
        let objects = state.config.connections.flatMap { c in c.objects.map { (c.id, $0.name) } }
        let snapshot = try await store.perform { store in
            try StatusReport.collect(store: store, subscribers: subscribers, objects: objects, now: Date())
        }
        apply(snapshot)
        state.setLastReport(snapshot)
    }

    func apply(_ report: StatusReport) {
        registry.replace(DaemonMetric.backlog, with: report.subscribers.map { ([$0.id], Double($0.pending)) })
        registry.replace(DaemonMetric.failed, with: report.subscribers.map { ([$0.id], Double($0.failed)) })
        registry.replace(DaemonMetric.oldestPendingAge,
                         with: report.subscribers.map { ([$0.id], $0.oldestPendingAgeSeconds ?? 0) })
        registry.replace(DaemonMetric.subscriberState, with: report.subscribers.flatMap { s in
            SubscriberState.allCases.map { ([s.id, $0.rawValue], s.state == $0.rawValue ? 1 : 0) }
        })
        registry.set(DaemonMetric.pendingTotal, to: Double(report.pendingTotal))
        registry.replace(DaemonMetric.cursorLag, with: report.objects.compactMap { o in
            o.lagSeconds.map { ([o.connection, o.object], $0) }
        })
        registry.replace(DaemonMetric.lastSuccess, with: report.objects.compactMap { o in
            o.lastSuccessAt.map { ([o.connection, o.object], $0.timeIntervalSince1970.rounded(.down)) }
        })
        registry.replace(DaemonMetric.pollFailing, with: report.objects.map { o in
            ([o.connection, o.object], o.lastError == nil ? 0 : 1)
        })
        registry.replace(DaemonMetric.quarantined, with: report.objects.map { o in
            ([o.connection, o.object], Double(o.quarantined))
        })
        registry.replace(DaemonMetric.sweepHeld, with: report.objects.map { o in
            ([o.connection, o.object], o.heldSweep == nil ? 0 : 1)
        })
        registry.replace(DaemonMetric.budgetUsed, with: report.budgets.map { ([$0.connection], Double($0.usedToday)) })
        registry.replace(DaemonMetric.budgetLimit, with: report.budgets.map { ([$0.connection], Double($0.perDay)) })
        registry.replace(DaemonMetric.budgetProjected,
                         with: report.budgets.map { ([$0.connection], Double($0.projectedToday)) })
        registry.replace(DaemonMetric.budgetInterval, with: report.budgets.flatMap { b in
            b.objects.map { ([b.connection, $0.object], $0.effective.seconds) }
        })
    }

    /// Where the textfile goes: `$RUNTIME_DIRECTORY` (first entry) when writable, else `/run/deltahook` when it
    /// exists and is writable, else nil (the caller logs at debug and skips the file).
    public static func textfilePath(environment: [String: String]) -> String? {
        var candidates: [String] = []
        if let runtime = environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first, !runtime.isEmpty {
            candidates.append(String(runtime))
        }
        candidates.append("/run/deltahook")
        for directory in candidates where access(directory, W_OK | X_OK) == 0 {
            return directory + "/deltahook.prom"
        }
        return nil
    }

    /// write(tmp) → fchmod 0644 → rename (a tmpfs file: no fsync needed), in the target's directory so the rename is atomic.
    public static func writeAtomically(_ text: String, to path: String) throws {
        let temporary = path + ".tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw MetricsWriteError(path: temporary, operation: "open", code: errno) }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let code = errno
                close(fd)
                throw MetricsWriteError(path: temporary, operation: "write", code: code)
            }
            offset += n
        }
        guard fchmod(fd, 0o644) == 0 else {
            let code = errno
            close(fd)
            throw MetricsWriteError(path: temporary, operation: "fchmod", code: code)
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            throw MetricsWriteError(path: path, operation: "rename", code: errno)
        }
        ok = true
    }
}

public struct MetricsWriteError: Error, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var code: Int32
    public var description: String {
        "\(operation) \(path) failed: \(String(cString: strerror(code))) (check that the runtime directory is writable)"
    }
}
