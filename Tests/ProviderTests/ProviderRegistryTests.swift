// The two provider registries (config schemas in Config, adapter factories in Providers) list the same
// providers, so a provider added to one and forgotten in the other fails here, not at run time.
import Testing
import Config
import Providers

@Suite struct ProviderRegistryTests {
    @Test func everySchemaHasExactlyOneAdapterFactory() {
        let schemas = Provider.allCases.map(\.rawValue)
        let factories = ProviderFactory.all.map(\.provider.rawValue)
        #expect(schemas.sorted() == factories.sorted())
        #expect(Set(factories).count == factories.count, "a provider has two adapter factories: \(factories)")
    }

    @Test func providerNamesRoundTrip() {
        for provider in Provider.allCases {
            #expect(Provider(rawValue: provider.rawValue) == provider)
            #expect(provider.defaultPageSize >= 1 && provider.defaultPageSize <= provider.maximumPageSize)
        }
        #expect(Provider(rawValue: "jira") == nil)
    }
}
