// Runs the built `deltahook` binary: `check-config` exit codes 0 / 78 / 64 and its output (docs/DESIGN.md §6, §7).
import Foundation
import Testing

/// The package root, found from this file's path.
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

private struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Nothing of this process's environment is inherited: no real credentials leak into the test.
private func deltahook(_ arguments: [String], environment: [String: String] = [:]) throws -> RunResult {
    let result = try runDeltahook(arguments, environment: environment)
    return RunResult(status: result.status, stdout: result.stdout, stderr: result.stderr)
}

private final class Credentials {
    let path: String
    static let secretMarker = "E2E-DISTINCTIVE-secret-0042"

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-e2e-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for name in ["snow-client-secret", "snow-refresh-token", "ns-consumer-key", "ns-consumer-secret", "ns-token-id",
                     "ns-token-secret", "github-token", "orders-api-key", "zoho-client-secret", "zoho-refresh-token"] {
            try "\(Credentials.secretMarker)-\(name)\n".write(toFile: "\(path)/\(name)", atomically: true, encoding: .utf8)
        }
        let key = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        try "whsec_\(key)\n".write(toFile: "\(path)/crm-webhook-secret", atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite struct CheckConfigCommandTests {
    let example = packageRoot.appendingPathComponent("config.example.json").path

    @Test func exampleConfigPassesWithItsSecrets() throws {
        let credentials = try Credentials()
        let result = try deltahook(["check-config", "--config", example], environment: ["CREDENTIALS_DIRECTORY": credentials.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "config OK: 5 connections, 1 subscribers\n")

        let json = try deltahook(["--config=\(example)", "check-config", "--json"], environment: ["CREDENTIALS_DIRECTORY": credentials.path])
        #expect(json.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["ok"] as? Bool == true)
        #expect(object?["connections"] as? Int == 5)
    }

    @Test func missingSecretsAndMistakesExit78WithEveryProblem() throws {
        let missing = try deltahook(["check-config", "--config", example])
        #expect(missing.status == 78)
        #expect(missing.stderr.contains("subscribers[0].secrets[0]: credential \"crm-webhook-secret\""))

        let credentials = try Credentials()
        let bad = credentials.path + "/bad.json"
        try """
            {"log_level": "loud",
             "connections": [{"id": "gh", "provider": "github", "auth": {"type": "token", "token": {"credential": "github-token"}},
                              "objects": [{"name": "issues", "repository": "o/r", "interval": "often"}]}],
             "subscribers": [{"id": "crm", "url": "https://h.example.com", "secrets": [{"credential": "github-token"}],
                              "connections": ["nope"], "evnets": ["*"]}]}
            """.write(toFile: bad, atomically: true, encoding: .utf8)
        let result = try deltahook(["check-config", "--config", bad], environment: ["CREDENTIALS_DIRECTORY": credentials.path])
        #expect(result.status == 78)
        #expect(result.stderr.contains("has 5 problems"), "\(result.stderr)")
        for path in ["log_level:", "connections[0].objects[0].interval:", "subscribers[0].secrets[0]:",
                     "subscribers[0].connections[0]:", "subscribers[0].evnets: unknown key; did you mean \"events\"?"] {
            #expect(result.stderr.contains(path), "missing \(path)")
        }
        #expect(!result.stderr.contains(Credentials.secretMarker))
        #expect(!result.stdout.contains(Credentials.secretMarker))

        let absent = try deltahook(["check-config", "--config", credentials.path + "/absent.json"])
        #expect(absent.status == 78)
        #expect(absent.stderr.contains("does not exist"))

        let malformed = credentials.path + "/malformed.json"
        try "{\n  \"log_level\": \"info\"\n  \"x\": 1\n}\n".write(toFile: malformed, atomically: true, encoding: .utf8)
        let syntax = try deltahook(["check-config", "--config", malformed])
        #expect(syntax.status == 78)
        #expect(syntax.stderr.contains("line 3, column 3"), "\(syntax.stderr)")
    }

    @Test func usageErrorsExit64() throws {
        let unknownFlag = try deltahook(["check-config", "--frobnicate"])
        #expect(unknownFlag.status == 64)
        #expect(unknownFlag.stderr.contains("unknown option --frobnicate"))
        #expect(unknownFlag.stderr.contains("usage: deltahook check-config"))
        #expect(try deltahook(["chek-config"]).stderr.contains("did you mean \"check-config\"?"))
        #expect(try deltahook(["chek-config"]).status == 64)
        #expect(try deltahook([]).status == 64)
        #expect(try deltahook(["check-config", "--config"]).status == 64)
        #expect(try deltahook(["version", "extra"]).status == 64)
    }

    @Test func helpAndVersion() throws {
        let help = try deltahook(["check-config", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.hasPrefix("usage: deltahook check-config"))
        let overview = try deltahook(["help"])
        #expect(overview.status == 0 && overview.stdout.contains("check-config"))
        let version = try deltahook(["version"])
        #expect(version.status == 0 && version.stdout.hasPrefix("deltahook "))
        #expect(try deltahook(["--version"]).stdout == version.stdout)
    }
}
