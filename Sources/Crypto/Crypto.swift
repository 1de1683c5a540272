// Thin, typed access to libcrypto (OpenSSL). deltahook never implements a primitive itself:
// every hash, MAC, signature and random byte comes from here.
internal import COpenSSL
public import Foundation

/// Errors from libcrypto, with OpenSSL's own reason string.
public struct CryptoError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let reason: String
    public var description: String { "crypto: \(operation) failed: \(reason)" }

    static func fromOpenSSL(_ operation: String) -> CryptoError {
        let code = ERR_get_error()
        guard code != 0 else { return CryptoError(operation: operation, reason: "unknown OpenSSL error") }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        ERR_clear_error()
        return CryptoError(operation: operation, reason: String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
}

public enum Digest {
    /// SHA-256 of `data` (32 bytes).
    public static func sha256<D: DataProtocol>(_ data: D) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let bytes = Array(data)
        let ok = bytes.withUnsafeBytes { raw in
            EVP_Digest(raw.baseAddress, raw.count, &out, &length, EVP_sha256(), nil)
        }
        precondition(ok == 1, "EVP_Digest(SHA-256) cannot fail on valid input")
        return Array(out.prefix(Int(length)))
    }

    /// Lower-case hex SHA-256 of a UTF-8 string.
    public static func sha256Hex(_ string: String) -> String {
        sha256(Array(string.utf8)).hexString
    }
}

/// A SHA-256 context set up once and reused for many messages. A one-shot `EVP_Digest` allocates a context and,
/// under OpenSSL 3, looks the SHA-256 implementation up again on every call (the "implicit fetch" of
/// `EVP_sha256()`, see OpenSSL's migration guide, "Fetching algorithms"); for the differ, which hashes every
/// record it reads, that set-up cost more than hashing a few hundred bytes.
///
/// Not `Sendable` and not thread-safe: use one per thread or task.
public final class SHA256Hasher {
    private let algorithm: OpaquePointer
    private let context: OpaquePointer
    private static let hexDigits = Array("0123456789abcdef".utf8)

    public init() {
        let fetched = EVP_MD_fetch(nil, "SHA256", nil)
        let context = EVP_MD_CTX_new()
        guard let fetched, let context else {
            EVP_MD_free(fetched)
            EVP_MD_CTX_free(context)
            preconditionFailure("OpenSSL could not set up SHA-256 (out of memory or no default provider)")
        }
        algorithm = fetched
        self.context = context
    }

    deinit {
        EVP_MD_CTX_free(context)
        EVP_MD_free(algorithm)
    }

    /// SHA-256 of `bytes` (32 bytes); equal to ``Digest/sha256(_:)``.
    public func hash(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { digest(bytes, into: $0) }
        return out
    }

    /// Lower-case hex SHA-256 of `bytes` (64 characters); equal to `Digest.sha256(bytes).hexString`.
    public func hexHash(_ bytes: [UInt8]) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { raw in
            digest(bytes, into: raw)
            let digits = Self.hexDigits
            return String(unsafeUninitializedCapacity: 64) { text in
                for (i, byte) in raw.enumerated() {
                    text[2 * i] = digits[Int(byte >> 4)]
                    text[2 * i + 1] = digits[Int(byte & 0x0f)]
                }
                return 64
            }
        }
    }

    private func digest(_ bytes: [UInt8], into out: UnsafeMutableBufferPointer<UInt8>) {
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { raw in
            EVP_DigestInit_ex2(context, algorithm, nil) == 1
                && EVP_DigestUpdate(context, raw.baseAddress, raw.count) == 1
                && EVP_DigestFinal_ex(context, out.baseAddress, &length) == 1
        }
        precondition(ok && length == 32, "SHA-256 cannot fail on valid input")
    }
}

public enum HMAC {
    /// HMAC-SHA256(key, message): 32 bytes.
    public static func sha256<K: DataProtocol, M: DataProtocol>(key: K, message: M) -> [UInt8] {
        let keyBytes = Array(key)
        let messageBytes = Array(message)
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let result = keyBytes.withUnsafeBytes { k in
            messageBytes.withUnsafeBytes { m in
                COpenSSL.HMAC(EVP_sha256(), k.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(k.count),
                              m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count, &out, &length)
            }
        }
        precondition(result != nil, "HMAC-SHA256 cannot fail on valid input")
        return Array(out.prefix(Int(length)))
    }
}

public enum SecureRandom {
    /// `count` bytes from OpenSSL's CSPRNG.
    public static func bytes(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&out, Int32(count)) == 1 else { throw CryptoError.fromOpenSSL("RAND_bytes") }
        return out
    }
}

public enum ConstantTime {
    /// Compares two byte strings without an early exit on the first difference.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }
}

/// An RSA key loaded from PEM. Used for GitHub App JWTs (RS256 = RSASSA-PKCS1-v1_5 with SHA-256).
public final class RSAKey: @unchecked Sendable {
    // @unchecked: the EVP_PKEY is never mutated after load; OpenSSL 3 keys are safe for concurrent signing.
    private let key: OpaquePointer
    public let isPrivate: Bool

