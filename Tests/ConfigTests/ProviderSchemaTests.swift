// Invariants every provider schema must keep, so a new provider cannot shadow a shared key or forget `record`.
import Testing
@testable import Config

@Suite struct ProviderSchemaTests {
    /// Keys the generic walk (`Validator`) reads for every connection and object.
    static let sharedConnectionKeys = ["id", "provider", "base_url", "auth", "objects", "max_provider_wait",
                                       "max_clock_skew", "max_response_bytes", "budget"]
    static let sharedObjectKeys = ["name", "model", "interval", "lookback", "reconcile_every", "ignore_fields",
                                   "initial_sync", "page_size", "fields", "delete_guard", "max_pages_per_scan", "emit"]

    @Test func schemasDoNotRedeclareSharedKeys() {
        for schema in ProviderSchemas.all {
            let name = schema.provider.rawValue
            #expect(Set(schema.connectionKeys).isDisjoint(with: Self.sharedConnectionKeys), "\(name)")
            #expect(Set(schema.objectKeys).isDisjoint(with: Self.sharedObjectKeys), "\(name)")
            // `delete_feed` is declared exactly by the providers that have a feed.
            #expect(schema.objectKeys.contains("delete_feed") == schema.hasDeleteFeed, "\(name)")
        }
    }

    @Test func schemasAreWellFormed() {
        let names = ProviderSchemas.all.map(\.provider.rawValue)
        #expect(Set(names).count == names.count, "duplicate provider in ProviderSchemas.all: \(names)")
        for schema in ProviderSchemas.all {
            let name = schema.provider.rawValue
            #expect(schema.models.contains(.record), "\(name): `record` must always work")
            #expect(!schema.authKinds.isEmpty, "\(name)")
            let types = schema.authKinds.map(\.type)
            #expect(Set(types).count == types.count, "\(name): duplicate auth kind")
            #expect(schema.defaultPageSize >= 1 && schema.defaultPageSize <= schema.maximumPageSize, "\(name)")
        }
    }
}
