// The page-level pieces of a delta scan: the background fetch of the next page (`Prefetch`), content hashing,
// the page's snapshot lookup (one store job) and its diff against what the store holds (docs/DESIGN.md §2 rule 5a).
import Core
import Dispatch
import Foundation
import Store
import Synchronization

extension PollRunner {
    struct PageDiff {
        var snapshots: [SnapshotWrite] = []
        var events: [ChangeEvent] = []
        /// Pre-rendered (record, raw) texts of `events`, index for index.
        var eventTexts: [(record: String?, raw: String?)] = []
        var unchanged = 0
        var suppressed = 0
        /// The newest source timestamp not beyond the scan's future limit (the watermark candidate, rule 14).
        var maxTimestamp: Date?
        /// Changed records dated beyond the future limit.
        var future: [(id: String, at: Date)] = []
    }

    /// The next page, fetched and hashed in the background; `isReady` once it has arrived (or failed).
    final class Prefetch: Sendable {
        private final class Flag: Sendable {
            let value = Mutex(false)
        }
        let task: Task<HashedPage, any Error>
        private let done = Flag()

        init(_ request: DeltaRequest, from source: any ObjectSource, differ: Differ) {
            let done = self.done
            task = Task {
                defer { done.value.withLock { $0 = true } }
                return try await PollRunner.fetch(request, from: source, differ: differ)
            }
        }

        var isReady: Bool { done.value.withLock { $0 } }
    }

    /// A page and the content hashes of its records.
    struct HashedPage: Sendable {
        var page: DeltaPage
        var hashes: [String]
    }

    static func fetch(_ request: DeltaRequest, from source: any ObjectSource, differ: Differ) async throws
        -> HashedPage
    {
        let page = try await source.fetchDelta(request)
        return HashedPage(page: page, hashes: differ.contentHashes(of: page.records))
    }

    /// What the store holds for a page: heads (hash, tombstone) of every id looked up, in one query, and — loaded
    /// only for ids whose hash changed — the prior records and raws `changes` and `changed_fields` are built from
    /// (rule 5a). Unchanged re-reads parse no JSON.
    struct PageLookup: Sendable {
        var heads: [String: SnapshotHead] = [:]
        var priors: [String: SnapshotBody] = [:]
        /// Ids of the page that sit in quarantine: they arrive valid now and leave it with the page (rule 16).
        var quarantined: Set<String> = []
    }

    /// Enqueues the page's lookup (one store job): heads of ids not in `carry`, then — for live ids whose stored
    /// hash differs from the fresh one — their prior records and raws, which `changes` and `changed_fields` need.
    func lookup(_ records: [SourceRecord], hashes: [String], descriptor: ObjectDescriptor,
                carry: [String: PriorState]) -> Task<PageLookup, any Error> {
        var ids: [String] = []
        var queued = Set<String>()
        var reads: [(id: String, hash: String)] = []
        for (index, record) in records.enumerated() where carry[record.id] == nil {
            reads.append((record.id, hashes[index]))
            if queued.insert(record.id).inserted { ids.append(record.id) }
        }
        let (connection, object, wanted, fresh) = (descriptor.connection, descriptor.object, ids, reads)
        return store.enqueue { store in
            guard !wanted.isEmpty else { return PageLookup() }
            var result = PageLookup()
            result.heads = try store.snapshotHeads(connection: connection, object: object, ids: wanted)
            // Any read of an id whose hash differs from the live stored one needs the prior record and raw.
            var changed: [String] = []
            var changedSet = Set<String>()
            for (id, hash) in fresh {
                guard let head = result.heads[id], !head.tombstoned, head.contentHash != hash,
                      changedSet.insert(id).inserted else { continue }
                changed.append(id)
            }
            if !changed.isEmpty {
                result.priors = try store.snapshotPriors(connection: connection, object: object, ids: changed)
            }
            result.quarantined = try store.quarantinedIDs(connection: connection, object: object, among: wanted)
            return result
        }
    }

