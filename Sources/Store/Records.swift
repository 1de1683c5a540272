// Records: the plain structs that go in and out of the state store's repository API (StateStore).
//
// These are the contracts the engine, the dispatcher, status and the CLI build on. They carry Swift types
// (Date, JSONValue, ChangeEvent); the SQL representation (Unix ms, JSON text) stays inside Store.
public import Foundation
public import Core

// MARK: - Cursors and poll status

/// Poll position of one (connection, object, partition). docs/DESIGN.md §2 rules 1, 3, 6, 7.
public struct CursorState: Sendable, Hashable {
    public var connection: String
    public var object: String
    /// Sub-stream of an object (e.g. a NetSuite time window); `""` when the object has one stream.
    public var partition: String
    /// Source instant (UTC, from the data) below which everything is diffed and enqueued.
    public var watermark: Date?
    /// Provider JSON: the keyset position inside an unfinished scan (e.g. last `(ts, id)` or a GitHub page).
    public var resumeState: String?
    /// Provider delete-feed position (e.g. ServiceNow `sys_audit_delete` sys_created_on).
    public var deleteFeedCursor: String?
    public var lastReconcileAt: Date?
    /// Set by the store on write.
    public var updatedAt: Date?

    public init(connection: String, object: String, partition: String = "", watermark: Date? = nil,
                resumeState: String? = nil, deleteFeedCursor: String? = nil, lastReconcileAt: Date? = nil,
                updatedAt: Date? = nil) {
        self.connection = connection
        self.object = object
        self.partition = partition
        self.watermark = watermark
        self.resumeState = resumeState
        self.deleteFeedCursor = deleteFeedCursor
        self.lastReconcileAt = lastReconcileAt
        self.updatedAt = updatedAt
    }
}

/// Poll health of one (connection, object), for `deltahook status` and metrics.
public struct PollStatus: Sendable, Hashable {
    public var connection: String
    public var object: String
    public var lastPollAt: Date?
    public var lastSuccessAt: Date?
    /// Last error text (already secret-free), cleared by the next success.
    public var lastError: String?
    public var lastErrorAt: Date?
    /// Events emitted in total.
    public var eventsTotal: Int64
    /// Records read in total.
    public var recordsTotal: Int64
}

/// One poll's outcome, added to ``PollStatus`` by ``StateStore/recordPoll(_:)``.
public struct PollReport: Sendable, Hashable {
    public var connection: String
    public var object: String
    public var at: Date
    /// nil = success; otherwise the (secret-free) error text.
    public var error: String?
    public var events: Int
    public var records: Int

    public init(connection: String, object: String, at: Date, error: String? = nil, events: Int = 0, records: Int = 0) {
        self.connection = connection
        self.object = object
        self.at = at
        self.error = error
        self.events = events
        self.records = records
    }
}

// MARK: - Snapshots

/// The stored state of a record.
public struct Snapshot: Sendable, Hashable {
    public var recordID: String
    public var contentHash: String
    /// Canonical normalized record.
    public var record: JSONValue
    /// The provider's record as returned.
    public var raw: JSONValue
    public var sourceTimestamp: Date?
    public var tombstoned: Bool
    public var tombstonedAt: Date?
    public var updatedAt: Date
}

/// The part of a snapshot the differ needs to decide "unchanged" without parsing JSON.
public struct SnapshotHead: Sendable, Hashable {
    public var recordID: String
    public var contentHash: String
    public var sourceTimestamp: Date?
    public var tombstoned: Bool
}

/// The stored normalized and raw records of a snapshot whose content changed (docs/DESIGN.md §2 rule 5a).
public struct SnapshotBody: Sendable, Hashable {
    public var record: JSONValue
    public var raw: JSONValue

    public init(record: JSONValue, raw: JSONValue) {
        self.record = record
        self.raw = raw
    }
}

/// A snapshot to insert or replace inside a ``PageCommit``.
public struct SnapshotWrite: Sendable, Hashable {
    public var recordID: String
    public var contentHash: String
    public var record: JSONValue
    public var raw: JSONValue
    public var sourceTimestamp: Date?
    /// true for a delete: the last known record is kept so an undelete becomes `created` again (rule 6).
    public var tombstoned: Bool
    /// `record.canonicalString()` and `raw.serialized()` when the caller has rendered them already (the poll
    /// runner does, off the store's queue); nil: ``StateStore/commitPage(_:)`` renders them.
    public var recordText: String?
    public var rawText: String?

    public init(recordID: String, contentHash: String, record: JSONValue, raw: JSONValue, sourceTimestamp: Date?,
                tombstoned: Bool = false, recordText: String? = nil, rawText: String? = nil) {
        self.recordID = recordID
        self.contentHash = contentHash
        self.record = record
        self.raw = raw
        self.sourceTimestamp = sourceTimestamp
        self.tombstoned = tombstoned
        self.recordText = recordText
        self.rawText = rawText
    }
}

