// `retention` (docs/DESIGN.md §6; issue 12 item 3): defaults, overrides, and JSON-path problems like every key.
import Foundation
import Testing
import Core
@testable import Config

@Suite("retention config")
struct RetentionConfigTests {
    static func config(_ retention: String?) -> String {
        """
        {"connections": [{"id": "gh", "provider": "github", "auth": {"type": "token", "token": {"env": "T"}},
                          "objects": [{"name": "issues", "repository": "o/r"}]}]
         \(retention.map { ", \"retention\": \($0)" } ?? "")}
        """
    }
    let env = ConfigEnvironment(variables: ["T": "token-value-123"])

    @Test("defaults: delivered 7d, failed 30d, tombstones 90d")
    func defaults() throws {
        let config = try ConfigLoader.load(data: Data(Self.config(nil).utf8), environment: env)
        #expect(config.retention == RetentionConfig.defaults)
        #expect(config.retention.delivered == .seconds(7 * 86_400) && config.retention.failed == .seconds(30 * 86_400))
        #expect(config.retention.tombstones == .seconds(90 * 86_400))
    }

    @Test("each key overrides its default; the others keep theirs")
    func overrides() throws {
        let text = Self.config(#"{"delivered": "1m", "tombstones": "365d"}"#)
        let config = try ConfigLoader.load(data: Data(text.utf8), environment: env)
        #expect(config.retention.delivered == .seconds(60))
        #expect(config.retention.failed == .seconds(30 * 86_400))
        #expect(config.retention.tombstones == .seconds(365 * 86_400))
    }

    @Test("every mistake is reported with its JSON path")
    func problemsHavePaths() {
        let text = Self.config(#"{"delivered": 7, "failed": "10s", "tombstones": "forever", "delivred": "1d"}"#)
        let found = problems(text, environment: env).map(\.description)
        #expect(found.contains { $0.hasPrefix("retention.delivered: 7 is a bare number") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("retention.failed: \"10s\" is too short; the minimum is \"1m\"") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("retention.tombstones: \"forever\" is not a duration") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("retention.delivred: unknown key") && $0.contains("delivered") }, "\(found)")
        #expect(problems(Self.config(#""7d""#), environment: env).map(\.description)
            .contains { $0.hasPrefix("retention:") }, "a string is not an object")
    }
}
