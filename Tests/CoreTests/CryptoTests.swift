// Known-answer tests for the libcrypto wrappers (Crypto.swift).
import Foundation
import Testing
@testable import Crypto

@Suite struct CryptoTests {
    @Test func sha256KnownVectors() {
        // FIPS 180-2 appendix B.1 ("abc") and the empty string.
        #expect(Digest.sha256(Array("abc".utf8)).hexString
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func reusableSHA256HasherMatchesOneShot() {
        let hasher = SHA256Hasher()
        // The same context, reused: FIPS 180-2 vectors, the empty input, then a multi-block message twice.
        #expect(hasher.hexHash(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hasher.hexHash([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(hasher.hexHash(long) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(hasher.hash(long) == Digest.sha256(long))
        let big = [UInt8](repeating: 0x61, count: 1000)
        #expect(hasher.hexHash(big) == Digest.sha256(big).hexString)
        #expect(hasher.hexHash(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func hmacSHA256RFC4231Case2() {
        let mac = HMAC.sha256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(mac.hexString == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func hmacWithEmptyKeyAndMessage() {
        // RFC 2104 allows an empty key; the wrapper must not pass a nil pointer to OpenSSL.
        #expect(HMAC.sha256(key: [UInt8](), message: [UInt8]()).hexString
            == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    @Test func constantTimeEquals() {
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        #expect(ConstantTime.equals([], []))
    }

    @Test func secureRandomGivesRequestedLengthAndVaries() throws {
        let a = try SecureRandom.bytes(32)
        let b = try SecureRandom.bytes(32)
        #expect(a.count == 32)
        #expect(a != b)
    }

    @Test func base64URLRoundTripWithoutPadding() {
        let bytes: [UInt8] = [0xFB, 0xFF, 0xBF, 0x00, 0x01]
        let text = Base64URL.encode(bytes)
        #expect(text == "-_-_AAE")
        #expect(Base64URL.decode(text).map(Array.init) == bytes)
    }

    @Test func rsaSignVerifyPEMRoundTripAndWrongKey() throws {
        let key = try RSAKey.generate(bits: 2048)
        let message = Array("header.payload".utf8)
        let signature = try key.signSHA256(message)
        #expect(signature.count == 256)

        let privatePEM = try key.privateKeyPEM()
        let publicPEM = try key.publicKeyPEM()
        #expect(privatePEM.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        #expect(publicPEM.hasPrefix("-----BEGIN PUBLIC KEY-----"))

        let reloaded = try RSAKey.privateKey(pem: privatePEM)
        let publicKey = try RSAKey.publicKey(pem: publicPEM)
        #expect(!publicKey.isPrivate)
        #expect(publicKey.verifySHA256(signature: signature, message: message))
        // PKCS#1 v1.5 is deterministic: the reloaded key signs identically.
        #expect(try reloaded.signSHA256(message) == signature)

        var tampered = message
        tampered[0] ^= 1
        #expect(!publicKey.verifySHA256(signature: signature, message: tampered))

        let other = try RSAKey.publicKey(pem: try RSAKey.generate(bits: 2048).publicKeyPEM())
        #expect(!other.verifySHA256(signature: signature, message: message))
        #expect(throws: CryptoError.self) { try publicKey.signSHA256(message) }
    }

    @Test func nonRSAKeysAreRefusedAtLoad() {
        // A throwaway P-256 key (generated for this test with `openssl ecparam`): loads as EVP_PKEY but is not RSA.
        let ecPrivate = """
            -----BEGIN PRIVATE KEY-----
            MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkmKjKzYAwmTWc/DS
            E2vFwn/1r9Xtf7ypttlkoM3VjjqhRANCAAQD7IdtivIlO0Z/TQJzjNjFdu62iOXP
            ctwpFlqBv5F8ySTautLC7N9EW40oyJSg4NzaUsYXmwm8fz3IHn8SahiD
            -----END PRIVATE KEY-----
            """
        let ecPublic = """
            -----BEGIN PUBLIC KEY-----
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5O2d8iDzQDfv17ctwIOFpHm4arJ6
            k5hzHZGtAqwtGTWGZxh0UiWPQC1cqfi/PHfUFxFXT5QZurIbXx0FKXBVzQ==
            -----END PUBLIC KEY-----
            """
        #expect(throws: CryptoError.self) { try RSAKey.privateKey(pem: ecPrivate) }
        #expect(throws: CryptoError.self) { try RSAKey.publicKey(pem: ecPublic) }
    }

    @Test func pemGarbageIsAnError() {
        #expect(throws: CryptoError.self) { try RSAKey.privateKey(pem: "-----BEGIN PRIVATE KEY-----\nnope\n") }
        #expect(throws: CryptoError.self) { try RSAKey.publicKey(pem: "") }
    }
}
