// The contract between the engine and a provider adapter (docs/DESIGN.md §2, §3).
//
// A provider adapter turns a delta request into HTTP calls and a response into a page of records. It knows
// nothing of the store, of snapshots or of delivery: the engine owns cursors, diffing and commits, and the
// adapter owns the provider's wire details (query syntax, pagination, auth, rate-limit headers).
public import Foundation

/// A keyset position inside a delta scan: the (source timestamp, record id) of the last record the engine
/// committed, plus provider-specific resume hints (GitHub's page number inside a run of identical
/// timestamps, NetSuite's window end). Persisted with the cursor in the same transaction as the page it
/// covers (docs/DESIGN.md §2 rules 1 and 3), so a restarted scan resumes exactly there.
public struct ScanPosition: Sendable, Hashable, Codable {
    public var timestamp: Date
    public var recordID: String
    public var hints: [String: String]

    public init(timestamp: Date, recordID: String, hints: [String: String] = [:]) {
        self.timestamp = timestamp
        self.recordID = recordID
        self.hints = hints
    }
}

/// One page request of a delta scan.
public struct DeltaRequest: Sendable, Hashable {
    /// Inclusive lower bound on the cursor field (`>=`), already moved back by the lookback window.
    /// nil means "from the beginning" (initial sync).
    public var lowerBound: Date?
    /// Resume strictly after this keyset position (nil on the first page of a scan).
    public var after: ScanPosition?
    public var pageSize: Int
    /// Conditional-request validator from the previous idle poll's first page (GitHub ETag), first page only.
    public var ifNoneMatch: String?

    public init(lowerBound: Date?, after: ScanPosition?, pageSize: Int, ifNoneMatch: String? = nil) {
        self.lowerBound = lowerBound
        self.after = after
        self.pageSize = pageSize
        self.ifNoneMatch = ifNoneMatch
    }
}

/// A record as read from the provider, already normalized.
public struct SourceRecord: Sendable, Hashable {
    /// The provider's id as a string (ServiceNow sys_id, NetSuite internal id, GitHub issue `id`).
    public var id: String
    /// The record's cursor field as a UTC instant (`sys_updated_on`, `lastmodifieddate`, `updated_at`).
    public var updatedAt: Date?
    /// The record exactly as the provider returned it.
    public var raw: JSONValue
    /// The normalized model (`ticket`, `user`, …), or the raw fields for model `record`.
    public var record: JSONValue
    /// false: the record advances the cursor and is snapshotted but emits no event
    /// (GitHub pull requests unless `include_pull_requests`).
    public var emits: Bool

    public init(id: String, updatedAt: Date?, raw: JSONValue, record: JSONValue, emits: Bool = true) {
        self.id = id
        self.updatedAt = updatedAt
        self.raw = raw
        self.record = record
        self.emits = emits
    }
}

/// One page of a delta scan.
public struct DeltaPage: Sendable {
    public var records: [SourceRecord]
    /// Where the next page starts; nil when this page ended the scan (an empty page or an explicit end
    /// marker — never merely a short page, docs/DESIGN.md §2 rule 4).
    public var next: ScanPosition?
    /// The provider answered "not modified" (GitHub 304): nothing changed, no quota spent.
    public var notModified: Bool
    /// Validator to send as `ifNoneMatch` on the next idle poll's first page.
    public var validator: String?
    /// Things an operator should know (a page emptied by ACLs, a window split), logged by the engine.
    public var warnings: [String]
    /// Records of this page the adapter could not accept (docs/DESIGN.md §2 rule 16). The engine quarantines
    /// them; `next` must still step past them, so one poison record never stalls the object.
    public var rejected: [RejectedRecord]

    public init(records: [SourceRecord], next: ScanPosition?, notModified: Bool = false, validator: String? = nil,
                warnings: [String] = [], rejected: [RejectedRecord] = []) {
        self.records = records
        self.next = next
        self.notModified = notModified
        self.validator = validator
        self.warnings = warnings
        self.rejected = rejected
    }
}

