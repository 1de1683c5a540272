// Issue 12 item 1 (docs/DESIGN.md §1): the one scrubber and the one URL redaction.
import Core
import Crypto
import Foundation
import Testing

@Suite("Secret scrubber and URL redaction (issue 12 item 1)")
struct SecretScrubberTests {
    @Test("item 1: configured secrets and runtime tokens are replaced wherever they appear, longest first")
    func scrubsSecretsAndRuntimeTokens() {
        let scrubber = SecretScrubber()
        scrubber.register("client-secret-1")
        scrubber.register("client-secret-1-longer")
        scrubber.register("abc")  // too short to scrub safely: ignored
        scrubber.registerRuntimeToken("access-token-xyz")
        let text = "401 {\"detail\":\"Bearer access-token-xyz\"} client-secret-1-longer client-secret-1 abc"
        #expect(scrubber.scrub(text) == "401 {\"detail\":\"Bearer <redacted>\"} <redacted> <redacted> abc")
    }

    @Test("item 1: only the newest runtime tokens are kept, configured secrets forever")
    func runtimeTokensAreBounded() {
        let scrubber = SecretScrubber()
        scrubber.register("configured-secret")
        for i in 0..<(SecretScrubber.runtimeTokenLimit + 10) { scrubber.registerRuntimeToken("token-\(i)-minted") }
        #expect(scrubber.count == SecretScrubber.runtimeTokenLimit + 1)
        #expect(scrubber.scrub("token-0-minted") == "token-0-minted")
        #expect(scrubber.scrub("token-265-minted configured-secret") == "<redacted> <redacted>")
    }

    @Test("item 1: a subscriber URL is shown as scheme://host[:port]/… wherever it appears")
    func subscriberURLsKeepTheirPathSecret() {
        let scrubber = SecretScrubber()
        let hook = "https://hooks.slack.com/services/T000/B000/XXXXsecret?x=1"
        scrubber.registerSubscriberURL(hook)
        #expect(scrubber.scrub("POST \(hook) failed") == "POST https://hooks.slack.com/… failed")
        #expect(scrubber.scrub("HTTP timeout error for https://hooks.slack.com/services/T000/B000/XXXXsecret")
            == "HTTP timeout error for https://hooks.slack.com/…")
        #expect(scrubber.scrub("echo: /services/T000/B000/XXXXsecret?x=1") == "echo: /…")
    }

    @Test("item 1: one URL redaction drops userinfo, query and fragment; subscriber URLs show no path")
    func urlRedaction() {
        #expect(URLRedaction.redact("https://user:pw@h.example:8443/p/a?token=s#frag") == "https://h.example:8443/p/a")
        #expect(URLRedaction.redact("http://h/x") == "http://h/x")
        #expect(URLRedaction.redact("/relative/next?cursor=secret") == "/relative/next")
        #expect(URLRedaction.redact("user:pass@host.example/x?q") == "host.example/x")
        #expect(URLRedaction.subscriber("http://user:pass@[::1]:8080/hook/SECRET?sig=s") == "http://[::1]:8080/…")
        #expect(URLRedaction.subscriber("https://example.com") == "https://example.com/")
        #expect(URLRedaction.subscriber("https://example.com/?token=t") == "https://example.com/…")
        #expect(URLRedaction.subscriber("/moved/here?x") == "/…")
    }

    @Test("item 1: metrics label values pass the scrubber")
    func metricsLabelsAreScrubbed() {
        let scrubber = SecretScrubber()
        scrubber.register("label-secret")
        let registry = MetricsRegistry(scrubber: scrubber)
        registry.declare("deltahook_test_total", kind: .counter, help: "test", labels: ["subscriber"])
        registry.increment("deltahook_test_total", labels: ["label-secret"])
        let text = registry.render()
        #expect(!text.contains("label-secret") && text.contains("subscriber=\"<redacted>\""), "\(text)")
    }

    @Test("item 1: a sealed value opens with its key only")
    func sealRoundTrip() throws {
        let key = HMAC.sha256(key: Array("client-secret".utf8), message: Array("context".utf8))
        let sealed = try Seal.seal(Array("rotated-refresh-token".utf8), key: key)
        #expect(!String(decoding: sealed, as: UTF8.self).contains("rotated-refresh-token"))
        #expect(String(decoding: try Seal.open(sealed, key: key), as: UTF8.self) == "rotated-refresh-token")
        var wrong = key
        wrong[0] ^= 1
        #expect(throws: CryptoError.self) { try Seal.open(sealed, key: wrong) }
        var altered = sealed
        altered[14] ^= 1
        #expect(throws: CryptoError.self) { try Seal.open(altered, key: key) }
    }
}
