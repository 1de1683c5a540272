// RS256 JSON Web Tokens for GitHub App authentication (RFC 7519 / RFC 7515; GitHub docs "Generating a JSON
// Web Token (JWT) for a GitHub App"; provider-wire-facts §3.6). The daemon mints them; the GitHub emulator
// verifies them the way GitHub does, so a wrong claim fails in tests rather than against github.com.
public import Foundation

/// Why a GitHub App JWT was rejected. Messages follow GitHub's own 401 texts where one exists.
public enum JWTError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case unsupportedAlgorithm(String)
    case badSignature
    case missingClaim(String)
    case expired(exp: Int64, now: Int64)
    case issuedInFuture(iat: Int64, now: Int64)
    case expiresTooFarInFuture(exp: Int64, now: Int64)

    public var description: String {
        switch self {
        case .malformed(let why): "A JSON web token could not be decoded: \(why)"
        case .unsupportedAlgorithm(let alg): "JWT alg \(alg) is not accepted; GitHub Apps use RS256"
        case .badSignature: "JWT signature does not verify with the App's public key"
        case .missingClaim(let name): "JWT lacks the numeric/string claim '\(name)'"
        case .expired(let exp, let now):
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires (exp \(exp), now \(now))"
        case .issuedInFuture(let iat, let now):
            "'Issued at' claim ('iat') is in the future (iat \(iat), now \(now)); check the clock"
        case .expiresTooFarInFuture(let exp, let now):
            "'Expiration time' claim ('exp') is too far in the future (exp \(exp), now \(now); at most 10 minutes)"
        }
    }
}

/// GitHub App JWTs: `{"alg":"RS256","typ":"JWT"}` with `iat`, `exp`, `iss` (GitHub docs, "Generating a JWT").
public enum GitHubAppJWT {
    /// The claims GitHub reads.
    public struct Claims: Sendable, Equatable {
        public var issuedAt: Int64
        public var expiresAt: Int64
        /// App ID or client ID (GitHub now recommends the client ID); an integer `iss` is returned as text.
        public var issuer: String
    }

    /// GitHub rejects an `exp` more than 10 minutes ahead.
    public static let maximumLifetime: Int64 = 600

    /// Signs a JWT: iat = now − 60 s (GitHub's advice against clock drift), exp = now + 9 min, iss = appID.
    public static func make(appID: String, privateKey: RSAKey, now: Date = Date()) throws -> String {
        let seconds = Int64(now.timeIntervalSince1970.rounded(.down))
        let header = #"{"alg":"RS256","typ":"JWT"}"#
        let payload = #"{"iat":\#(seconds - 60),"exp":\#(seconds + 540),"iss":\#(jsonString(appID))}"#
        let signingInput = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        let signature = try privateKey.signSHA256(Array(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(signature)
    }

    /// Verifies as GitHub does (RFC 7515 §5.2 + GitHub's bounds): alg RS256, signature with `publicKey`,
    /// exp > now, iat ≤ now + leeway, exp ≤ now + 10 min + leeway. Returns the claims.
    public static func verify(_ token: String, publicKey: RSAKey, now: Date = Date(),
                              leewaySeconds: Int64 = 0) throws(JWTError) -> Claims
    {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed("expected three dot-separated segments") }
        guard let headerData = decodeSegment(parts[0]), let payloadData = decodeSegment(parts[1]),
              let signature = decodeSegment(parts[2]) else { throw .malformed("a segment is not base64url") }
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw .malformed("the header is not a JSON object")
        }
        let alg = header["alg"] as? String ?? "(none)"
        guard alg == "RS256" else { throw .unsupportedAlgorithm(alg) }
        if let typ = header["typ"], (typ as? String)?.uppercased() != "JWT" {
            throw .malformed("typ is not JWT")
        }
        let signingInput = Array(parts[0].utf8) + [UInt8(ascii: ".")] + Array(parts[1].utf8)
        guard publicKey.verifySHA256(signature: Array(signature), message: signingInput) else { throw .badSignature }
        guard let claims = (try? JSONSerialization.jsonObject(with: payloadData)) as? [String: Any] else {
            throw .malformed("the payload is not a JSON object")
        }
        guard let iat = integer(claims["iat"]) else { throw .missingClaim("iat") }
        guard let exp = integer(claims["exp"]) else { throw .missingClaim("exp") }
        let issuer: String
        if let s = claims["iss"] as? String {
            issuer = s
        } else if let n = integer(claims["iss"]) {
            issuer = String(n)
        } else {
            throw .missingClaim("iss")
        }
        let nowSeconds = Int64(now.timeIntervalSince1970.rounded(.down))
        guard exp + leewaySeconds > nowSeconds else { throw .expired(exp: exp, now: nowSeconds) }
        guard iat <= nowSeconds + leewaySeconds else { throw .issuedInFuture(iat: iat, now: nowSeconds) }
        guard exp <= nowSeconds + maximumLifetime + leewaySeconds else {
            throw .expiresTooFarInFuture(exp: exp, now: nowSeconds)
        }
        return Claims(issuedAt: iat, expiresAt: exp, issuer: issuer)
    }

    /// Strict base64url (RFC 7515 §2): only `A-Za-z0-9-_`, no padding.
    static func decodeSegment(_ segment: Substring) -> Data? {
        let valid = segment.utf8.allSatisfy { b in
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
        }
        guard valid, !segment.isEmpty else { return nil }
        return Base64URL.decode(String(segment))
    }

    /// A JSON number that is an exact integer (JSONSerialization yields NSNumber).
    static func integer(_ value: Any?) -> Int64? {
        guard let number = value as? NSNumber else { return nil }
        let double = number.doubleValue
        guard double.rounded() == double, abs(double) < 9.0e15 else { return nil }
        return number.int64Value
    }

    /// Minimal JSON string literal for the `iss` claim.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
