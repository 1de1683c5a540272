// The generic REST provider's adapter factory: one `ProviderHTTP` per connection, one `RestSource` per object
// (its `request` description). Config schema: `Sources/Config/Providers/RestSchema.swift`.
public import Config
public import Core

public struct RestFactory: ProviderAdapterFactory {
    public init() {}

    public var provider: Provider { .rest }

    public func makeSources(for connection: ConnectionConfig, context: ProviderContext) throws -> [any ObjectSource] {
        let http = try ProviderFactory.providerHTTP(for: connection, context: context)
        return try connection.objects.map {
            try RestSource(connection: connection, object: $0, transport: context.transport, http: http)
        }
    }
}
