// Standard Webhooks v1 symmetric signatures (standardwebhooks.com, spec v1.0.0, docs/DESIGN.md §4), plus the
// GitHub-style `x-hub-signature-256` header some receivers expect. Pure functions over Crypto's primitives:
// no I/O, no Store/HTTP, so the dispatcher, the test receivers and the demo all share one implementation.
public import Foundation

/// Signing and verification of the `webhook-signature` header (Standard Webhooks spec v1.0.0).
public enum StandardWebhooks {
    /// The reference libraries' tolerance for `webhook-timestamp`, in both directions (5 minutes).
    public static let defaultTolerance: Duration = .seconds(300)

    /// Why a secret was rejected. Never contains the secret or any part of it.
    public enum SecretError: Error, Sendable, Equatable, CustomStringConvertible {
        case empty
        case notBase64
        case wrongLength(decodedBytes: Int)

        public var description: String {
            switch self {
            case .empty:
                "webhook secret is empty; expected whsec_<base64> (generate one with `deltahook secrets generate`)"
            case .notBase64:
                "webhook secret is not valid standard base64 after the whsec_ prefix"
            case .wrongLength(let n):
                "webhook secret decodes to \(n) bytes; Standard Webhooks requires 24 to 64 random bytes"
            }
        }
    }

    /// Why `sign` could not sign or `verify` rejected a request.
    public enum SignatureError: Error, Sendable, Equatable, CustomStringConvertible {
        case noSecrets
        case missingHeader(String)
        case invalidTimestamp
        case timestampTooOld(ageSeconds: Int64)
        case timestampInFuture(aheadSeconds: Int64)
        case noV1Signature
        case noMatchingSignature

        public var description: String {
            switch self {
            case .noSecrets: "no secret to verify the webhook-signature with"
            case .missingHeader(let name): "the request has no \(name) header"
            case .invalidTimestamp: "webhook-timestamp is not an integer number of Unix seconds"
            case .timestampTooOld(let s): "webhook-timestamp is \(s) s in the past, outside the tolerance"
            case .timestampInFuture(let s): "webhook-timestamp is \(s) s in the future, outside the tolerance"
            case .noV1Signature: "webhook-signature carries no v1,<base64> entry"
            case .noMatchingSignature: "no v1 signature in webhook-signature matches any secret"
            }
        }
    }

    /// A symmetric signing secret: `whsec_` + base64 of 24…64 random bytes (spec "Secret format").
    /// `description` is redacted so the secret cannot leak through string interpolation or logs.
    public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
        /// The decoded HMAC key bytes.
        public let key: [UInt8]
        /// The secret exactly as configured (trimmed); the key for `hubSignature256`.
        public let text: String

        /// Parses `whsec_<base64>`; like the reference libraries the `whsec_` prefix is optional.
        public init(_ text: String) throws(SecretError) {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { throw .empty }
            let encoded = trimmed.hasPrefix("whsec_") ? String(trimmed.dropFirst(6)) : trimmed
            guard !encoded.isEmpty else { throw .empty }
            guard let decoded = Data(base64Encoded: encoded) else { throw .notBase64 }
            guard (24...64).contains(decoded.count) else { throw .wrongLength(decodedBytes: decoded.count) }
            self.key = Array(decoded)
            self.text = trimmed
        }

