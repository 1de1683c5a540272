// How the store commands find a PostgreSQL store from an operator's shell (issue 14): the config's `store.url`
// secret reference is resolved by the CLI itself, `$DELTAHOOK_STORE_URL` wins over it, an unresolvable reference
// fails naming the reference and the fix (never a value), and `--state-directory` still means that SQLite file.
// No PostgreSQL server runs here: the URLs point at closed loopback ports, so opening fails at once and the
// message shows which URL was used (redacted).
import Foundation
import Testing

private let configPassword = "CFG-pw-do-not-print-5521"
private let overridePassword = "ENV-pw-do-not-print-9034"

@Suite("store commands against a configured PostgreSQL store", .serialized)
struct StoreLocationCLITests {
    private func writeConfig(in directory: ScratchDirectory) throws -> String {
        let path = directory.path + "/config.json"
        try """
            {"state_directory": "\(directory.path)",
             "store": {"backend": "postgres", "url": {"env": "DH_TEST_STORE_URL"}, "lease_ttl": "20s"},
             "connections": [], "subscribers": []}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("the outline resolves {\"env\": …}; DELTAHOOK_STORE_URL wins; the password is never printed")
    func resolvesReferenceAndOverride() throws {
        let directory = try ScratchDirectory("store-location")
        let config = try writeConfig(in: directory)
        let configured = "postgresql://dh:\(configPassword)@127.0.0.1:1/from_config"

        let fromConfig = try runDeltahook(["events", "list", "--config", config],
                                          environment: ["DH_TEST_STORE_URL": configured])
        #expect(fromConfig.status == 1)
        #expect(fromConfig.stderr.contains("cannot open the store postgresql://dh:***@127.0.0.1:1/from_config"),
                "\(fromConfig.stderr)")

        let overridden = try runDeltahook(
            ["status", "--json", "--config", config],
            environment: ["DH_TEST_STORE_URL": configured,
                          "DELTAHOOK_STORE_URL": "postgresql://ops:\(overridePassword)@127.0.0.1:2/from_env"])
        #expect(overridden.status == 1)
        let root = try #require(try JSONSerialization.jsonObject(with: Data(overridden.stdout.utf8)) as? [String: Any],
                                "\(overridden.stdout)")
        #expect(root["store"] as? String == "postgresql://ops:***@127.0.0.1:2/from_env")
        #expect((root["error"] as? String)?.contains("from_env") == true, "\(overridden.stdout)")
        for result in [fromConfig, overridden] {
            for secret in [configPassword, overridePassword] {
                #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret))
            }
        }
    }

    @Test("an unresolvable reference fails naming the reference and the fix, without the value")
    func unresolvableReference() throws {
        let directory = try ScratchDirectory("store-location-missing")
        let config = try writeConfig(in: directory)
        let result = try runDeltahook(["deliveries", "list", "--config", config])
        #expect(result.status == 1)
        #expect(result.stderr.contains("environment variable \"DH_TEST_STORE_URL\" is not set"), "\(result.stderr)")
        #expect(result.stderr.contains("DELTAHOOK_STORE_URL"), "names the fix: \(result.stderr)")

        let credential = directory.path + "/credential.json"
        try """
            {"store": {"backend": "postgres", "url": {"credential": "store-url"}}}
            """.write(toFile: credential, atomically: true, encoding: .utf8)
        let unreadable = try runDeltahook(["status", "--config", credential])
        #expect(unreadable.status == 1)
        #expect(unreadable.stderr.contains("credential \"store-url\""), "\(unreadable.stderr)")
    }

    @Test("--state-directory overrides a configured PostgreSQL store with that directory's SQLite file")
    func stateDirectoryOverride() throws {
        let directory = try ScratchDirectory("store-location-sqlite")
        let config = try writeConfig(in: directory)
        let result = try runDeltahook(["status", "--config", config, "--state-directory", directory.path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("no store at \(directory.path)/"), "\(result.stderr)")
    }
}
