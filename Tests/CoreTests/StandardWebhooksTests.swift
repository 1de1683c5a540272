// Standard Webhooks signatures (docs/DESIGN.md §4; standardwebhooks.com spec v1.0.0).
import Foundation
import Testing
import Crypto

@Suite struct StandardWebhooksTests {
    // Spec vector from the reference Go library (webhook_test.go::TestWebhookSign).
    static let secretText = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    static let timestamp: Int64 = 1_614_265_330
    static let body = Array(#"{"test": 2432232314}"#.utf8)
    static let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    static let at = Date(timeIntervalSince1970: 1_614_265_330)

    @Test func specVector() throws {
        let secret = try StandardWebhooks.Secret(Self.secretText)
        #expect(secret.key.count == 24)
        #expect(try StandardWebhooks.sign(id: Self.id, timestamp: Self.timestamp, body: Self.body, secrets: [secret])
            == Self.expected)
    }

    @Test func prefixIsOptionalLikeTheReferenceLibraries() throws {
        let bare = try StandardWebhooks.Secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        #expect(StandardWebhooks.signature(id: Self.id, timestamp: Self.timestamp, body: Self.body, secret: bare)
            == Self.expected)
    }

    @Test func rotationSignsWithEverySecretSpaceSeparated() throws {
        let old = try StandardWebhooks.Secret(Self.secretText)
        let new = try StandardWebhooks.Secret(try StandardWebhooks.generateSecret())
        let header = try StandardWebhooks.sign(id: Self.id, timestamp: Self.timestamp, body: Self.body,
                                               secrets: [new, old])
        let entries = header.split(separator: " ").map(String.init)
        #expect(entries.count == 2)
        #expect(entries[1] == Self.expected)
        #expect(entries[0].hasPrefix("v1,") && entries[0] != Self.expected)
        // A receiver that knows only one of the two secrets accepts.
        for secret in [old, new] {
            try StandardWebhooks.verify(id: Self.id, timestamp: "1614265330", signatureHeader: header,
                                        body: Self.body, secrets: [secret], now: Self.at)
        }
    }

    @Test func signWithoutSecretsIsAnError() {
        #expect(throws: StandardWebhooks.SignatureError.noSecrets) {
            try StandardWebhooks.sign(id: "a", timestamp: 1, body: [], secrets: [])
        }
    }

    @Test func secretValidationAndRedaction() throws {
        #expect(throws: StandardWebhooks.SecretError.empty) { try StandardWebhooks.Secret("  ") }
        #expect(throws: StandardWebhooks.SecretError.empty) { try StandardWebhooks.Secret("whsec_") }
        #expect(throws: StandardWebhooks.SecretError.notBase64) { try StandardWebhooks.Secret("whsec_not base64!!") }
        let short = "whsec_" + Data(repeating: 7, count: 23).base64EncodedString()
        let long = "whsec_" + Data(repeating: 7, count: 65).base64EncodedString()
        #expect(throws: StandardWebhooks.SecretError.wrongLength(decodedBytes: 23)) { try StandardWebhooks.Secret(short) }
        #expect(throws: StandardWebhooks.SecretError.wrongLength(decodedBytes: 65)) { try StandardWebhooks.Secret(long) }
        _ = try StandardWebhooks.Secret("whsec_" + Data(repeating: 7, count: 64).base64EncodedString())

        // Errors and descriptions never carry the secret.
        do {
            _ = try StandardWebhooks.Secret(short)
        } catch {
            #expect(!error.description.contains(String(short.dropFirst(6).prefix(8))))
        }
        let secret = try StandardWebhooks.Secret(Self.secretText)
        #expect(!"\(secret)".contains("MfKQ"))
        #expect(!String(reflecting: secret).contains("MfKQ"))
    }

    @Test func generatedSecretsAre32RandomBytes() throws {
        let a = try StandardWebhooks.generateSecret()
        let b = try StandardWebhooks.generateSecret()
        #expect(a.hasPrefix("whsec_"))
        #expect(a != b)
        #expect(try StandardWebhooks.Secret(a).key.count == 32)
    }

    @Test func verifyRejectsTamperingAndWrongSecret() throws {
        let secret = try StandardWebhooks.Secret(Self.secretText)
        let other = try StandardWebhooks.Secret(try StandardWebhooks.generateSecret())
        func check(_ id: String, _ ts: String, _ header: String, _ body: [UInt8], _ secrets: [StandardWebhooks.Secret])
            throws
        {
            try StandardWebhooks.verify(id: id, timestamp: ts, signatureHeader: header, body: body, secrets: secrets,
                                        now: Self.at)
        }
        try check(Self.id, "1614265330", Self.expected, Self.body, [secret])
        #expect(throws: StandardWebhooks.SignatureError.noMatchingSignature) {
            try check(Self.id, "1614265330", Self.expected, Array(#"{"test": 2432232315}"#.utf8), [secret])
        }
        #expect(throws: StandardWebhooks.SignatureError.noMatchingSignature) {
            try check("msg_other", "1614265330", Self.expected, Self.body, [secret])
        }
        #expect(throws: StandardWebhooks.SignatureError.noMatchingSignature) {
            try check(Self.id, "1614265331", Self.expected, Self.body, [secret])
        }
        #expect(throws: StandardWebhooks.SignatureError.noMatchingSignature) {
            try check(Self.id, "1614265330", Self.expected, Self.body, [other])
        }
        // v1a (asymmetric) entries are skipped, like the reference libraries do; a v1 one later still counts.
        #expect(throws: StandardWebhooks.SignatureError.noV1Signature) {
            try check(Self.id, "1614265330", "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", Self.body, [secret])
        }
        try check(Self.id, "1614265330", "v1a,AAAA v1,AAAA " + Self.expected, Self.body, [secret])
        #expect(throws: StandardWebhooks.SignatureError.invalidTimestamp) {
            try check(Self.id, "soon", Self.expected, Self.body, [secret])
        }
        #expect(throws: StandardWebhooks.SignatureError.noSecrets) {
            try check(Self.id, "1614265330", Self.expected, Self.body, [])
        }
    }

    @Test func timestampToleranceAppliesInBothDirections() throws {
        let secret = try StandardWebhooks.Secret(Self.secretText)
        func verify(now offset: Double) throws {
            try StandardWebhooks.verify(id: Self.id, timestamp: "1614265330", signatureHeader: Self.expected,
                                        body: Self.body, secrets: [secret], now: Self.at.addingTimeInterval(offset),
                                        tolerance: .seconds(300))
        }
        try verify(now: 300)
        try verify(now: -300)
        #expect(throws: StandardWebhooks.SignatureError.timestampTooOld(ageSeconds: 301)) { try verify(now: 301) }
        #expect(throws: StandardWebhooks.SignatureError.timestampInFuture(aheadSeconds: 301)) { try verify(now: -301) }
    }

    @Test func verifyFromHeadersIsCaseInsensitiveAndNamesTheMissingHeader() throws {
        let secret = try StandardWebhooks.Secret(Self.secretText)
        let headers = ["Webhook-Id": Self.id, "WEBHOOK-TIMESTAMP": "1614265330", "webhook-signature": Self.expected]
        #expect(try StandardWebhooks.verify(headers: headers, body: Self.body, secrets: [secret], now: Self.at) == Self.id)
        var missing = headers
        missing["WEBHOOK-TIMESTAMP"] = nil
        #expect(throws: StandardWebhooks.SignatureError.missingHeader("webhook-timestamp")) {
            try StandardWebhooks.verify(headers: missing, body: Self.body, secrets: [secret], now: Self.at)
        }
    }

    @Test func hubSignatureUsesTheSecretTextAsKey() throws {
        let secret = try StandardWebhooks.Secret(Self.secretText)
        // Recomputed independently: Python hmac.new(b"whsec_MfKQ…", body, sha256).hexdigest().
        let expected = "sha256=80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c"
        #expect(StandardWebhooks.hubSignature256(body: Self.body, secret: secret) == expected)
        #expect(StandardWebhooks.verifyHubSignature256(header: expected, body: Self.body, secret: secret))
        #expect(StandardWebhooks.verifyHubSignature256(header: expected.uppercased(), body: Self.body, secret: secret))
        #expect(!StandardWebhooks.verifyHubSignature256(header: expected, body: Self.body + [0x20], secret: secret))
        #expect(!StandardWebhooks.verifyHubSignature256(header: "sha1=abc", body: Self.body, secret: secret))
    }
}
