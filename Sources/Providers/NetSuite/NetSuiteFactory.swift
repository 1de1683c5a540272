// NetSuite's adapter factory: one `NetSuiteClient` per connection (its semaphore is the per-account concurrency
// limit, `max_concurrency`), one `NetSuiteSource` per object (SuiteQL table).
// Config schema: `Sources/Config/Providers/NetSuiteSchema.swift`.
public import Config
public import Core
public import HTTPClient
public import Logging
import Foundation

struct NetSuiteFactory: ProviderAdapterFactory {
    var provider: Provider { .netsuite }

    func makeSources(for connection: ConnectionConfig, context: ProviderContext) throws -> [any ObjectSource] {
        try ProviderFactory.makeNetSuiteSources(for: connection, transport: context.transport, logger: context.logger)
    }
}

extension ProviderFactory {
    /// NetSuite: one `NetSuiteClient` per connection (its semaphore is the per-account concurrency limit,
    /// `max_concurrency`), one `NetSuiteSource` per object (SuiteQL table).
    public static func makeNetSuiteSources(for connection: ConnectionConfig, transport: any HTTPTransport,
                                           logger: Logger, options: NetSuiteClient.Options? = nil) throws
        -> [any ObjectSource]
    {
        guard let settings = connection.settings.netsuite else { throw mismatch(connection, nil, "NetSuite connection") }
        guard case .netsuiteTBA(let consumerKey, let consumerSecret, let tokenID, let tokenSecret) = connection.auth else {
            throw mismatch(connection, nil, "NetSuite auth")
        }
        var clientOptions = options ?? NetSuiteClient.Options()
        clientOptions.maxConcurrency = settings.maxConcurrency
        let client = NetSuiteClient(connection: connection.id, accountID: settings.accountID,
                                    baseURL: connection.baseURL.absoluteString, timeZone: settings.timeZone,
                                    tokens: NetSuiteTokens(consumerKey: consumerKey.unredactedValue,
                                                           consumerSecret: consumerSecret.unredactedValue,
                                                           tokenID: tokenID.unredactedValue,
                                                           tokenSecret: tokenSecret.unredactedValue),
                                    transport: transport, options: clientOptions,
                                    http: try providerHTTP(for: connection, transport: transport, logger: logger))
        return try connection.objects.map { object in
            guard let objectSettings = object.settings.netsuite else {
                throw mismatch(connection, object, "NetSuite object")
            }
            logger.debug("NetSuite object configured", [.connection: connection.id, .object: object.name])
            return NetSuiteSource(client: client, object: object.name, model: object.model.rawValue,
                                  recordType: objectSettings.recordType, fields: object.fields,
                                  usesDeleteFeed: object.deleteFeed == .audit, ignoreFields: object.ignoreFields)
        }
    }
}
