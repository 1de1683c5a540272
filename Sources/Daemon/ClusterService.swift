// This daemon's membership in the cluster of daemons that share one store (docs/DESIGN.md §2 rules 19–21).
//
// The daemon joins before its pipeline starts (so the engine's first cycle already asks for leases); this service
// then beats every third of the lease ttl: the heartbeat renews every poll lease the node holds (a long provider
// wait or a slow page never lets a lease lapse while the node is healthy), reports leases found lost (the node was
// paused or partitioned past the ttl: fencing has already refused its writes), and tells the dispatcher how many
// nodes are alive (a subscriber's rate_limit is shared among them). At shutdown it runs last and leaves the
// cluster: every lease is released at once, so another node takes over without waiting out the ttl.
import Core
import Dispatch
import Foundation
import Logging
import Store

final class ClusterService: Service {
    let name = "cluster"

    let store: any StateStoring
    let node: NodeIdentity
    let leaseTTL: Duration
    let logger: Logger
    private let registry: MetricsRegistry
    /// Told the number of alive nodes (this one included) after every beat.
    private let onClusterSize: @Sendable (Int) -> Void
    private let stop = Doorbell()
    /// The heartbeat's own lane: not the store's job queue, where it would wait behind page commits and
    /// delivery batches — a busy node must not lose its leases because its own work kept the beat waiting.
    private let lane = DispatchQueue(label: "deltahook.cluster")

    init(store: any StateStoring, node: NodeIdentity, leaseTTL: Duration, registry: MetricsRegistry, logger: Logger,
         onClusterSize: @escaping @Sendable (Int) -> Void) {
        self.store = store
        self.node = node
        self.leaseTTL = leaseTTL
        self.registry = registry
        self.logger = logger
        self.onClusterSize = onClusterSize
        registry.declare("deltahook_cluster_nodes", kind: .gauge, help: "Daemons alive on this store (this one included).")
        registry.declare("deltahook_poll_leases_held", kind: .gauge, help: "Poll leases this node holds.")
        registry.declare("deltahook_poll_leases_lost_total", kind: .counter,
                         help: "Poll leases this node found taken over or expired (it was paused or partitioned).")
    }

    /// Joins the cluster: called by the daemon before the pipeline starts.
    static func join(store: any StateStoring, node: NodeIdentity, leaseTTL: Duration, objects: Int) async throws {
        try await store.perform { try $0.joinCluster(node, leaseTTL: leaseTTL, objects: objects) }
    }

    func run() async throws {
        let period = leaseTTL / 3
        repeat {
            await beat()
        } while !(await stop.wait(upTo: period)) && !Task.isCancelled
    }

    func shutdown(deadline: ContinuousClock.Instant) async {
        stop.close()
        do {
            try await store.perform { try $0.leaveCluster() }
            logger.info("left the cluster; poll leases released", ["NODE": node.id])
        } catch {
            logger.warning("could not leave the cluster; other nodes take over when the leases expire",
                           ["NODE": node.id, "LEASE_TTL": DurationText.format(leaseTTL)], error: error)
        }
    }

    /// One heartbeat: renew, report lost leases, count nodes. A store failure is logged and retried next beat;
    /// meanwhile the leases run down and, past the ttl, other nodes take over (the store being unreachable for
    /// that long is exactly when they should).
    func beat() async {
        let ttl = leaseTTL
        do {
            let store = self.store
            let (lost, alive, held) = try await onLane {
                let lost = try store.heartbeat()
                let nodes = try store.nodes(aliveWithin: ttl)
                let mine = try store.pollLeases().filter { $0.owner == self.node.id && !$0.expired }.count
                return (lost, nodes.filter(\.alive).count, mine)
            }
            for key in lost {
                logger.warning("poll lease lost: another node polls this object now",
                               [.connection: key.connection, .object: key.object, "NODE": node.id])
            }
            registry.increment("deltahook_poll_leases_lost_total", by: Double(lost.count))
            registry.set("deltahook_cluster_nodes", to: Double(max(1, alive)))
            registry.set("deltahook_poll_leases_held", to: Double(held))
            onClusterSize(max(1, alive))
        } catch {
            logger.error("cluster heartbeat failed; leases expire after lease_ttl if this continues",
                         ["NODE": node.id, "LEASE_TTL": DurationText.format(ttl)], error: error)
        }
    }

    private func onLane<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            lane.async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// `store.node_id`, else `<hostname>-<pid>`: unique per running process, readable in `status`.
    static func identity(configured: String?, version: String, now: Date) -> NodeIdentity {
        let host = ProcessInfo.processInfo.hostName
        let pid = ProcessInfo.processInfo.processIdentifier
        let shortHost = host.split(separator: ".").first.map(String.init) ?? host
        return NodeIdentity(id: configured ?? "\(shortHost)-\(pid)", host: host, pid: pid, version: version,
                            startedAt: now)
    }
}
