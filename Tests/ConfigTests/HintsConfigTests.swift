// `hints` (docs/DESIGN.md §6, rule 23): defaults, a connection's style and secret, and JSON-path problems.
import Foundation
import Testing
import Core
@testable import Config

@Suite("hints config")
struct HintsConfigTests {
    static func config(hints: String? = nil, connectionHints: String? = nil, http: Bool = true) -> String {
        """
        {"connections": [{"id": "gh", "provider": "github", "auth": {"type": "token", "token": {"env": "T"}},
                          \(connectionHints.map { "\"hints\": \($0)," } ?? "")
                          "objects": [{"name": "issues", "repository": "o/r"}]}]
         \(http ? #", "http": {"listen": "127.0.0.1:9464"}"# : "")
         \(hints.map { ", \"hints\": \($0)" } ?? "")}
        """
    }
    let env = ConfigEnvironment(variables: ["T": "token-value-123", "H": "hook-secret-0123456789abcdef",
                                            "SHORT": "short",
                                            "W": "whsec_" + Data((0..<32).map { UInt8($0) }).base64EncodedString()])

    @Test("defaults: served on http.listen, debounce 1s, 600 a minute; no connection hints")
    func defaults() throws {
        let config = try ConfigLoader.load(data: Data(Self.config().utf8), environment: env)
        #expect(config.hints == HintsConfig.defaults)
        #expect(config.hints.debounce == .seconds(1) && config.hints.maxPerMinute == 600 && config.hints.listen == nil)
        #expect(config.connections.first?.hints == nil)
    }

    @Test("keys override defaults; a connection's style and secret are read, and the secret is registered for redaction")
    func overrides() throws {
        let text = Self.config(hints: #"{"listen": "127.0.0.1:9465", "debounce": "250ms", "max_per_minute": 60}"#,
                               connectionHints: #"{"style": "github", "secret": {"env": "H"}}"#)
        let config = try ConfigLoader.load(data: Data(text.utf8), environment: env)
        #expect(config.hints.listen == HTTPListenConfig(host: "127.0.0.1", port: 9465))
        #expect(config.hints.debounce == .milliseconds(250) && config.hints.maxPerMinute == 60)
        #expect(config.connections.first?.hints?.style == .github)
        #expect(config.redactionTexts.contains("hook-secret-0123456789abcdef"))
        let standard = Self.config(connectionHints: #"{"style": "standard", "secret": {"env": "W"}}"#)
        #expect(try ConfigLoader.load(data: Data(standard.utf8), environment: env).connections.first?.hints?.style
                    == .standard)
    }

    @Test("every mistake is reported with its JSON path")
    func problemsHavePaths() {
        func found(_ text: String) -> [String] { problems(text, environment: env).map(\.description) }
        let bad = found(Self.config(hints: #"{"debounce": "1ms", "max_per_minute": 0, "listen": "nope", "debunce": "1s"}"#,
                                    connectionHints: #"{"style": "gitlab", "secret": {"env": "H"}}"#))
        #expect(bad.contains { $0.hasPrefix("hints.debounce:") }, "\(bad)")
        #expect(bad.contains { $0.hasPrefix("hints.max_per_minute:") }, "\(bad)")
        #expect(bad.contains { $0.hasPrefix("hints.listen:") }, "\(bad)")
        #expect(bad.contains { $0.hasPrefix("hints.debunce:") }, "\(bad)")
        #expect(bad.contains { $0.hasPrefix("connections[0].hints.style:") }, "\(bad)")
        // A standard-style secret must be whsec_; a short shared secret is refused; a plain string never echoed.
        let standard = found(Self.config(connectionHints: #"{"style": "standard", "secret": {"env": "H"}}"#))
        #expect(standard.contains { $0.hasPrefix("connections[0].hints.secret:") && $0.contains("whsec_") }, "\(standard)")
        let short = found(Self.config(connectionHints: #"{"style": "bearer", "secret": {"env": "SHORT"}}"#))
        #expect(short.contains { $0.hasPrefix("connections[0].hints.secret:") && $0.contains("16 bytes") }, "\(short)")
        let plain = found(Self.config(connectionHints: #"{"style": "bearer", "secret": "hunter2hunter2hunter2"}"#))
        #expect(plain.contains { $0.hasPrefix("connections[0].hints.secret:") } && !plain.joined().contains("hunter2"))
        // Hints need a listener.
        let deaf = found(Self.config(connectionHints: #"{"style": "github", "secret": {"env": "H"}}"#, http: false))
        #expect(deaf.contains { $0.hasPrefix("connections[0].hints:") && $0.contains("listener") }, "\(deaf)")
    }
}