        public var description: String { "whsec_<redacted>" }
        public var debugDescription: String { "StandardWebhooks.Secret(<redacted>)" }
    }

    /// A new secret, `whsec_` + base64 of 32 bytes from OpenSSL's CSPRNG (spec: 24…64 random bytes).
    public static func generateSecret() throws -> String {
        "whsec_" + Data(try SecureRandom.bytes(32)).base64EncodedString()
    }

    /// One `v1,<base64>` entry: base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) (spec "Signature scheme").
    public static func signature(id: String, timestamp: Int64, body: [UInt8], secret: Secret) -> String {
        "v1," + Data(mac(id: id, timestamp: timestamp, body: body, key: secret.key)).base64EncodedString()
    }

    /// The `webhook-signature` header value: one `v1,` entry per secret, space-separated, so receivers can
    /// rotate keys without downtime (spec "Signature header and rotation"). Throws if `secrets` is empty.
    public static func sign(id: String, timestamp: Int64, body: [UInt8], secrets: [Secret]) throws(SignatureError)
        -> String
    {
        guard !secrets.isEmpty else { throw .noSecrets }
        return secrets.map { signature(id: id, timestamp: timestamp, body: body, secret: $0) }.joined(separator: " ")
    }

    /// Verifies a request as the reference libraries do: timestamp within `tolerance` of `now` in both
    /// directions, then any `v1,` entry matching any secret (constant-time compare) accepts; other versions
    /// (`v1a`) are skipped.
    public static func verify(id: String, timestamp: String, signatureHeader: String, body: [UInt8],
                              secrets: [Secret], now: Date = Date(),
                              tolerance: Duration = defaultTolerance) throws(SignatureError)
    {
        guard !secrets.isEmpty else { throw .noSecrets }
        guard let ts = Int64(timestamp.trimmingCharacters(in: .whitespaces)) else { throw .invalidTimestamp }
        let nowSeconds = Int64(now.timeIntervalSince1970.rounded(.down))
        let limit = tolerance.components.seconds
        // Overflow-reporting subtraction: `webhook-timestamp: -9223372036854775808` must be refused, not trap
        // (docs/DESIGN.md §2 rule 12). A difference that does not fit is beyond any tolerance and saturates.
        let (age, overflow) = nowSeconds.subtractingReportingOverflow(ts)
        if overflow {
            if ts < nowSeconds { throw .timestampTooOld(ageSeconds: .max) }
            throw .timestampInFuture(aheadSeconds: .max)
        }
        if age > limit { throw .timestampTooOld(ageSeconds: age) }
        let ahead = age == .min ? Int64.max : -age
        if ahead > limit { throw .timestampInFuture(aheadSeconds: ahead) }

        let candidates: [[UInt8]] = signatureHeader.split(separator: " ", omittingEmptySubsequences: true).compactMap {
            entry in
            let parts = entry.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == "v1", let bytes = Data(base64Encoded: String(parts[1])) else {
                return nil
            }
            return Array(bytes)
        }
        guard !candidates.isEmpty else { throw .noV1Signature }
        var matched = false
        for secret in secrets {
            let expected = mac(id: id, timestamp: ts, body: body, key: secret.key)
            for candidate in candidates where ConstantTime.equals(expected, candidate) { matched = true }
        }
        guard matched else { throw .noMatchingSignature }
    }

    /// `verify` over a request's headers (names case-insensitive): reads `webhook-id`, `webhook-timestamp`
    /// and `webhook-signature` as the spec names them, and returns the verified `webhook-id`.
    @discardableResult
    public static func verify(headers: [String: String], body: [UInt8], secrets: [Secret], now: Date = Date(),
                              tolerance: Duration = defaultTolerance) throws(SignatureError) -> String
    {
        var lower = [String: String]()
        for (name, value) in headers { lower[name.lowercased()] = value }
        guard let id = lower["webhook-id"] else { throw .missingHeader("webhook-id") }
        guard let timestamp = lower["webhook-timestamp"] else { throw .missingHeader("webhook-timestamp") }
        guard let signature = lower["webhook-signature"] else { throw .missingHeader("webhook-signature") }
        try verify(id: id, timestamp: timestamp, signatureHeader: signature, body: body, secrets: secrets, now: now,
                   tolerance: tolerance)
        return id
    }

    /// GitHub-style `x-hub-signature-256` value: `sha256=` + hex(HMAC-SHA256(key, body)) (GitHub docs,
    /// "Validating webhook deliveries"). The key is the UTF-8 of the secret *as configured* (`whsec_…`),
    /// not its decoded bytes: GitHub-style receivers take the shared secret as a text string, so the
    /// operator pastes the same `whsec_…` text into them.
    public static func hubSignature256(body: [UInt8], secret: Secret) -> String {
        "sha256=" + HMAC.sha256(key: Array(secret.text.utf8), message: body).hexString
    }

    /// Checks an `x-hub-signature-256` header against `hubSignature256` in constant time.
    public static func verifyHubSignature256(header: String, body: [UInt8], secret: Secret) -> Bool {
        let expected = Array(hubSignature256(body: body, secret: secret).utf8)
        let given = Array(header.trimmingCharacters(in: .whitespaces).lowercased().utf8)
        return ConstantTime.equals(expected, given)
    }

    static func mac(id: String, timestamp: Int64, body: [UInt8], key: [UInt8]) -> [UInt8] {
        var message = Array("\(id).\(timestamp).".utf8)
        message.append(contentsOf: body)
        return HMAC.sha256(key: key, message: message)
    }
}
