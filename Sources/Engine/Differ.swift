// The differ: decides what a freshly read record means against what deltahook last stored for it
// (DESIGN §2 rule 5, rule 6 for tombstones, rule 8 for event ids). Pure: no I/O, no clock.
public import Core
public import Foundation

/// What deltahook knew about a record before this read.
public struct PriorState: Sendable, Hashable {
    public var contentHash: String
    public var record: JSONValue
    public var tombstoned: Bool

    public init(contentHash: String, record: JSONValue, tombstoned: Bool) {
        self.contentHash = contentHash
        self.record = record
        self.tombstoned = tombstoned
    }
}

/// The outcome of diffing one record.
public enum DiffOutcome: Sendable, Hashable {
    /// Same content as the snapshot: nothing to store, nothing to emit (a re-read through the inclusive
    /// lower bound or the lookback window).
    case unchanged
    /// Never seen, or seen and tombstoned (an undelete): `created`.
    case created(contentHash: String)
    /// Content changed: `updated` with field-level changes of the normalized record.
    case updated(contentHash: String, changes: [String: FieldChange])

    public var contentHash: String? {
        switch self {
        case .unchanged: nil
        case .created(let hash), .updated(let hash, _): hash
        }
    }
}

/// Compares records by canonical content hash, minus the object's volatile fields.
public struct Differ: Sendable {
    public let descriptor: ObjectDescriptor

    public init(descriptor: ObjectDescriptor) {
        self.descriptor = descriptor
    }

    /// The hash that identifies a record's content. Computed over the raw record (what the provider said)
    /// without volatile fields, so a change in a field the normalized model omits still counts as a change
    /// of the source record — but `changes` is reported on the normalized model's fields.
    public func contentHash(of record: SourceRecord) -> String {
        ContentHash.of(record.raw, ignoring: descriptor.volatileFields)
    }

    /// The content hashes of a page of records, in order; large pages are split across cores, and each worker
    /// reuses one buffer and SHA-256 context.
    public func contentHashes(of records: [SourceRecord]) -> [String] {
        ContentHashing.hashes(of: records, differ: self)
    }

    /// As ``contentHash(of:)``, reusing `hasher`'s buffer and SHA-256 context (the poll runner hashes whole pages).
    func contentHash(of record: SourceRecord, using hasher: CanonicalHasher) -> String {
        hasher.hash(record.raw, ignoring: descriptor.volatileFields)
    }

    public func diff(_ record: SourceRecord, prior: PriorState?) -> DiffOutcome {
        diff(record, contentHash: contentHash(of: record), prior: prior)
    }

    /// As ``diff(_:prior:)`` with the hash already computed (the poll runner hashes a page once, looks up
    /// stored heads by hash, and loads full prior records only for ids whose hash changed).
    public func diff(_ record: SourceRecord, contentHash hash: String, prior: PriorState?) -> DiffOutcome {
        guard let prior, !prior.tombstoned else { return .created(contentHash: hash) }
        if prior.contentHash == hash { return .unchanged }
        let changes = ContentHash.changes(from: prior.record, to: record.record, ignoring: descriptor.volatileFields)
        return .updated(contentHash: hash, changes: changes)
    }

    /// Builds the event for an outcome, or nil when nothing should be emitted.
    public func event(for record: SourceRecord, outcome: DiffOutcome, detectedAt: Date) -> ChangeEvent? {
        let kind: ChangeKind
        var changes: [String: FieldChange]? = nil
        switch outcome {
        case .unchanged: return nil
        case .created: kind = .created
        case .updated(_, let fieldChanges):
            // A change confined to fields the normalized model does not carry still emits `updated`
            // with empty `changes` only for model `record`; for typed models it is not observable.
            if fieldChanges.isEmpty && descriptor.model != "record" { return nil }
            kind = .updated
            changes = fieldChanges
        }
        guard record.emits, let hash = outcome.contentHash else { return nil }
        return ChangeEvent(
            id: ChangeEvent.makeID(connection: descriptor.connection, object: descriptor.object, recordID: record.id,
                                   sourceTimestamp: record.updatedAt, contentHash: hash, kind: kind),
            model: descriptor.model, kind: kind, connection: descriptor.connection, provider: descriptor.provider,
            object: descriptor.object, recordID: record.id, occurredAt: record.updatedAt, detectedAt: detectedAt,
            record: record.record, changes: changes, raw: record.raw)
    }

    /// The `deleted` event for a record whose last known state is `prior`. A delete feed gives the
    /// deletion time; a reconciliation sweep does not, so the detection time stands in. That keeps
    /// delete → undelete → delete distinct, and a sweep commits atomically, so an uncommitted sweep that
    /// is re-run after a crash never produced a `webhook-id` anyone saw.
    public func deletionEvent(recordID: String, prior: PriorState, raw: JSONValue, deletedAt: Date?,
                              detectedAt: Date) -> ChangeEvent {
        let when = deletedAt ?? detectedAt
        return ChangeEvent(
            id: ChangeEvent.makeID(connection: descriptor.connection, object: descriptor.object, recordID: recordID,
                                   sourceTimestamp: when, contentHash: prior.contentHash, kind: .deleted),
            model: descriptor.model, kind: .deleted, connection: descriptor.connection, provider: descriptor.provider,
            object: descriptor.object, recordID: recordID, occurredAt: when, detectedAt: detectedAt,
            record: prior.record, changes: nil, raw: raw)
    }
}
