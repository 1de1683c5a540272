// Builds the provider adapters of one configured connection. Each provider contributes one
// `ProviderAdapterFactory` from its own folder (`Sources/Providers/<Name>/<Name>Factory.swift`), listed once in
// `ProviderFactory.all`; its config schema is the matching file in `Sources/Config/Providers/`. A connection's
// objects share one client (tokens, rate-limit backoff), because provider limits are per account
// (docs/DESIGN.md §2 rule 10).
public import Config
public import Core
public import HTTPClient
public import Logging
import Foundation

/// One provider's adapter side: turns a validated connection (its typed `ConnectionSettings` and each object's
/// `ObjectSettings`, already checked by the provider's config schema) into one `ObjectSource` per object.
/// Conformers live in the provider's folder and are listed in `ProviderFactory.all`.
public protocol ProviderAdapterFactory: Sendable {
    /// The provider whose connections this builds; matches its `ProviderSchema` in Config.
    var provider: Provider { get }
    /// One source per object of `connection`, in config order, sharing one client.
    func makeSources(for connection: ConnectionConfig, context: ProviderContext) throws -> [any ObjectSource]
    /// Response statuses this provider does not charge against an account's request quota (GitHub: 304 Not
    /// Modified); a connection's `budget` gives such requests back (docs/DESIGN.md §2 rule 22). Default: none.
    var unchargedStatuses: Set<Int> { get }
}

extension ProviderAdapterFactory {
    public var unchargedStatuses: Set<Int> { [] }
}

/// What every adapter factory gets besides the connection.
public struct ProviderContext: Sendable {
    public var transport: any HTTPTransport
    public var logger: Logger
    /// Keeps provider auth state across restarts (a rotated ServiceNow refresh token); nil keeps it in memory.
    public var authState: (any AuthStateStore)?
    /// Semaphores shared by every node of a cluster (NetSuite's per-account concurrency, docs/DESIGN.md §2
    /// rule 21); nil: each client's local limit is the only one.
    public var permits: (any ClusterPermits)?

    /// - Parameter transport: for a connection with a `budget`, ``ProviderFactory/makeSources`` passes a
    ///   ``BudgetedTransport`` here, so every request an adapter sends is counted (docs/DESIGN.md §2 rule 22).
    public init(transport: any HTTPTransport, logger: Logger, authState: (any AuthStateStore)? = nil,
                permits: (any ClusterPermits)? = nil) {
        self.transport = transport
        self.logger = logger
        self.authState = authState
        self.permits = permits
    }
}

public enum ProviderFactory {
    /// Every provider's adapter factory. Adding a provider adds one line here (and one in `ProviderSchemas.all`).
    public static let all: [any ProviderAdapterFactory] = [
        ServiceNowFactory(), NetSuiteFactory(), GitHubFactory(), RestFactory(), ZohoBooksFactory(),
    ]

    /// One `ObjectSource` per configured object of `connection`, in config order.
    /// - Parameter authState: keeps provider auth state across restarts (a rotated ServiceNow refresh token);
    ///   the daemon passes its state store, nil keeps it in memory only.
    /// - Parameter permits: cluster-wide semaphores (the daemon's store); nil: local limits only.
    /// - Parameter budget: the shared request counter; a connection with a `budget` then sends every request
    ///   through a ``BudgetedTransport`` (rule 22). nil: requests are not counted (unit tests).
    public static func makeSources(for connection: ConnectionConfig, transport: any HTTPTransport,
                                   logger: Logger, authState: (any AuthStateStore)? = nil,
                                   permits: (any ClusterPermits)? = nil,
                                   budget: (any RequestBudget)? = nil) throws -> [any ObjectSource] {
        guard let factory = all.first(where: { $0.provider == connection.provider }) else {
            throw ProviderError.configuration(message: "\(connection.id): no adapter for provider \(connection.provider)")
        }
        var counted: any HTTPTransport = transport
        if let budget, let limits = connection.budget {
            counted = BudgetedTransport(inner: transport, budget: budget, connection: connection.id, limits: limits,
                                        uncharged: factory.unchargedStatuses)
        }
        let context = ProviderContext(transport: counted, logger: logger, authState: authState, permits: permits)
        return try factory.makeSources(for: connection, context: context)
    }

    /// The connection's shared HTTP plumbing: its `limits` (max_response_bytes on every response,
    /// max_provider_wait on every wait, docs/DESIGN.md §2 rules 12 and 18), requests allowed only to base_url's
    /// origin, where every provider's token URL lives too (rule 13), and the logger that reports clamped waits.
    public static func providerHTTP(for connection: ConnectionConfig, transport: any HTTPTransport,
                                    logger: Logger) throws -> ProviderHTTP {
        guard let origin = ProviderOrigin(connection.baseURL) else {
            throw ProviderError.configuration(message: "\(connection.id): base_url must be an absolute http(s) URL")
        }
        return ProviderHTTP(transport: transport, connection: connection.id, limits: connection.limits,
                            allowedOrigins: [origin], logger: logger)
    }

    /// `providerHTTP(for:transport:logger:)` with the context's transport and logger.
    static func providerHTTP(for connection: ConnectionConfig, context: ProviderContext) throws -> ProviderHTTP {
        try providerHTTP(for: connection, transport: context.transport, logger: context.logger)
    }

    /// The error for an adapter handed an object or connection of another provider (a programming error: the
    /// config schema gives each provider's objects that provider's settings).
    static func mismatch(_ connection: ConnectionConfig, _ object: ObjectConfig? = nil, _ what: String) -> ProviderError {
        let place = object.map { "\(connection.id)/\($0.name)" } ?? connection.id
        return ProviderError.configuration(message: "\(place): not \(what) settings")
    }
}