/// A record an adapter refused (bad id, timestamp outside 1970–9999, a field its model needs unparseable),
/// kept for the operator instead of failing the whole page (docs/DESIGN.md §2 rule 16).
public struct RejectedRecord: Sendable, Hashable {
    /// The provider id when one could be read (even if it failed the id grammar), else nil.
    public var id: String?
    /// Where the record sat in the response, as a JSON path (`$.result[3]`); the quarantine key when `id` is nil.
    public var position: String
    /// What was wrong, with the JSON path of the field (`$.result[3].sys_id: "a^ORb" is not a 32-hex sys_id`).
    public var reason: String
    /// The record's raw text, at most ``RejectedRecord/excerptLimit`` bytes (cut on a UTF-8 boundary).
    public var rawExcerpt: String

    /// First 4 KB of the raw text are kept: enough to see what is wrong, never a whole page.
    public static let excerptLimit = 4096

    public init(id: String?, position: String, reason: String, rawExcerpt: String) {
        self.id = id
        self.position = position
        self.reason = reason
        self.rawExcerpt = Self.clip(rawExcerpt)
    }

    /// `raw` serialized and clipped to the excerpt limit.
    public init(id: String?, position: String, reason: String, raw: JSONValue) {
        self.init(id: id, position: position, reason: reason, rawExcerpt: raw.serialized())
    }

    /// The quarantine key: the id when known, else the position.
    public var key: String { id ?? position }

    static func clip(_ text: String) -> String {
        var utf8 = Array(text.utf8)
        guard utf8.count > excerptLimit else { return text }
        utf8.removeLast(utf8.count - excerptLimit)
        // A character cut in half loses at most its first three bytes: drop them until the text is valid again.
        for _ in 0..<4 {
            if let text = String(validating: utf8, as: UTF8.self) { return text }
            utf8.removeLast()
        }
        return String(decoding: utf8, as: UTF8.self)
    }
}

/// Provider auth state that must outlive the process (a rotated ServiceNow refresh token), kept in the
/// state store. Declared here so adapters can use it without seeing the store (docs/DESIGN.md §2 rule 11).
/// Values are secrets: implementations never log them.
public protocol AuthStateStore: Sendable {
    func loadAuthState(connection: String, key: String) async throws -> String?
    func saveAuthState(connection: String, key: String, value: String) async throws
}

/// One page of a full id listing, for reconciliation sweeps (docs/DESIGN.md §2 rule 6).
public struct IDPage: Sendable {
    public var ids: [String]
    /// Opaque resume token for the next page; nil when the listing is complete.
    public var next: String?

    public init(ids: [String], next: String?) {
        self.ids = ids
        self.next = next
    }
}

/// A delete reported by a provider feed (ServiceNow `sys_audit_delete`, NetSuite `DeletedRecord`).
public struct DeletedRecordNotice: Sendable, Hashable {
    public var id: String
    public var deletedAt: Date

    public init(id: String, deletedAt: Date) {
        self.id = id
        self.deletedAt = deletedAt
    }
}

/// One page of a delete feed.
public struct DeletionPage: Sendable {
    public var deletions: [DeletedRecordNotice]
    public var next: ScanPosition?

    public init(deletions: [DeletedRecordNotice], next: ScanPosition?) {
        self.deletions = deletions
        self.next = next
    }
}

/// What a provider answered when asked for one record by id (docs/DESIGN.md §2 rule 6a). A delete-feed entry in
/// the same second as the record's last seen state, and a sweep that lists an id whose snapshot is tombstoned,
/// both need to know whether the record exists NOW; "gone" and "cannot tell" must not be confused, since one
/// emits `deleted` and the other leaves the decision to the next read.
public enum RecordLookup: Sendable {
    /// The record exists; normalized exactly as a delta scan would have read it.
    case found(SourceRecord)
    /// The provider says no such record exists (ServiceNow 404 "No Record found", an empty SuiteQL result).
    case gone
    /// The record exists but the adapter cannot accept it (bad timestamp, unparseable); quarantined like a
    /// rejected row of a scan (rule 16).
    case rejected(RejectedRecord)
    /// This source cannot read single records; the engine falls back to its delta reads and sweeps.
    case unsupported
}