// MARK: - Page commit

/// A new event and the subscribers it is routed to (routing — globs, connections — is the caller's job).
public struct OutgoingEvent: Sendable, Hashable {
    public var event: ChangeEvent
    public var subscribers: [String]
    /// `event.record.serialized()` and `event.raw.serialized()` when the caller has rendered them already; nil:
    /// ``StateStore/commitPage(_:)`` renders them.
    public var recordText: String?
    public var rawText: String?

    public init(event: ChangeEvent, subscribers: [String], recordText: String? = nil, rawText: String? = nil) {
        self.event = event
        self.subscribers = subscribers
        self.recordText = recordText
        self.rawText = rawText
    }
}

/// Everything one page produces, committed atomically by ``StateStore/commitPage(_:)`` (docs/DESIGN.md §2 rule 1).
public struct PageCommit: Sendable, Hashable {
    public var connection: String
    public var object: String
    public var snapshots: [SnapshotWrite]
    public var events: [OutgoingEvent]
    /// The cursor that covers this page; nil leaves the cursor untouched.
    public var cursor: CursorState?
    /// Detection time: snapshot `updated_at`, delivery `created_at` and first `next_attempt_at`.
    public var now: Date
    /// Records of this page the adapter rejected: quarantined in the page's transaction, so the cursor that steps
    /// past them never commits without them (docs/DESIGN.md §2 rule 16).
    public var quarantine: [RejectedRecord]
    /// Ids this page accepted as valid: a quarantined record that arrives valid leaves quarantine with the page
    /// that carries it (rule 16). Only ids that may be quarantined need to be listed.
    public var acceptedIDs: [String]

    public init(connection: String, object: String, snapshots: [SnapshotWrite] = [], events: [OutgoingEvent] = [],
                cursor: CursorState? = nil, now: Date, quarantine: [RejectedRecord] = [], acceptedIDs: [String] = []) {
        self.connection = connection
        self.object = object
        self.snapshots = snapshots
        self.events = events
        self.cursor = cursor
        self.now = now
        self.quarantine = quarantine
        self.acceptedIDs = acceptedIDs
    }
}

/// What ``StateStore/commitPage(_:)`` actually inserted.
public struct PageCommitResult: Sendable, Hashable {
    /// (event id, seq) of each newly inserted event, in commit order.
    public var inserted: [InsertedEvent]
    /// Event ids that already existed (a re-poll after a crash) and were skipped with their deliveries.
    public var duplicateEventIDs: [String]
    public var deliveriesCreated: Int
    public var snapshotsWritten: Int
    /// Quarantine keys (``Core/RejectedRecord/key``) this page put in quarantine for the first time; a record
    /// already there only had its count and last-seen time raised. The engine logs and counts only these.
    public var newlyQuarantined: [String] = []
    /// Quarantine rows removed because their record arrived valid on this page.
    public var releasedFromQuarantine = 0

    public struct InsertedEvent: Sendable, Hashable {
        public var id: String
        public var seq: Int64
    }
}

// MARK: - Events

/// An event as stored in the outbox.
public struct StoredEvent: Sendable, Hashable {
    public var seq: Int64
    public var event: ChangeEvent
}

/// The columns of an event needed to route it, without its JSON bodies (for replay matching).
public struct EventSummary: Sendable, Hashable {
    public var seq: Int64
    public var id: String
    public var type: String
    public var connection: String
    public var object: String
    public var recordID: String
    public var detectedAt: Date
}

/// Filters for ``StateStore/events(_:)``. Results are ordered by seq (ascending unless `newestFirst`).
public struct EventQuery: Sendable, Hashable {
    public var connection: String?
    public var object: String?
    /// Exact event type, e.g. `ticket.updated`.
    public var type: String?
    /// detected_at ≥ since.
    public var since: Date?
    /// detected_at < until.
    public var until: Date?
    /// seq > afterSeq (keyset paging, ascending).
    public var afterSeq: Int64?
    /// seq < beforeSeq (keyset paging, newest first).
    public var beforeSeq: Int64?
    public var newestFirst: Bool
    public var limit: Int

    /// Keyset paging: the direction and the seq to continue after (ascending) or before (newest first).
    public struct Paging: Sendable, Hashable {
        public var afterSeq: Int64?
        public var beforeSeq: Int64?
        public var newestFirst: Bool

        public init(afterSeq: Int64? = nil, beforeSeq: Int64? = nil, newestFirst: Bool = false) {
            self.afterSeq = afterSeq
            self.beforeSeq = beforeSeq
            self.newestFirst = newestFirst
        }
    }

    public init(connection: String? = nil, object: String? = nil, type: String? = nil, since: Date? = nil,
                until: Date? = nil, paging: Paging = Paging(), limit: Int = 100) {
        self.connection = connection
        self.object = object
        self.type = type
        self.since = since
        self.until = until
        self.afterSeq = paging.afterSeq
        self.beforeSeq = paging.beforeSeq
        self.newestFirst = paging.newestFirst
        self.limit = limit
    }
}

