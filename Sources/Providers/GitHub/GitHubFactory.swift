// GitHub's adapter factory: one `GitHubClient` (token or App installation token) per connection, one
// `GitHubIssuesSource` per object (repository). Config schema: `Sources/Config/Providers/GitHubSchema.swift`.
public import Config
public import Core
public import HTTPClient
public import Logging
import Crypto
public import Foundation

struct GitHubFactory: ProviderAdapterFactory {
    var provider: Provider { .github }

    func makeSources(for connection: ConnectionConfig, context: ProviderContext) throws -> [any ObjectSource] {
        try ProviderFactory.makeGitHubSources(for: connection, transport: context.transport, logger: context.logger)
    }
}

extension ProviderFactory {
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
            throw mismatch(connection, nil, "GitHub auth")
        }
        let client = GitHubClient(connection: connection.id, baseURL: connection.baseURL.absoluteString,
                                  credentials: credentials, transport: transport, clock: clock,
                                  http: try providerHTTP(for: connection, transport: transport, logger: logger))
        return try connection.objects.map { object in
            guard let settings = object.settings.github else { throw mismatch(connection, object, "GitHub object") }
            logger.debug("GitHub object configured", [.connection: connection.id, .object: object.name])
            return try GitHubIssuesSource(client: client, object: object.name, owner: settings.repository.owner,
                                          repository: settings.repository.name, model: object.model.rawValue,
                                          includePullRequests: settings.includePullRequests,
                                          ignoreFields: object.ignoreFields)
        }
    }
}