    /// Diffs one page against what the lookup found. `carry` holds states decided earlier in this page (a record
    /// read twice is compared with its newest state, not with the stale stored one) and the previous page's writes
    /// (whose commit may still be running); in a dry run, the whole scan's.
    /// `render`: also serialize what the commit will store (not in a dry run).
    func diffPage(_ page: HashedPage, lookup: PageLookup, differ: Differ, silent: Bool, render: Bool,
                  carry: inout [String: PriorState], detectedAt: Date, futureLimit: Date = .distantFuture) -> PageDiff {
        let (records, hashes) = (page.page.records, page.hashes)
        var result = PageDiff()
        for (index, record) in records.enumerated() {
            var fromTheFuture = false
            if let stamp = record.updatedAt {
                if stamp > futureLimit {
                    fromTheFuture = true
                } else if result.maxTimestamp.map({ stamp > $0 }) ?? true {
                    result.maxTimestamp = stamp
                }
            }
            let prior: PriorState?
            if let carried = carry[record.id] {
                prior = carried
            } else if let head = lookup.heads[record.id] {
                let body = lookup.priors[record.id]
                prior = PriorState(contentHash: head.contentHash, record: body?.record ?? .null,
                                   tombstoned: head.tombstoned, raw: body?.raw)
            } else {
                prior = nil
            }
            let outcome = differ.diff(record, contentHash: hashes[index], prior: prior)
            guard let hash = outcome.contentHash else {
                result.unchanged += 1
                continue
            }
            if fromTheFuture, let stamp = record.updatedAt { result.future.append((record.id, stamp)) }
            // The snapshot is written even when no event is emitted (silent initial sync, pull requests,
            // `emit: model_changes` updates outside the model, rule 5a), so the next read compares with what the provider really holds.
            // Rendered here, while the store commits the previous page, rather than inside this page's commit;
            // the raw text serves the snapshot and the event, and the event's record when it is the raw record.
            let rawText = render ? record.raw.serialized() : nil
            result.snapshots.append(SnapshotWrite(recordID: record.id, contentHash: hash, record: record.record,
                                                  raw: record.raw, sourceTimestamp: record.updatedAt,
                                                  recordText: render ? record.record.canonicalString() : nil,
                                                  rawText: rawText))
            carry[record.id] = PriorState(contentHash: hash, record: record.record, tombstoned: false, raw: record.raw)
            if !silent, let event = differ.event(for: record, outcome: outcome, detectedAt: detectedAt) {
                result.events.append(event)
                let recordText = render ? (record.record.serializesIdentically(to: record.raw) ? rawText : record.record.serialized()) : nil
                result.eventTexts.append((recordText, rawText))
            } else {
                result.suppressed += 1
            }
        }
        return result
    }
}

/// Content hashes of a page. Hashing (canonical form + SHA-256) is the CPU cost of an unchanged re-read, so
/// large pages are split across cores.
enum ContentHashing {
    static let parallelThreshold = 512

    static func hashes(of records: [SourceRecord], differ: Differ) -> [String] {
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
        guard records.count >= parallelThreshold, workers > 1 else { return hashes(records[...], differ: differ) }
        let chunk = (records.count + workers - 1) / workers
        let results = Mutex<[[String]]>(Array(repeating: [], count: workers))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let start = worker * chunk
            let end = min(records.count, start + chunk)
            guard start < end else { return }
            let part = hashes(records[start..<end], differ: differ)
            results.withLock { $0[worker] = part }
        }
        return results.withLock { $0.flatMap { $0 } }
    }

    /// One hasher (buffer + SHA-256 context) per run of records.
    private static func hashes(_ records: ArraySlice<SourceRecord>, differ: Differ) -> [String] {
        let hasher = CanonicalHasher()
        return records.map { differ.contentHash(of: $0, using: hasher) }
    }
}
