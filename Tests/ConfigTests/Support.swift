import Foundation
import Config

/// A temporary directory removed when the value is released.
final class TemporaryDirectory {
    let path: String

    init() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-config-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        path = base.path
    }

    @discardableResult
    func write(_ name: String, _ contents: String) throws -> String {
        let file = path + "/" + name
        try contents.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum Fixtures {
    /// The repository's config.example.json, found relative to this file.
    static var examplePath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("config.example.json").path
    }

    static let exampleCredentials = ["snow-client-secret", "snow-refresh-token", "ns-consumer-key",
                                     "ns-consumer-secret", "ns-token-id", "ns-token-secret", "github-token",
                                     "orders-api-key", "zoho-client-secret", "zoho-refresh-token"]

    /// A distinctive value that must never appear in any message.
    static let distinctive = "Zq9-DISTINCTIVE-secret-4711"

    /// 32 bytes whose base64 contains the distinctive marker is impossible to arrange, so webhook secrets use
    /// this fixed key and tests scan for its base64 text.
    static let webhookSecret = "whsec_" + Data((0..<32).map { UInt8($0 * 7 % 251) }).base64EncodedString()

    /// A credentials directory with every secret config.example.json needs.
    static func exampleCredentialsDirectory() throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory()
        for name in exampleCredentials { try dir.write(name, "\(distinctive)-\(name)\n") }
        try dir.write("crm-webhook-secret", webhookSecret + "\n")
        return dir
    }

    static func environment(_ dir: TemporaryDirectory, variables: [String: String] = [:]) -> ConfigEnvironment {
        ConfigEnvironment(variables: variables, credentialsDirectory: dir.path)
    }
}

/// Validates `text`, returning the problems (empty when valid).
func problems(_ text: String, environment: ConfigEnvironment) -> [ConfigProblem] {
    do {
        _ = try ConfigLoader.load(data: Data(text.utf8), environment: environment)
        return []
    } catch {
        return error.problems
    }
}
