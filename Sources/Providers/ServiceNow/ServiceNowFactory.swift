// ServiceNow's adapter factory: one `ServiceNowClient` (auth, token cache, 429 backoff) per connection, one
// `ServiceNowSource` per object (table). Config schema: `Sources/Config/Providers/ServiceNowSchema.swift`.
public import Config
public import Core
public import Foundation

public struct ServiceNowFactory: ProviderAdapterFactory {
    /// The clock OAuth token expiry is judged by (tests pin it).
    public var clock: @Sendable () -> Date

    public init(clock: @escaping @Sendable () -> Date = { Date() }) { self.clock = clock }

    public var provider: Provider { .servicenow }

    public func makeSources(for connection: ConnectionConfig, context: ProviderContext) throws -> [any ObjectSource] {
        var base = connection.baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        let http = try ProviderFactory.providerHTTP(for: connection, context: context)
        let authenticator = try ServiceNowAuthenticator(auth: connection.auth, baseURL: base, http: http, now: clock,
                                                        authState: context.authState)
        let client = ServiceNowClient(http: http, baseURL: base, authenticator: authenticator)
        return try connection.objects.map { object in
            // The schema allows only ServiceNow's models; this maps the config name to the adapter's type.
            guard let model = ServiceNowModel(rawValue: object.model.rawValue) else {
                throw ProviderFactory.mismatch(connection, object, "ServiceNow model")
            }
            context.logger.debug("ServiceNow object configured", [.connection: connection.id, .object: object.name])
            return ServiceNowSource(client: client, table: object.name, model: model, fields: object.fields,
                                    ignoreFields: object.ignoreFields, auditDeletes: object.deleteFeed == .audit)
        }
    }
}
