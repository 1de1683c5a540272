// Zoho Books' adapter factory: one `ZohoBooksClient` (OAuth token, 429 backoff) per connection, one
// `ZohoBooksSource` per object (module). Config schema: `Sources/Config/Providers/ZohoBooksSchema.swift`.
public import Config
public import Core
public import Foundation

public struct ZohoBooksFactory: ProviderAdapterFactory {
    /// The clock token expiry is judged by (tests pin it).
    public var clock: @Sendable () -> Date

    public init(clock: @escaping @Sendable () -> Date = { Date() }) { self.clock = clock }

    public var provider: Provider { .zohoBooks }

    public func makeSources(for connection: ConnectionConfig, context: ProviderContext) throws -> [any ObjectSource] {
        guard let settings = connection.settings.zohoBooks else {
            throw ProviderFactory.mismatch(connection, nil, "Zoho Books connection")
        }
        guard case .oauthRefresh(let clientID, let clientSecret, let refreshToken) = connection.auth else {
            throw ProviderFactory.mismatch(connection, nil, "Zoho Books auth")
        }
        // The token URL lives on the accounts server, another origin than the API: both are allowed, nothing else
        // (docs/DESIGN.md §2 rule 13).
        let accounts = settings.accountsURL ?? ProviderOrigin(connection.baseURL).flatMap {
            URL(string: "\($0.scheme)://\($0.host.contains(":") ? "[\($0.host)]" : $0.host):\($0.port)")
        }
        guard let accounts, let apiOrigin = ProviderOrigin(connection.baseURL),
              let accountsOrigin = ProviderOrigin(accounts) else {
            throw ProviderError.configuration(message: "\(connection.id): base_url and accounts_url must be absolute http(s) URLs")
        }
        var tokenBase = accounts.absoluteString
        while tokenBase.hasSuffix("/") { tokenBase.removeLast() }
        let http = ProviderHTTP(transport: context.transport, connection: connection.id, limits: connection.limits,
                                allowedOrigins: Array(Set([apiOrigin, accountsOrigin])), logger: context.logger)
        let authenticator = ZohoBooksAuthenticator(clientID: clientID, clientSecret: clientSecret,
                                                   refreshToken: refreshToken, tokenURL: tokenBase + "/oauth/v2/token",
                                                   http: http, now: clock, authState: context.authState)
        let client = ZohoBooksClient(http: http, baseURL: connection.baseURL.absoluteString,
                                     organizationID: settings.organizationID, authenticator: authenticator)
        return try connection.objects.map { object in
            guard let objectSettings = object.settings.zohoBooks else {
                throw ProviderFactory.mismatch(connection, object, "Zoho Books object")
            }
            context.logger.debug("Zoho Books object configured", [.connection: connection.id, .object: object.name])
            return try ZohoBooksSource(client: client, object: object.name, endpoint: objectSettings.endpoint,
                                       recordsKey: objectSettings.recordsKey, idField: objectSettings.idField,
                                       model: object.model.rawValue, contactType: objectSettings.contactType,
                                       ignoreFields: object.ignoreFields)
        }
    }
}