/// Static facts about one polled object of one connection.
public struct ObjectDescriptor: Sendable, Hashable {
    public var connection: String
    public var provider: String
    public var object: String
    public var model: String
    /// Partition key (GitHub repository, NetSuite record type); "" when the object has one partition.
    public var partition: String
    /// Top-level fields excluded from the content hash and from `changes` (docs/DESIGN.md §2 rule 5, §4).
    public var volatileFields: Set<String>
    /// The provider's timestamp granularity; the engine overlaps at least one granule (docs/DESIGN.md §2 rule 2).
    public var granularity: Duration

    public init(connection: String, provider: String, object: String, model: String, partition: String = "",
                volatileFields: Set<String>, granularity: Duration = .seconds(1)) {
        self.connection = connection
        self.provider = provider
        self.object = object
        self.model = model
        self.partition = partition
        self.volatileFields = volatileFields
        self.granularity = granularity
    }
}

/// A provider adapter for one object. Implementations are value types or actors; all methods may be called
/// concurrently for different objects but the engine never overlaps two scans of the same object.
public protocol ObjectSource: Sendable {
    var descriptor: ObjectDescriptor { get }

    /// Reads one page of records whose cursor field is `>= request.lowerBound`, ordered by
    /// (cursor field, id), strictly after `request.after` when given.
    func fetchDelta(_ request: DeltaRequest) async throws -> DeltaPage

    /// Lists every live record id, a page at a time (reconciliation sweep). `after` is the previous
    /// page's `next` token.
    func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage

    /// Reads the provider's delete feed since `since` (exclusive of `after`). Returns nil when this object
    /// has no delete feed (then only reconciliation finds deletes).
    func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage?

    /// Reads one record by its provider id, with the same options (fields, raw values, time handling) as the
    /// delta scan, so its content hash matches what a scan would compute (docs/DESIGN.md §2 rule 6a). The
    /// adapter validates `id` against its provider's grammar before it reaches a URL or query (rule 15).
    func fetchRecord(id: String) async throws -> RecordLookup
}

extension ObjectSource {
    /// Sources without a single-record read (GitHub issues, generic REST) answer ``RecordLookup/unsupported``.
    public func fetchRecord(id: String) async throws -> RecordLookup { .unsupported }
}

/// Why a provider call failed. The engine maps each case to a scheduling decision; none of them moves a
/// cursor (docs/DESIGN.md §2 rules 1, 9, 11).
public enum ProviderError: Error, Sendable, CustomStringConvertible {
    /// Wait this long before ANY request on this connection (Retry-After, GitHub reset time). docs/DESIGN.md §2 rules 9–10.
    case rateLimited(retryAfter: Duration, message: String)
    /// Credentials rejected after one refresh. `hint` says what to check.
    case authentication(message: String, hint: String)
    /// The object cannot be read (ServiceNow 403 "Insufficient rights"); other objects go on.
    case permission(message: String)
    /// The provider answered with an error status.
    case http(status: Int, message: String)
    /// The response could not be understood; `path` is the JSON path that was wrong.
    case malformed(path: String, message: String)
    /// The request did not complete (DNS, connect, TLS, timeout).
    case transport(message: String)
    /// The configuration cannot work against this provider (unknown table, bad record type).
    case configuration(message: String)
    /// The response was larger than the connection's `max_response_bytes`. The engine halves the page size
    /// for the rest of the scan and asks again (docs/DESIGN.md §2 rule 18).
    case responseTooLarge(limit: Int, message: String)

    public var description: String {
        switch self {
        case .rateLimited(let wait, let message): "rate limited for \(DurationText.format(wait)): \(message)"
        case .authentication(let message, let hint): "authentication failed: \(message) (hint: \(hint))"
        case .permission(let message): "permission denied: \(message)"
        case .http(let status, let message): "HTTP \(status): \(message)"
        case .malformed(let path, let message): "malformed response at \(path): \(message)"
        case .transport(let message): "transport error: \(message)"
        case .configuration(let message): "configuration problem: \(message)"
        case .responseTooLarge(let limit, let message):
            "response larger than max_response_bytes (\(limit)): \(message) "
                + "(hint: lower page_size or raise the connection's max_response_bytes)"
        }
    }
}
