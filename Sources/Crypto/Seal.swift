// Authenticated encryption for the few secrets deltahook must keep on disk (a rotated OAuth refresh token,
// docs/DESIGN.md §1): AES-256-GCM from libcrypto, nothing hand-written. The key never lives in the store — the
// caller derives it from a configured secret — so the SQLite file alone reveals nothing.
internal import COpenSSL

public enum Seal {
    static let nonceLength = 12
    static let tagLength = 16

    /// `nonce ‖ ciphertext ‖ tag` of `plaintext` under a 32-byte `key`, with a fresh random nonce.
    public static func seal(_ plaintext: [UInt8], key: [UInt8]) throws -> [UInt8] {
        guard key.count == 32 else { throw CryptoError(operation: "seal", reason: "the key must be 32 bytes") }
        let nonce = try SecureRandom.bytes(nonceLength)
        guard let context = EVP_CIPHER_CTX_new() else { throw CryptoError.fromOpenSSL("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(context) }
        var out = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        var length: Int32 = 0
        var final: Int32 = 0
        guard EVP_EncryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce) == 1,
              EVP_EncryptUpdate(context, &out, &length, plaintext, Int32(plaintext.count)) == 1,
              out.withUnsafeMutableBufferPointer({ buffer in
                  EVP_EncryptFinal_ex(context, buffer.baseAddress.map { $0 + Int(length) }, &final)
              }) == 1
        else { throw CryptoError.fromOpenSSL("AES-256-GCM encrypt") }
        var tag = [UInt8](repeating: 0, count: tagLength)
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(tagLength), &tag) == 1 else {
            throw CryptoError.fromOpenSSL("AES-256-GCM tag")
        }
        return nonce + out.prefix(Int(length + final)) + tag
    }

    /// The plaintext of a ``seal(_:key:)`` result; throws when the key is wrong or the bytes were altered.
    public static func open(_ sealed: [UInt8], key: [UInt8]) throws -> [UInt8] {
        guard key.count == 32, sealed.count >= nonceLength + tagLength else {
            throw CryptoError(operation: "open", reason: "sealed value too short or key not 32 bytes")
        }
        let nonce = Array(sealed.prefix(nonceLength))
        var tag = Array(sealed.suffix(tagLength))
        let ciphertext = Array(sealed.dropFirst(nonceLength).dropLast(tagLength))
        guard let context = EVP_CIPHER_CTX_new() else { throw CryptoError.fromOpenSSL("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(context) }
        var out = [UInt8](repeating: 0, count: ciphertext.count + tagLength)
        var length: Int32 = 0
        var final: Int32 = 0
        guard EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce) == 1,
              EVP_DecryptUpdate(context, &out, &length, ciphertext, Int32(ciphertext.count)) == 1,
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(tagLength), &tag) == 1,
              out.withUnsafeMutableBufferPointer({ buffer in
                  EVP_DecryptFinal_ex(context, buffer.baseAddress.map { $0 + Int(length) }, &final)
              }) == 1
        else {
            ERR_clear_error()
            throw CryptoError(operation: "open", reason: "authentication failed (wrong key or altered value)")
        }
        return Array(out.prefix(Int(length + final)))
    }
}
