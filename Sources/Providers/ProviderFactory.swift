// Builds the provider adapters of one configured connection. Each provider adds its case here; a connection's
// objects share one client (tokens, rate-limit backoff), because provider limits are per account
// (DESIGN §2 rule 10).
public import Config
public import Core
public import HTTPClient
public import Logging
import Crypto
public import Foundation

public enum ProviderFactory {
    /// One `ObjectSource` per configured object of `connection`, in config order.
    /// - Parameter authState: keeps provider auth state across restarts (a rotated ServiceNow refresh token);
    ///   the daemon passes its state store, nil keeps it in memory only.
    public static func makeSources(for connection: ConnectionConfig, transport: any HTTPTransport,
                                   logger: Logger, authState: (any AuthStateStore)? = nil) throws -> [any ObjectSource] {
        switch connection.provider {
        case .github:
            return try makeGitHubSources(for: connection, transport: transport, logger: logger)
        case .servicenow:
            return try makeServiceNowSources(for: connection, transport: transport, logger: logger, authState: authState)
        case .netsuite:
            return try makeNetSuiteSources(for: connection, transport: transport, logger: logger)
        case .rest:
            let http = try providerHTTP(for: connection, transport: transport, logger: logger)
            return try connection.objects.map {
                try RestSource(connection: connection, object: $0, transport: transport, http: http)
            }
        }
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

    /// GitHub: one `GitHubClient` for the connection, one `GitHubIssuesSource` per object (repository).
    public static func makeGitHubSources(for connection: ConnectionConfig, transport: any HTTPTransport,
                                         logger: Logger, clock: @escaping @Sendable () -> Date = { Date() }) throws
        -> [any ObjectSource]
    {
        let credentials: GitHubCredentials
        switch connection.auth {
        case .token(let secret):
            credentials = .token(secret.unredactedValue)
        case .githubApp(let appID, let installationID, let privateKey):
            let key: RSAKey
            do {
                key = try RSAKey.privateKey(pem: privateKey.unredactedValue)
            } catch {
                throw ProviderError.configuration(message: "\(connection.id): auth.private_key (\(privateKey.reference)) "
                    + "is not an RSA private key in PEM form: \(error)")
            }
            credentials = .app(appID: appID, installationID: installationID, privateKey: key)
        default:
            throw ProviderError.configuration(message: "\(connection.id): GitHub connections authenticate with "
                + "{\"type\": \"token\"} or {\"type\": \"github_app\"}")
        }
        let client = GitHubClient(connection: connection.id, baseURL: connection.baseURL.absoluteString,
                                  credentials: credentials, transport: transport, clock: clock,
                                  http: try providerHTTP(for: connection, transport: transport, logger: logger))
        return try connection.objects.map { object in
            guard let repository = object.repository else {
                throw ProviderError.configuration(message: "\(connection.id)/\(object.name): a GitHub object needs "
                    + "\"repository\": \"owner/name\"")
            }
            logger.debug("GitHub object configured", [.connection: connection.id, .object: object.name])
            return try GitHubIssuesSource(client: client, object: object.name, owner: repository.owner,
                                          repository: repository.name, model: object.model.rawValue,
                                          includePullRequests: object.includePullRequests,
                                          ignoreFields: object.ignoreFields)
        }
    }

    /// ServiceNow: one `ServiceNowClient` (auth, token cache, 429 backoff) for the connection, one
    /// `ServiceNowSource` per object (table).
    public static func makeServiceNowSources(for connection: ConnectionConfig, transport: any HTTPTransport,
                                             logger: Logger, clock: @escaping @Sendable () -> Date = { Date() },
                                             authState: (any AuthStateStore)? = nil) throws
        -> [any ObjectSource]
    {
        var base = connection.baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        let http = try providerHTTP(for: connection, transport: transport, logger: logger)
        let authenticator = try ServiceNowAuthenticator(auth: connection.auth, baseURL: base, http: http, now: clock,
                                                        authState: authState)
        let client = ServiceNowClient(http: http, baseURL: base, authenticator: authenticator)
        return try connection.objects.map { object in
            guard let model = ServiceNowModel(rawValue: object.model.rawValue) else {
                throw ProviderError.configuration(message: "\(connection.id)/\(object.name): ServiceNow data has no "
                    + "\(object.model.rawValue) mapping; use ticket, user, group or record")
            }
            logger.debug("ServiceNow object configured", [.connection: connection.id, .object: object.name])
            return ServiceNowSource(client: client, table: object.name, model: model, fields: object.fields,
                                    ignoreFields: object.ignoreFields, auditDeletes: object.deleteFeed == .audit)
        }
    }

    /// NetSuite: one `NetSuiteClient` per connection (its semaphore is the per-account concurrency limit,
    /// `max_concurrency`), one `NetSuiteSource` per object (SuiteQL table).
    public static func makeNetSuiteSources(for connection: ConnectionConfig, transport: any HTTPTransport,
                                           logger: Logger, options: NetSuiteClient.Options? = nil) throws
        -> [any ObjectSource]
    {
        guard let settings = connection.netsuite else {
            throw ProviderError.configuration(message: "\(connection.id): a NetSuite connection needs account_id and time_zone")
        }
        guard case .netsuiteTBA(let consumerKey, let consumerSecret, let tokenID, let tokenSecret) = connection.auth else {
            throw ProviderError.configuration(message: "\(connection.id): NetSuite connections authenticate with "
                + "{\"type\": \"tba\"} (consumer_key, consumer_secret, token_id, token_secret)")
        }
        var clientOptions = options ?? NetSuiteClient.Options()
        clientOptions.maxConcurrency = settings.maxConcurrency
        let client = NetSuiteClient(connection: connection.id, accountID: settings.accountID,
                                    baseURL: connection.baseURL.absoluteString, timeZone: settings.timeZone,
                                    consumerKey: consumerKey.unredactedValue,
                                    consumerSecret: consumerSecret.unredactedValue,
                                    tokenID: tokenID.unredactedValue, tokenSecret: tokenSecret.unredactedValue,
                                    transport: transport, options: clientOptions,
                                    http: try providerHTTP(for: connection, transport: transport, logger: logger))
        return connection.objects.map { object in
            logger.debug("NetSuite object configured", [.connection: connection.id, .object: object.name])
            return NetSuiteSource(client: client, object: object.name, model: object.model.rawValue,
                                  recordType: object.recordType, fields: object.fields,
                                  usesDeleteFeed: object.deleteFeed == .audit, ignoreFields: object.ignoreFields)
        }
    }
}
