// The differ's hot path: the content hash of every record read (docs/DESIGN.md §2 rule 5). An unchanged re-read costs
// exactly one of these plus a batched head lookup, so it must be cheap (docs/DESIGN.md §9: ≥ 100k records/s).
//
// The bytes are Core's canonical form (`JSONValue.writeCanonical(into:skipping:)`, the same code behind
// `ContentHash.of`): volatile top-level members are skipped while writing instead of copying the object. What
// this adds is reuse across a page: one output buffer and one SHA-256 context per worker, instead of a fresh
// array and a fresh OpenSSL context per record.
import Core
import Crypto

/// Hashes records one after another on one thread, reusing its buffer and SHA-256 context. Not Sendable.
final class CanonicalHasher {
    private let sha256 = SHA256Hasher()
    private var buffer: [UInt8] = []

    init() { buffer.reserveCapacity(1024) }

    /// Hex SHA-256 of the canonical bytes of `value` minus the `volatile` top-level members; equal to
    /// `ContentHash.of(value, ignoring: volatile)`.
    func hash(_ value: JSONValue, ignoring volatile: Set<String>) -> String {
        buffer.removeAll(keepingCapacity: true)
        value.writeCanonical(into: &buffer, skipping: volatile)
        return sha256.hexHash(buffer)
    }
}
