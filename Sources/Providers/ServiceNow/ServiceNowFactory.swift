// ServiceNow's adapter factory: one `ServiceNowClient` (auth, token cache, 429 backoff) per connection, one
// `ServiceNowSource` per object (table). Config schema: `Sources/Config/Providers/ServiceNowSchema.swift`.
public import Config
public import Core
public import HTTPClient
public import Logging
public import Foundation

struct ServiceNowFactory: ProviderAdapterFactory {
    var provider: Provider { .servicenow }

    func makeSources(for connection: ConnectionConfig, context: ProviderContext) throws -> [any ObjectSource] {
        try ProviderFactory.makeServiceNowSources(for: connection, transport: context.transport, logger: context.logger,
                                                  authState: context.authState)
    }
}

extension ProviderFactory {
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
            // The schema allows only ServiceNow's models; this maps the config name to the adapter's type.
            guard let model = ServiceNowModel(rawValue: object.model.rawValue) else {
                throw mismatch(connection, object, "ServiceNow model")
            }
            logger.debug("ServiceNow object configured", [.connection: connection.id, .object: object.name])
            return ServiceNowSource(client: client, table: object.name, model: model, fields: object.fields,
                                    ignoreFields: object.ignoreFields, auditDeletes: object.deleteFeed == .audit)
        }
    }
}
