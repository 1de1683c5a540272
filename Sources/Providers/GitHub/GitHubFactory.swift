// GitHub's adapter factory: one `GitHubClient` (token or App installation token) per connection, one
// `GitHubIssuesSource` per object (repository). Config schema: `Sources/Config/Providers/GitHubSchema.swift`.
public import Config
public import Core
import Crypto
public import Foundation

public struct GitHubFactory: ProviderAdapterFactory {
    /// The clock the App's JWTs are dated by (tests pin it).
    public var clock: @Sendable () -> Date

    public init(clock: @escaping @Sendable () -> Date = { Date() }) { self.clock = clock }

    public var provider: Provider { .github }

    /// A 304 to a conditional request does not count against GitHub's rate limit (docs/DESIGN.md §2 rule 9).
    public var unchargedStatuses: Set<Int> { [304] }

    public func makeSources(for connection: ConnectionConfig, context: ProviderContext) throws -> [any ObjectSource] {
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
            throw ProviderFactory.mismatch(connection, nil, "GitHub auth")
        }
        let client = GitHubClient(connection: connection.id, baseURL: connection.baseURL.absoluteString,
                                  credentials: credentials, transport: context.transport, clock: clock,
                                  http: try ProviderFactory.providerHTTP(for: connection, context: context))
        return try connection.objects.map { object in
            guard let settings = object.settings.github else {
                throw ProviderFactory.mismatch(connection, object, "GitHub object")
            }
            context.logger.debug("GitHub object configured", [.connection: connection.id, .object: object.name])
            return try GitHubIssuesSource(client: client, object: object.name, owner: settings.repository.owner,
                                          repository: settings.repository.name, model: object.model.rawValue,
                                          includePullRequests: settings.includePullRequests,
                                          ignoreFields: object.ignoreFields)
        }
    }
}
