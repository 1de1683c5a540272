// NetSuite's adapter factory: one `NetSuiteClient` per connection (its semaphore is the per-account concurrency
// limit, `max_concurrency`, shared by the cluster's nodes through the context's permits), one `NetSuiteSource` per
// object (SuiteQL table).
// Config schema: `Sources/Config/Providers/NetSuiteSchema.swift`.
public import Config
public import Core

public struct NetSuiteFactory: ProviderAdapterFactory {
    /// Client tuning (tests shorten waits); `max_concurrency` always comes from the connection.
    public var options: NetSuiteClient.Options

    public init(options: NetSuiteClient.Options = NetSuiteClient.Options()) { self.options = options }

    public var provider: Provider { .netsuite }

    public func makeSources(for connection: ConnectionConfig, context: ProviderContext) throws -> [any ObjectSource] {
        guard let settings = connection.settings.netsuite else {
            throw ProviderFactory.mismatch(connection, nil, "NetSuite connection")
        }
        guard case .netsuiteTBA(let consumerKey, let consumerSecret, let tokenID, let tokenSecret) = connection.auth else {
            throw ProviderFactory.mismatch(connection, nil, "NetSuite auth")
        }
        var clientOptions = options
        clientOptions.maxConcurrency = settings.maxConcurrency
        clientOptions.permits = context.permits
        let tokens = NetSuiteTokens(consumerKey: consumerKey.unredactedValue,
                                    consumerSecret: consumerSecret.unredactedValue,
                                    tokenID: tokenID.unredactedValue, tokenSecret: tokenSecret.unredactedValue)
        let client = NetSuiteClient(connection: connection.id, accountID: settings.accountID,
                                    baseURL: connection.baseURL.absoluteString, timeZone: settings.timeZone,
                                    tokens: tokens, transport: context.transport, options: clientOptions,
                                    http: try ProviderFactory.providerHTTP(for: connection, context: context))
        return try connection.objects.map { object in
            guard let objectSettings = object.settings.netsuite else {
                throw ProviderFactory.mismatch(connection, object, "NetSuite object")
            }
            context.logger.debug("NetSuite object configured", [.connection: connection.id, .object: object.name])
            return NetSuiteSource(client: client, object: object.name, model: object.model.rawValue,
                                  recordType: objectSettings.recordType, fields: object.fields,
                                  usesDeleteFeed: object.deleteFeed == .audit, ignoreFields: object.ignoreFields)
        }
    }
}