// MARK: - Deliveries

/// `pending` until an attempt ends it: `delivered` (2xx) or `failed` (schedule exhausted, 410). `orphaned`: it
/// was still pending when its subscriber left the config; never sent, pruned like `failed` (docs/DESIGN.md §5).
/// `replay`/`redeliver` make any of them pending again.
public enum DeliveryState: String, Sendable, Hashable, CaseIterable {
    case pending, delivered, failed, orphaned
}

/// One (event, subscriber) delivery.
public struct Delivery: Sendable, Hashable {
    public var id: Int64
    public var eventSeq: Int64
    public var eventID: String
    public var eventType: String
    public var subscriber: String
    /// `connection/object/record_id`: deliveries with the same key reach a subscriber in seq order.
    public var recordKey: String
    public var state: DeliveryState
    public var attempts: Int
    public var nextAttemptAt: Date?
    public var lastStatus: Int?
    public var lastError: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var deliveredAt: Date?
    /// Bumped by every claim and re-arm; the claim's value goes back with its ``AttemptResult`` so a result
    /// that a `redeliver`/`replay` overtook is not written over the re-arm.
    public var leaseToken: Int64 = 0
}

/// A due delivery together with the event to send, its JSON members as the outbox stored them: the
/// dispatcher splices the body from those bytes (``SerializedEvent/webhookBody(includeRaw:)``) instead of
/// parsing them; `event.decoded()` gives the full ``ChangeEvent`` where one is wanted.
public struct DueDelivery: Sendable, Hashable {
    public var delivery: Delivery
    public var event: SerializedEvent
}

/// What happened to one HTTP attempt and what the delivery becomes.
public struct AttemptResult: Sendable, Hashable {
    public enum Outcome: Sendable, Hashable {
        /// 2xx: done.
        case delivered
        /// Try again at this time (schedule, jitter, Retry-After are the dispatcher's business).
        case retry(at: Date)
        /// Schedule exhausted (or 410): kept, listed, replayable.
        case failed
    }

    public var deliveryID: Int64
    public var attemptedAt: Date
    /// HTTP status, nil when no response arrived (timeout, refused address, TLS error…).
    public var httpStatus: Int?
    public var latencyMilliseconds: Int64
    /// Response body excerpt; the store keeps at most ``StateStore/responseExcerptLimit`` bytes.
    public var responseExcerpt: String?
    /// Secret-free error text (timeout, SSRF refusal reason, …).
    public var error: String?
    public var outcome: Outcome
    /// The ``Delivery/leaseToken`` of the claim this attempt was sent under. The result is written only while
    /// the row still holds it; nil skips the check (callers that never claimed: tools and tests).
    public var leaseToken: Int64?

    public init(deliveryID: Int64, attemptedAt: Date, httpStatus: Int?, latencyMilliseconds: Int64,
                responseExcerpt: String? = nil, error: String? = nil, outcome: Outcome, leaseToken: Int64? = nil) {
        self.leaseToken = leaseToken
        self.deliveryID = deliveryID
        self.attemptedAt = attemptedAt
        self.httpStatus = httpStatus
        self.latencyMilliseconds = latencyMilliseconds
        self.responseExcerpt = responseExcerpt
        self.error = error
        self.outcome = outcome
    }
}

/// A stored attempt.
public struct Attempt: Sendable, Hashable {
    public var id: Int64
    public var deliveryID: Int64
    public var attemptedAt: Date
    public var httpStatus: Int?
    public var latencyMilliseconds: Int64
    public var responseExcerpt: String?
    public var error: String?
}

/// Backlog of one subscriber, for status and metrics.
public struct SubscriberBacklog: Sendable, Hashable {
    public var subscriber: String
    /// Pending deliveries.
    public var pending: Int
    /// Creation time of the oldest pending delivery.
    public var oldestPendingCreatedAt: Date?
    public var failed: Int
    /// Deliveries orphaned when the subscriber left the config (docs/DESIGN.md §5).
    public var orphaned: Int = 0
}

// MARK: - Subscribers

public enum SubscriberState: String, Sendable, Hashable, CaseIterable {
    case active, paused, disabled
}

/// Persistent state of a subscriber (its configuration lives in the config file).
public struct SubscriberStatus: Sendable, Hashable {
    public var id: String
    public var state: SubscriberState
    /// Why it is paused/disabled (e.g. "410 Gone", "failing since …", "operator").
    public var reason: String?
    public var changedAt: Date
    /// Start of the current run of failures, nil when the last attempt succeeded.
    public var failingSince: Date?

    public init(id: String, state: SubscriberState, reason: String? = nil, changedAt: Date, failingSince: Date? = nil) {
        self.id = id
        self.state = state
        self.reason = reason
        self.changedAt = changedAt
        self.failingSince = failingSince
    }
}
