// GitHub App RS256 JWTs (docs/DESIGN.md §2 rule 11; GitHub docs "Generating a JWT for a GitHub App").
import Foundation
import Testing
import Crypto

@Suite struct JWTTests {
    // One key for the suite: RSA generation is the slow part.
    static let key: RSAKey? = try? RSAKey.generate(bits: 2048)
    static let now = Date(timeIntervalSince1970: 1_764_400_000)

    static func keys() throws -> (RSAKey, RSAKey) {
        let key = try #require(Self.key)
        return (key, try RSAKey.publicKey(pem: try key.publicKeyPEM()))
    }

    @Test func makeThenVerifyGivesGitHubsClaims() throws {
        let (privateKey, publicKey) = try Self.keys()
        let token = try GitHubAppJWT.make(appID: "Iv1.8a61f9b3a7aba766", privateKey: privateKey, now: Self.now)
        let claims = try GitHubAppJWT.verify(token, publicKey: publicKey, now: Self.now)
        let seconds = Int64(Self.now.timeIntervalSince1970)
        #expect(claims.issuer == "Iv1.8a61f9b3a7aba766")
        #expect(claims.issuedAt == seconds - 60)
        #expect(claims.expiresAt == seconds + 540)
        #expect(claims.expiresAt - claims.issuedAt <= 600)

        let segments = token.split(separator: ".").map(String.init)
        #expect(segments.count == 3)
        #expect(Base64URL.decode(segments[0]).map { String(decoding: $0, as: UTF8.self) } == #"{"alg":"RS256","typ":"JWT"}"#)
        #expect(!token.contains("=") && !token.contains("+") && !token.contains("/"))
    }

    @Test func tamperedPayloadFails() throws {
        let (privateKey, publicKey) = try Self.keys()
        let token = try GitHubAppJWT.make(appID: "12345", privateKey: privateKey, now: Self.now)
        var segments = token.split(separator: ".").map(String.init)
        let seconds = Int64(Self.now.timeIntervalSince1970)
        segments[1] = Base64URL.encode(Array(#"{"iat":\#(seconds - 60),"exp":\#(seconds + 540),"iss":"99999"}"#.utf8))
        #expect(throws: JWTError.badSignature) {
            try GitHubAppJWT.verify(segments.joined(separator: "."), publicKey: publicKey, now: Self.now)
        }
    }

    @Test func otherKeyFails() throws {
        let (privateKey, _) = try Self.keys()
        let token = try GitHubAppJWT.make(appID: "12345", privateKey: privateKey, now: Self.now)
        let stranger = try RSAKey.publicKey(pem: try RSAKey.generate(bits: 2048).publicKeyPEM())
        #expect(throws: JWTError.badSignature) { try GitHubAppJWT.verify(token, publicKey: stranger, now: Self.now) }
    }

    @Test func expiredFailsAndFutureIssuedFails() throws {
        let (privateKey, publicKey) = try Self.keys()
        let token = try GitHubAppJWT.make(appID: "12345", privateKey: privateKey, now: Self.now)
        let seconds = Int64(Self.now.timeIntervalSince1970)
        // Still valid one second before exp, expired at exp.
        _ = try GitHubAppJWT.verify(token, publicKey: publicKey, now: Self.now.addingTimeInterval(539))
        #expect(throws: JWTError.expired(exp: seconds + 540, now: seconds + 540)) {
            try GitHubAppJWT.verify(token, publicKey: publicKey, now: Self.now.addingTimeInterval(540))
        }
        // A verifier whose clock is behind the minting clock by more than the 60 s back-dating rejects iat.
        #expect(throws: JWTError.issuedInFuture(iat: seconds - 60, now: seconds - 61)) {
            try GitHubAppJWT.verify(token, publicKey: publicKey, now: Self.now.addingTimeInterval(-61))
        }
    }

    @Test func algorithmAndShapeAreEnforced() throws {
        let (privateKey, publicKey) = try Self.keys()
        let seconds = Int64(Self.now.timeIntervalSince1970)
        let payload = Base64URL.encode(Array(#"{"iat":\#(seconds - 60),"exp":\#(seconds + 540),"iss":12345}"#.utf8))
        func signed(header: String, payload: String) throws -> String {
            let input = Base64URL.encode(Array(header.utf8)) + "." + payload
            return input + "." + Base64URL.encode(try privateKey.signSHA256(Array(input.utf8)))
        }
        // Integer iss (older GitHub docs) is accepted and returned as text.
        let numeric = try signed(header: #"{"alg":"RS256","typ":"JWT"}"#, payload: payload)
        #expect(try GitHubAppJWT.verify(numeric, publicKey: publicKey, now: Self.now).issuer == "12345")

        #expect(throws: JWTError.unsupportedAlgorithm("none")) {
            try GitHubAppJWT.verify(try signed(header: #"{"alg":"none"}"#, payload: payload), publicKey: publicKey,
                                    now: Self.now)
        }
        #expect(throws: JWTError.unsupportedAlgorithm("HS256")) {
            try GitHubAppJWT.verify(try signed(header: #"{"alg":"HS256","typ":"JWT"}"#, payload: payload),
                                    publicKey: publicKey, now: Self.now)
        }
        let tooLong = Base64URL.encode(Array(#"{"iat":\#(seconds),"exp":\#(seconds + 601),"iss":"1"}"#.utf8))
        #expect(throws: JWTError.expiresTooFarInFuture(exp: seconds + 601, now: seconds)) {
            try GitHubAppJWT.verify(try signed(header: #"{"alg":"RS256"}"#, payload: tooLong), publicKey: publicKey,
                                    now: Self.now)
        }
        let noIss = Base64URL.encode(Array(#"{"iat":\#(seconds),"exp":\#(seconds + 60)}"#.utf8))
        #expect(throws: JWTError.missingClaim("iss")) {
            try GitHubAppJWT.verify(try signed(header: #"{"alg":"RS256"}"#, payload: noIss), publicKey: publicKey,
                                    now: Self.now)
        }
        for garbage in ["", "a.b", "a.b.c.d", "ey+J.eyJ.sig", numeric + "="] {
            #expect(throws: JWTError.self, "\(garbage)") {
                try GitHubAppJWT.verify(garbage, publicKey: publicKey, now: Self.now)
            }
        }
    }
}
