// The differ: decides what a freshly read record means against what deltahook last stored for it
// (docs/DESIGN.md §2 rules 5 and 5a, rule 6 for tombstones, rule 8 for event ids). Pure: no I/O, no clock.
public import Core
public import Foundation

/// What deltahook knew about a record before this read.
public struct PriorState: Sendable, Hashable {
    public var contentHash: String
    public var record: JSONValue
    public var tombstoned: Bool
    /// The provider record as last stored, which an `updated` event's `changed_fields` is computed from
    /// (rule 5a). nil when the caller did not load it (deletes need only `record`); `changed_fields` is then
    /// unknown and left out.
    public var raw: JSONValue?

    public init(contentHash: String, record: JSONValue, tombstoned: Bool, raw: JSONValue? = nil) {
        self.contentHash = contentHash
        self.record = record
        self.tombstoned = tombstoned
        self.raw = raw
    }
}

/// The outcome of diffing one record.
public enum DiffOutcome: Sendable, Hashable {
    /// Same content as the snapshot: nothing to store, nothing to emit (a re-read through the inclusive
    /// lower bound or the lookback window).
    case unchanged
    /// Never seen, or seen and tombstoned (an undelete): `created`.
    case created(contentHash: String)
    /// Content changed: `updated` with field-level changes of the normalized record (possibly none) and the
    /// names of the provider fields that changed (nil when the prior raw record was not known). Rule 5a.
    case updated(contentHash: String, changes: [String: FieldChange], changedFields: [String]?)

    public var contentHash: String? {
        switch self {
        case .unchanged: nil
        case .created(let hash), .updated(let hash, _, _): hash
        }
    }
}

/// Compares records by canonical content hash, minus the object's volatile fields.
public struct Differ: Sendable {
    public let descriptor: ObjectDescriptor
    /// Which content changes emit `updated` (the object's `emit`, rule 5a).
    public let emit: EmitPolicy

    public init(descriptor: ObjectDescriptor, emit: EmitPolicy = .anyChange) {
        self.descriptor = descriptor
        self.emit = emit
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
        let volatile = descriptor.volatileFields
        let changes = ContentHash.changes(from: prior.record, to: record.record, ignoring: volatile)
        // Over the raw records, minus the fields the hash ignores: exactly what moved the hash (rule 5a).
        let changedFields = prior.raw.map { ContentHash.changedFields(from: $0, to: record.raw, ignoring: volatile) }
        return .updated(contentHash: hash, changes: changes, changedFields: changedFields)
    }

    /// Builds the event for an outcome, or nil when nothing should be emitted.
    ///
    /// Rule 5a: every content-hash change is `updated`, for every model, even when no field of the normalized
    /// model changed (`changes` is then `{}` and `changedFields` says which provider fields did) — native
    /// webhooks fire on any update, and an `include_raw` subscriber would otherwise keep a stale `raw`. An object
    /// with `emit: model_changes` opts out: such an update emits nothing (the caller still moves the snapshot).
    public func event(for record: SourceRecord, outcome: DiffOutcome, detectedAt: Date) -> ChangeEvent? {
        let kind: ChangeKind
        var changes: [String: FieldChange]? = nil
        var changedFields: [String]? = nil
        switch outcome {
        case .unchanged: return nil
        case .created: kind = .created
        case .updated(_, let fieldChanges, let fields):
            if fieldChanges.isEmpty && emit == .modelChanges { return nil }
            kind = .updated
            changes = fieldChanges
            changedFields = fields
        }
        guard record.emits, let hash = outcome.contentHash else { return nil }
        return ChangeEvent(
            id: ChangeEvent.makeID(connection: descriptor.connection, object: descriptor.object, recordID: record.id,
                                   sourceTimestamp: record.updatedAt, contentHash: hash, kind: kind),
            model: descriptor.model, kind: kind, subject: subject(recordID: record.id),
            occurredAt: record.updatedAt, detectedAt: detectedAt,
            content: .init(record: record.record, changes: changes, raw: record.raw, changedFields: changedFields))
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
            model: descriptor.model, kind: .deleted, subject: subject(recordID: recordID), occurredAt: when,
            detectedAt: detectedAt, content: .init(record: prior.record, raw: raw))
    }

    /// The address of an event about `recordID` in this differ's object.
    private func subject(recordID: String) -> ChangeEvent.Subject {
        ChangeEvent.Subject(connection: descriptor.connection, provider: descriptor.provider,
                            object: descriptor.object, recordID: recordID)
    }
}