    private init(key: OpaquePointer, isPrivate: Bool) {
        self.key = key
        self.isPrivate = isPrivate
    }

    deinit { EVP_PKEY_free(key) }

    /// Loads a private key in PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`) PEM form.
    public static func privateKey(pem: String) throws -> RSAKey {
        try load(pem: pem, isPrivate: true)
    }

    /// Loads a public key (`BEGIN PUBLIC KEY`).
    public static func publicKey(pem: String) throws -> RSAKey {
        try load(pem: pem, isPrivate: false)
    }

    private static func load(pem: String, isPrivate: Bool) throws -> RSAKey {
        let bytes = Array(pem.utf8)
        let loaded: OpaquePointer? = bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return isPrivate ? PEM_read_bio_PrivateKey(bio, nil, nil, nil) : PEM_read_bio_PUBKEY(bio, nil, nil, nil)
        }
        guard let key = loaded else {
            throw CryptoError.fromOpenSSL(isPrivate ? "reading an RSA private key from PEM (expected -----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----)" : "reading an RSA public key from PEM")
        }
        // PEM_read_bio_PrivateKey accepts any algorithm; an EC key would otherwise sign "RS256" tokens
        // that GitHub rejects with an opaque "could not be decoded".
        guard EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA else {
            EVP_PKEY_free(key)
            throw CryptoError(operation: "reading an RSA key from PEM",
                              reason: "the PEM holds a non-RSA key; GitHub App keys are RSA (RS256)")
        }
        return RSAKey(key: key, isPrivate: isPrivate)
    }

    /// Generates a fresh key pair (tests and emulators only; production keys come from the provider).
    public static func generate(bits: Int32 = 2048) throws -> RSAKey {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nil) else { throw CryptoError.fromOpenSSL("EVP_PKEY_CTX_new_id") }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) == 1 else {
            throw CryptoError.fromOpenSSL("RSA keygen init")
        }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen(ctx, &key) == 1, let generated = key else { throw CryptoError.fromOpenSSL("RSA keygen") }
        return RSAKey(key: generated, isPrivate: true)
    }

    /// PEM of the private key (PKCS#8).
    public func privateKeyPEM() throws -> String {
        try withMemoryBIO { bio in PEM_write_bio_PrivateKey(bio, key, nil, nil, 0, nil, nil) == 1 }
    }

    /// PEM of the public key (SubjectPublicKeyInfo).
    public func publicKeyPEM() throws -> String {
        try withMemoryBIO { bio in PEM_write_bio_PUBKEY(bio, key) == 1 }
    }

    private func withMemoryBIO(_ write: (OpaquePointer) -> Bool) throws -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw CryptoError.fromOpenSSL("BIO_new") }
        defer { BIO_free(bio) }
        guard write(bio) else { throw CryptoError.fromOpenSSL("PEM write") }
        var pointer: UnsafeMutablePointer<CChar>?
        let length = deltahook_bio_get_mem_data(bio, &pointer)
        guard let pointer, length > 0 else { throw CryptoError.fromOpenSSL("BIO_get_mem_data") }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    /// RSASSA-PKCS1-v1_5 signature with SHA-256 (JWS "RS256").
    public func signSHA256(_ message: [UInt8]) throws -> [UInt8] {
        guard isPrivate else { throw CryptoError(operation: "RS256 sign", reason: "a public key cannot sign") }
        guard let ctx = EVP_MD_CTX_new() else { throw CryptoError.fromOpenSSL("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, EVP_sha256(), nil, key) == 1 else { throw CryptoError.fromOpenSSL("EVP_DigestSignInit") }
        var length = 0
        guard message.withUnsafeBufferPointer({ EVP_DigestSign(ctx, nil, &length, $0.baseAddress, $0.count) }) == 1 else {
            throw CryptoError.fromOpenSSL("EVP_DigestSign (size)")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard message.withUnsafeBufferPointer({ EVP_DigestSign(ctx, &signature, &length, $0.baseAddress, $0.count) }) == 1 else {
            throw CryptoError.fromOpenSSL("EVP_DigestSign")
        }
        return Array(signature.prefix(length))
    }

    /// Verifies an RS256 signature (used by the GitHub emulator to check App JWTs).
    public func verifySHA256(signature: [UInt8], message: [UInt8]) -> Bool {
        guard let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, EVP_sha256(), nil, key) == 1 else { ERR_clear_error(); return false }
        let ok = signature.withUnsafeBufferPointer { s in
            message.withUnsafeBufferPointer { m in EVP_DigestVerify(ctx, s.baseAddress, s.count, m.baseAddress, m.count) }
        }
        ERR_clear_error()
        return ok == 1
    }
}

extension Sequence where Element == UInt8 {
    /// Lower-case hexadecimal.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// base64url without padding (RFC 7515 §2), as JWTs need.
public enum Base64URL {
    public static func encode<D: DataProtocol>(_ data: D) -> String {
        Data(data).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ string: String) -> Data? {
        var s = string.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s.append("=") }
        return Data(base64Encoded: s)
    }
}
