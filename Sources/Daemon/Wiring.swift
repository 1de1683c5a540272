// From a validated configuration to what the engine runs: one PollTarget (ObjectPlan + provider adapter) per
// configured object, and the event router built from the subscribers (docs/DESIGN.md §2, §5, §6). Used by
// `deltahook run` (and its SIGHUP reload) and by `deltahook poll-once`.
public import Config
public import Core
public import Engine
public import HTTPClient
public import Logging
import Providers

public enum Wiring {
    /// What a configuration wires up. A connection whose adapters cannot be built (an unavailable provider,
    /// an unreadable App key) is reported in `failures` and skipped; the other connections still run.
    public struct Result: Sendable {
        public var targets: [PollTarget]
        public var router: EventRouter
        public var failures: [ConnectionFailure]
    }

    public struct ConnectionFailure: Sendable, CustomStringConvertible {
        public var connection: String
        public var error: any Error
        public var description: String { "\(connection): \(error)" }
    }

    /// Builds every connection's targets and the router.
    /// - Parameter authState: where providers keep auth state across restarts (the daemon's state store,
    ///   docs/DESIGN.md §2 rule 11); nil keeps it in memory.
    /// - Parameter permits: semaphores shared by the cluster's nodes (docs/DESIGN.md §2 rule 21, the daemon's
    ///   store through ``StoreClusterPermits``); nil: each client's local limit only (`poll-once`).
    /// - Parameter budget: the shared request count of connections with a `budget` (docs/DESIGN.md §2 rule 22, the
    ///   daemon's store through ``StoreRequestBudget``); nil: requests are not counted.
    public static func build(_ config: DeltahookConfig, transport: any HTTPTransport, logger: Logger,
                             authState: (any AuthStateStore)? = nil, permits: (any ClusterPermits)? = nil,
                             budget: (any RequestBudget)? = nil) -> Result {
        var targets: [PollTarget] = []
        var failures: [ConnectionFailure] = []
        for connection in config.connections {
            do {
                targets += try self.targets(for: connection, transport: transport, logger: logger, authState: authState,
                                            permits: permits, budget: budget)
            } catch {
                failures.append(ConnectionFailure(connection: connection.id, error: error))
            }
        }
        return Result(targets: targets, router: router(for: config.subscribers), failures: failures)
    }

    /// The targets of one connection, in config order; throws when its adapters cannot be built.
    public static func targets(for connection: ConnectionConfig, transport: any HTTPTransport, logger: Logger,
                               authState: (any AuthStateStore)? = nil, permits: (any ClusterPermits)? = nil,
                               budget: (any RequestBudget)? = nil) throws
        -> [PollTarget]
    {
        let sources = try ProviderFactory.makeSources(for: connection, transport: transport, logger: logger,
                                                      authState: authState, permits: permits, budget: budget)
        var targets: [PollTarget] = []
        for source in sources {
            guard let object = connection.objects.first(where: { $0.name == source.descriptor.object }) else {
                throw ProviderError.configuration(message: "\(connection.id): the provider built an adapter for "
                    + "\"\(source.descriptor.object)\", which is not a configured object")
            }
            targets.append(PollTarget(plan: plan(for: object, of: connection, source: source), source: source,
                                      revision: connection.revision.isEmpty ? nil : connection.revision))
        }
        return targets
    }

    /// The engine's plan of one object: the adapter's descriptor (provider default volatile fields) plus the
    /// object's `ignore_fields`, and the object's schedule, lookback, reconciliation period, initial sync mode,
    /// page size and delete-feed choice (a delete feed only where the provider has one).
    public static func plan(for object: ObjectConfig, of connection: ConnectionConfig, source: any ObjectSource)
        -> ObjectPlan
    {
        var descriptor = source.descriptor
        descriptor.volatileFields.formUnion(object.ignoreFields)
        var plan = ObjectPlan(descriptor: descriptor, interval: object.interval, lookback: object.lookback,
                              reconcileEvery: object.reconcileEvery,
                              initialSync: object.initialSync == .emit ? .emit : .silent,
                              pageSize: object.pageSize,
                              useDeleteFeed: object.deleteFeed == .audit && connection.provider.hasDeleteFeed)
        plan.maxClockSkew = connection.limits.maxClockSkew
        plan.maxPagesPerScan = object.maxPagesPerScan
        plan.deleteGuard = object.deleteGuard
        plan.emit = object.emit
        plan.budget = connection.budget
        return plan
    }

    /// Routes an event to every subscriber whose `events` globs and `connections` list accept it.
    public static func router(for subscribers: [SubscriberConfig]) -> EventRouter {
        let subscribers = subscribers
        return { event in
            subscribers.filter { $0.accepts(eventType: event.type, connection: event.connection) }.map(\.id)
        }
    }
}
