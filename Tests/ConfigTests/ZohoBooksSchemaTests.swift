// The Zoho Books config schema: derived URLs per data center, and every problem reported with its JSON path.
import Foundation
import Testing
@testable import Config

@Suite struct ZohoBooksSchemaTests {
    let env = ConfigEnvironment(variables: ["S": "client-secret-value", "R": "1000.refresh-value"])

    func config(_ connection: String) -> String {
        """
        {"connections": [{"id": "books", "provider": "zoho_books", \(connection)
          "auth": {"type": "oauth_refresh", "client_id": "1000.X", "client_secret": {"env": "S"}, "refresh_token": {"env": "R"}}}]}
        """
    }

    @Test func derivesAPIAndAccountsURLsFromTheDataCenter() throws {
        let eu = try ConfigLoader.load(data: Data(config(#""data_center": "eu", "organization_id": "10234695", "objects": [{"name": "invoices", "model": "invoice"}],"#).utf8),
                                       environment: env).connections[0]
        #expect(eu.baseURL.absoluteString == "https://www.zohoapis.eu/books/v3")
        #expect(eu.settings.zohoBooks?.accountsURL?.absoluteString == "https://accounts.zoho.eu")
        #expect(eu.objects[0].pageSize == 200)
        guard case .oauthRefresh(let clientID, let secret, let refresh) = eu.auth else { Issue.record("auth"); return }
        #expect(clientID == "1000.X" && secret.unredactedValue == "client-secret-value" && refresh.unredactedValue == "1000.refresh-value")
        let com = try ConfigLoader.load(data: Data(config(#""organization_id": 42, "objects": [{"name": "contacts", "model": "customer"}],"#).utf8),
                                        environment: env).connections[0]
        #expect(com.baseURL.absoluteString == "https://www.zohoapis.com/books/v3")
        #expect(com.settings.zohoBooks?.organizationID == "42")
        #expect(com.objects[0].settings.zohoBooks?.contactType == "customer")
        let ca = try ConfigLoader.load(data: Data(config(#""data_center": "ca", "organization_id": "1", "objects": [{"name": "bills"}],"#).utf8),
                                       environment: env).connections[0]
        #expect(ca.settings.zohoBooks?.accountsURL?.absoluteString == "https://accounts.zohocloud.ca")
        // An emulator: explicit base_url and accounts_url.
        let local = try ConfigLoader.load(data: Data(config(#""organization_id": "1", "base_url": "http://127.0.0.1:9/books/v3", "accounts_url": "http://127.0.0.1:9", "objects": [{"name": "items"}],"#).utf8),
                                          environment: env).connections[0]
        #expect(local.baseURL.absoluteString == "http://127.0.0.1:9/books/v3")
        #expect(local.settings.zohoBooks?.accountsURL?.absoluteString == "http://127.0.0.1:9")
    }

    @Test func problemsCarryTheirPaths() {
        let found = problems(config(#""data_center": "uk", "organization_id": "12ab", "objects": [{"name": "payments"}, {"name": "bills", "model": "invoice"}, {"name": "invoices", "model": "customer"}],"#),
                             environment: env)
        let paths = Set(found.map(\.path))
        #expect(paths.contains("connections[0].data_center"))
        #expect(paths.contains("connections[0].organization_id"))
        #expect(paths.contains("connections[0].objects[0].name"))
        #expect(paths.contains("connections[0].objects[1].model"))
        #expect(paths.contains("connections[0].objects[2].model"))
        let missing = problems(#"{"connections": [{"id": "b", "provider": "zoho_books", "objects": [{"name": "invoices"}], "auth": {"type": "oauth_refresh"}}]}"#,
                               environment: env)
        let missingPaths = Set(missing.map(\.path))
        #expect(missingPaths.contains("connections[0].organization_id"))
        #expect(missingPaths.contains("connections[0].auth.client_id"))
        #expect(missingPaths.contains("connections[0].auth.client_secret"))
        #expect(missingPaths.contains("connections[0].auth.refresh_token"))
    }
}
