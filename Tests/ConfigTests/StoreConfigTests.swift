// `store` (docs/DESIGN.md §6 `store`, rules 19–21): the default, a PostgreSQL URL as a secret, and absurd values
// refused with their JSON paths — never echoing the URL, which may carry a password.
import Foundation
import Testing
import Core
@testable import Config

@Suite("store config")
struct StoreConfigTests {
    static func config(_ store: String?) -> String {
        """
        {"connections": [{"id": "gh", "provider": "github", "auth": {"type": "token", "token": {"env": "T"}},
                          "objects": [{"name": "issues", "repository": "o/r"}]}]
         \(store.map { ", \"store\": \($0)" } ?? "")}
        """
    }
    static let url = "postgresql://deltahook:pa55-Zq9-DISTINCTIVE@db.internal:5432/deltahook"
    let env = ConfigEnvironment(variables: ["T": "token-value-123", "PG": StoreConfigTests.url, "NOTPG": "pa55-Zq9-DISTINCTIVE"])

    @Test("default: SQLite, 30 s leases; a PostgreSQL URL is a secret whose password is redacted on its own too")
    func defaultsAndPostgres() throws {
        #expect(try ConfigLoader.load(data: Data(Self.config(nil).utf8), environment: env).store == .defaults)
        let text = Self.config(#"{"backend": "postgres", "url": {"env": "PG"}, "lease_ttl": "10s", "node_id": "a", "pool_size": 2}"#)
        let config = try ConfigLoader.load(data: Data(text.utf8), environment: env)
        #expect(config.store.leaseTTL == .seconds(10) && config.store.nodeID == "a" && config.store.poolSize == 2)
        #expect(config.redactionTexts.contains("pa55-Zq9-DISTINCTIVE"))
    }

    @Test("absurd values are refused with their JSON paths and the URL never appears")
    func absurdValues() {
        let cases = [
            (#"{"backend": "mysql"}"#, "store.backend"),
            (#"{"backend": "postgres", "url": "postgresql://u:pw@h/db"}"#, "store.url"),
            (#"{"backend": "postgres", "url": {"env": "NOTPG"}}"#, "store.url"),
            (#"{"backend": "postgres"}"#, "store.url"),
            (#"{"url": {"env": "PG"}}"#, "store.url"),
            (#"{"lease_ttl": "1s"}"#, "store.lease_ttl"),
            (#"{"lease_ttl": "2h"}"#, "store.lease_ttl"),
            (#"{"pool_size": 0}"#, "store.pool_size"),
            (#"{"pool_size": 100000}"#, "store.pool_size"),
            (#"{"node_id": "../etc"}"#, "store.node_id"),
            (#"{"nodes": 3}"#, "store.nodes"),
        ]
        for (store, path) in cases {
            let found = problems(Self.config(store), environment: env).map(\.description)
            #expect(found.contains { $0.hasPrefix(path) }, "\(store): \(found)")
            #expect(!found.joined().contains("pa55-Zq9-DISTINCTIVE") && !found.joined().contains(":pw@"), "\(found)")
        }
    }
}
