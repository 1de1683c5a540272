import Foundation
import Testing
import Config
import Core
import Logging

@Suite struct ConfigRedactionTests {
    /// The daemon registers `redactionTexts` with the logger; a secret that reaches a field by mistake is
    /// scrubbed before any sink sees it.
    @Test func configSecretsAreScrubbedFromLogs() throws {
        let dir = try Fixtures.exampleCredentialsDirectory()
        let config = try ConfigLoader.load(path: Fixtures.examplePath, environment: Fixtures.environment(dir))
        let redactions = SecretScrubber()
        redactions.register(contentsOf: config.redactionTexts)
        let sink = MemoryLogSink()
        let logger = Logger(level: .debug, sink: sink, scrubber: redactions)
        let token = try #require(config.connection(id: "octo-github")).auth.secrets[0]
        let webhookKey = String(Fixtures.webhookSecret.dropFirst(6))

        logger.warning("request failed", ["HEADER": "Authorization: Bearer \(token.unredactedValue)",
                                          "BODY": "key=\(webhookKey)", .connection: "octo-github"])
        logger.info("secret value", ["VALUE": "\(token)"])

        let record = try #require(sink.records.first)
        #expect(record.fields[0].value == "Authorization: Bearer <redacted>")
        #expect(record.fields[1].value == "key=<redacted>")
        #expect(record.fields[2].value == "octo-github")
        #expect(sink.records[1].fields[0].value == "<redacted>")
        for r in sink.records {
            for f in r.fields { #expect(!f.value.contains(Fixtures.distinctive)) }
        }
    }
}
