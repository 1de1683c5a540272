// The generic REST provider's adapter factory: one `ProviderHTTP` per connection, one `RestSource` per object
// (its `request` description). Config schema: `Sources/Config/Providers/RestSchema.swift`.
import Config
import Core
import HTTPClient
import Logging

struct RestFactory: ProviderAdapterFactory {
    var provider: Provider { .rest }

    func makeSources(for connection: ConnectionConfig, context: ProviderContext) throws -> [any ObjectSource] {
        let http = try ProviderFactory.providerHTTP(for: connection, transport: context.transport, logger: context.logger)
        return try connection.objects.map {
            try RestSource(connection: connection, object: $0, transport: context.transport, http: http)
        }
    }
}
