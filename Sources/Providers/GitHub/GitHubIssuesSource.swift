// Delta polling of a repository's issues (GitHub REST "List repository issues",
// `GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&since=…&per_page=…`;
// provider-wire-facts §3.1–§3.4).
//
// GitHub offers no keyset pagination, only `since` (inclusive, on `updated_at`, whole seconds) and page
// numbers. Page numbers over a set that changes while we read it skip or repeat rows, so (docs/DESIGN.md §2 rule 3):
// - after a page whose rows span several timestamps, the next request is page 1 again with `since` = the
//   newest `updated_at` seen; rows at exactly that instant that were already on the previous page are
//   filtered out (their ids travel in the position's `seen` hint);
// - only when a whole page shares one timestamp T and `since` is already T (a run of identical timestamps
//   longer than a page) does the walk use page numbers — the one place where nothing else advances. A short
//   page carries no `next` link (GitHub computes it from the total at request time), so it ends the scan
//   rather than asking page N+1 of a set that may have grown since.
//   Inside a run, consecutive windows overlap by about a tenth of a page (GitHub pages are offset windows
//   `[(page−1)·per_page, page·per_page)`, so a different `per_page` moves the window start): when rows of the
//   run are updated between two requests they leave the run and everything after them moves back; the
//   overlap catches up to that many moved rows instead of skipping them, and the `seen` ids drop the repeats;
// - a window (page > 1) whose first row is already newer than T began past the run's end: the rows between the
//   run and the window were on no page. The walk asks page 1 again with `since` = T + 1 s, never from the
//   window's newest row. A window whose first row is still at T continues the run into the rest of the set
//   contiguously, so the walk goes on from its newest row as after any page 1.
// So `since` passes a row only from a page 1 that held it or after the run before it was paged to its end.
// Only an empty page or a response without a `next` link ends the scan (rule 4), except that a window past the
// run's end restarts as above even without one. The position's hints (`since`, `page`, `per_page`, `seen`) are
// persisted by the engine with the page, so a restarted scan asks exactly the request that was next. Every step
// moves `since` to a later second, or the window strictly forward inside a finite run (rule 18).
//
// Known limit (inherent to page numbers): if more rows than the overlap leave a multi-page run between two
// page requests, a row of the run itself can still be skipped by this scan; rows after the run cannot.
public import Core
public import Foundation
import Crypto
import HTTPClient

public struct GitHubIssuesSource: ObjectSource {
    /// Fields that change without a change of content: the cursor field and GitHub's bookkeeping counters
    /// (reaction totals, comment count, sub-issue and dependency summaries). docs/DESIGN.md §4: volatile by default.
    public static let defaultVolatileFields: Set<String> = [
        "updated_at", "reactions", "comments", "sub_issues_summary", "issue_dependencies_summary",
    ]

    public let descriptor: ObjectDescriptor
    public let client: GitHubClient
    public let owner: String
    public let repository: String
    /// false: pull requests are read (they advance the cursor and are snapshotted) but emit nothing.
    public let includePullRequests: Bool

    /// `model` is `ticket` (normalized, see GitHubTicket.swift) or `record` (raw fields).
    public init(client: GitHubClient, object: String, owner: String, repository: String, model: String = "ticket",
                includePullRequests: Bool = false, ignoreFields: [String] = []) throws {
        guard model == "ticket" || model == "record" else {
            throw ProviderError.configuration(message: "\(client.connection)/\(object): GitHub issues map to model "
                + "\"ticket\" or \"record\", not \"\(model)\"")
        }
        self.client = client
        self.owner = owner
        self.repository = repository
        self.includePullRequests = includePullRequests
        descriptor = ObjectDescriptor(connection: client.connection, provider: "github", object: object, model: model,
                                      partition: "\(owner)/\(repository)",
                                      volatileFields: Self.defaultVolatileFields.union(ignoreFields),
                                      granularity: .seconds(1))
    }

    var issuesURL: String {
        "\(client.baseURL)/repos/\(Self.pathEscape(owner))/\(Self.pathEscape(repository))/issues"
    }

    // MARK: Delta scan

    public func fetchDelta(_ request: DeltaRequest) async throws -> DeltaPage {
        let step: WalkStep
        if let after = request.after {
            step = WalkStep(since: after.hints["since"].flatMap(Timestamps.parseRFC3339) ?? Self.floorSecond(after.timestamp),
                            page: after.hints["page"].flatMap { Int($0) }.map(Self.clampPage) ?? 1,
                            perPage: after.hints["per_page"].flatMap { Int($0) }.map { min(max(1, $0), 100) },
                            seen: Set((after.hints["seen"] ?? "").split(separator: ",").map(String.init)))
        } else {
            step = WalkStep(since: request.lowerBound.map(Self.floorSecond), page: 1, perPage: nil, seen: [])
        }
        let firstPage = request.after == nil
        let result = try await walk(step, pageSize: request.pageSize,
                                    ifNoneMatch: firstPage ? request.ifNoneMatch : nil)
        if result.notModified {
            // Nothing changed since the validator's answer; GitHub does not charge the rate limit for it.
            return DeltaPage(records: [], next: nil, notModified: true, validator: request.ifNoneMatch)
        }
        // The first page's ETag is a safe validator only when that page was the whole answer: with ascending
        // order a change lands at the end, which is beyond a full first page and would not alter its ETag.
        let validator = (firstPage && result.next == nil && result.rejected.isEmpty) ? result.etag : nil
        return DeltaPage(records: result.records, next: result.next.map(\.position), validator: validator,
                         rejected: result.rejected)
    }

    /// One request of the `since` walk.
    struct WalkStep: Equatable {
        var since: Date?
        var page: Int
        /// Set inside a same-second run to place the window (nil: the configured page size).
        var perPage: Int?
        /// Ids at exactly `since` already returned by the previous page.
        var seen: Set<String>
    }

    struct WalkResult {
        var notModified = false
        /// Rows not returned before (the `seen` ids at `since` removed).
        var records: [SourceRecord] = []
        var next: (step: WalkStep, position: ScanPosition)?
        var etag: String?
        /// Rows refused (bad id, unreadable or out-of-range time, a ticket field that cannot be mapped).
        var rejected: [RejectedRecord] = []
    }

    /// Reads one page of `state=all&sort=updated&direction=asc` from `step` and works out the next step
    /// (see the file comment: page 1 from the newest `updated_at` seen, `page=N+1` only inside a run).
    func walk(_ step: WalkStep, pageSize: Int, ifNoneMatch: String?) async throws -> WalkResult {
        let maximum = min(max(pageSize, 1), 100)
        let perPage = step.perPage ?? maximum
        var query = "state=all&sort=updated&direction=asc"
        if let since = step.since { query += "&since=" + Self.queryEscape(Timestamps.rfc3339(since)) }
        query += "&per_page=\(perPage)"
        if step.page > 1 { query += "&page=\(step.page)" }
        var headers: [(name: String, value: String)] = []
        if let ifNoneMatch { headers.append((name: "If-None-Match", value: ifNoneMatch)) }

        let response = try await client.get(issuesURL + "?" + query, headers: headers)
        if response.status == 304 { return WalkResult(notModified: true) }
        let parsed = try parseRows(response, context: "\(owner)/\(repository) issues page \(step.page)")
        let rows = parsed.records
        var result = WalkResult(etag: response.headers["etag"], rejected: parsed.rejected)
        let hasNext = LinkHeader.parse(response.headers.values("link"))["next"] != nil
        guard let last = rows.last, let newest = last.updatedAt else {
            // Only rejected rows: their ids or times are what is wrong, so they cannot place the next `since`. The
            // walk goes on by page number inside the same query (the adjacent window), so the scan moves past them
            // and ends; a newest row that is rejected is simply re-read by the next scan (docs/DESIGN.md §2 rule 16).
            guard hasNext, !parsed.rejected.isEmpty else { return result }
            let nextStep = WalkStep(since: step.since, page: step.page + 1, perPage: perPage, seen: step.seen)
            var hints = ["page": String(nextStep.page), "per_page": String(perPage)]
            if let since = step.since { hints["since"] = Timestamps.rfc3339(since) }
            if !step.seen.isEmpty { hints["seen"] = step.seen.sorted().joined(separator: ",") }
            result.next = (nextStep, ScanPosition(timestamp: step.since ?? Timestamps.earliest, recordID: "",
                                                  hints: hints))
            return result
        }
        // Rows already delivered before this request: below `since` (cannot happen with an inclusive `since`,
        // kept as a guard) or at exactly `since` and listed in the previous page's `seen` ids.
        result.records = rows.filter { row in
            guard let at = row.updatedAt, let since = step.since else { return true }
            if at < since { return false }
            return !(at == since && step.seen.contains(row.id))
        }
        if step.page > 1, let since = step.since, let first = rows.first?.updatedAt, first > since {
            // A window inside a run (or after rejected rows) whose first row is already past `since`: the run ended
            // before the window began, so rows between the run and the window's first row may never have been on a
            // page (rows of the run updated away between the requests move everything after them back). Page 1 again
            // from the second after the run — not from this window's newest row, which would step over them, and not
            // from `since` itself, which a run longer than a page would repeat forever. With or without a `next`
            // link: the end marker describes this window, not what lies before it (docs/DESIGN.md §2 rule 3).
            let after = since.addingTimeInterval(1)
            let atAfter = rows.filter { $0.updatedAt == after }.map(\.id)
            let nextStep = WalkStep(since: after, page: 1, perPage: nil, seen: Set(atAfter))
            var hints = ["since": Timestamps.rfc3339(after), "page": "1"]
            if !atAfter.isEmpty { hints["seen"] = atAfter.joined(separator: ",") }
            result.next = (nextStep, ScanPosition(timestamp: after, recordID: "", hints: hints))
            return result
        }
        guard hasNext else { return result }
        let atNewest = rows.filter { $0.updatedAt == newest }.map(\.id)
        let nextStep: WalkStep
        if let since = step.since, newest == since {
            // A whole page of one timestamp, already asked from that timestamp: the next window of the run.
            let end = (step.page - 1) * perPage + parsed.count
            let window = Self.nextWindow(after: end, maximum: maximum)
            nextStep = WalkStep(since: newest, page: window.page, perPage: window.perPage, seen: Set(atNewest))
        } else {
            nextStep = WalkStep(since: newest, page: 1, perPage: nil, seen: Set(atNewest))
        }
        var hints = ["since": Timestamps.rfc3339(newest), "page": String(nextStep.page)]
        if let windowSize = nextStep.perPage { hints["per_page"] = String(windowSize) }
        if !atNewest.isEmpty { hints["seen"] = atNewest.joined(separator: ",") }
        result.next = (nextStep, ScanPosition(timestamp: newest, recordID: last.id, hints: hints))
        return result
    }

    /// The page's rows: accepted ones in order, and the ones refused per record (docs/DESIGN.md §2 rule 16): an
    /// `id` that is not a positive integer (rule 15: it goes into the `seen` hint), an `updated_at` that is not
    /// RFC 3339 in years 1970–9999, a ticket field that cannot be mapped, or a row that is not JSON on its own
    /// (`"id": 1e999`). A body that is not a JSON array at all is still a page error (retried).
    private func parseRows(_ response: ProviderResponse, context: String) throws
        -> (records: [SourceRecord], rejected: [RejectedRecord], count: Int)
    {
        let (body, elements) = try RecordArrayParser.parse(response.body, recordsPath: [], pathText: "$", idPath: ["id"],
                                                           context: "\(client.connection): \(context)")
        guard body.arrayValue != nil else {
            throw ProviderError.malformed(path: "$", message: "\(client.connection): \(context): expected a JSON array "
                + "of issues, found \(body.typeName)")
        }
        var records: [SourceRecord] = []
        var rejected: [RejectedRecord] = []
        records.reserveCapacity(elements.count)
        var previous: Date?
        for (i, element) in elements.enumerated() {
            let path = "$[\(i)]"
            let row: JSONValue
            switch element {
            case .unparseable(let record):
                rejected.append(record)
                continue
            case .parsed(let value): row = value
            }
            let id = FieldReader(row, path: path).optionalString("id")
            guard let id, ProviderIDs.isPositiveInteger(id) else {
                rejected.append(RejectedRecord(id: id, position: path, reason: "\(path).id: "
                    + "\(id.map { "\"\(clipped($0))\"" } ?? (row["id"]?.typeName ?? "missing")) is not a GitHub id (a positive integer)",
                    raw: row))
                continue
            }
            guard let text = row["updated_at"]?.stringValue, let updated = Timestamps.parseRFC3339(text) else {
                rejected.append(RejectedRecord(id: id, position: path, reason: "\(path).updated_at: "
                    + "\(row["updated_at"]?.stringValue.map { "\"\(clipped($0))\"" } ?? (row["updated_at"]?.typeName ?? "missing")) "
                    + "is not an RFC 3339 time in years 1970–9999", raw: row))
                continue
            }
            if let previous, updated < previous {
                throw ProviderError.malformed(path: "\(path).updated_at", message: "\(client.connection): \(context): "
                    + "rows are not in ascending updated_at order (sort=updated&direction=asc was asked)")
            }
            previous = updated
            let isPullRequest = row["pull_request"] != nil
            let record: JSONValue
            if descriptor.model == "ticket" {
                do { record = try GitHubTicket.normalize(row, path: path) } catch let error as ProviderError {
                    rejected.append(RejectedRecord(id: id, position: path, reason: Self.reason(error), raw: row))
                    continue
                }
            } else {
                record = row
            }
            records.append(SourceRecord(id: id, updatedAt: updated, raw: row, record: record,
                                        emits: !isPullRequest || includePullRequests))
        }
        return (records, rejected, elements.count)
    }

    /// `path: message` of a model error (the ticket mapping names the field).
    static func reason(_ error: ProviderError) -> String {
        if case .malformed(let path, let message) = error { return "\(path): \(message)" }
        return error.description
    }

    // MARK: Reconciliation

    /// Lists every issue and pull request id with the same `since` walk as the delta scan, from the beginning.
    /// Page offsets over `sort=created` would skip a live id whenever an issue already listed is deleted
    /// during the sweep (everything after it moves back one place), and a skipped id becomes a false
    /// `deleted` event; the `since` walk restarts from page 1 at each step, so a row leaving the listing cannot
    /// move an unread row into a page already read (except inside a multi-page run of one timestamp).
    /// The token is the next step, as JSON. Deleted and transferred issues vanish from this listing (GitHub
    /// has no delete feed for issues), which is how reconciliation finds them.
    public func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage {
        var step = WalkStep(since: nil, page: 1, perPage: nil, seen: [])
        if let token {
            guard let decoded = Self.decodeStep(token) else {
                throw ProviderError.malformed(path: "token", message: "\(client.connection): not an id-listing token "
                    + "this adapter wrote")
            }
            step = decoded
        }
        let result = try await walk(step, pageSize: pageSize, ifNoneMatch: nil)
        return IDPage(ids: result.records.map(\.id), next: result.next.map { Self.encodeStep($0.step) })
    }

    static func encodeStep(_ step: WalkStep) -> String {
        var object = JSONObject()
        if let since = step.since { object["since"] = .string(Timestamps.rfc3339(since)) }
        object["page"] = .integer(Int64(step.page))
        if let perPage = step.perPage { object["per_page"] = .integer(Int64(perPage)) }
        object["seen"] = .array(step.seen.sorted().map(JSONValue.string))
        return JSONValue.object(object).serialized()
    }

    static func decodeStep(_ token: String) -> WalkStep? {
        guard let value = try? JSONValue.parse(Array(token.utf8)), let page = value["page"]?.int64Value else {
            return nil
        }
        var since: Date?
        if let text = value["since"]?.stringValue {
            guard let date = Timestamps.parseRFC3339(text) else { return nil }
            since = date
        }
        let seen = (value["seen"]?.arrayValue ?? []).compactMap(\.stringValue)
        let perPage = value["per_page"]?.int64Value.map { min(max(1, Int($0)), 100) }
        return WalkStep(since: since, page: clampPage(Int(page)), perPage: perPage, seen: Set(seen))
    }

    /// GitHub has no delete feed for issues: deleted and transferred issues are found by reconciliation.
    public func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? {
        nil
    }

    // MARK: Helpers

    /// The next offset window `[(page−1)·perPage, page·perPage)` inside a run after `end` rows were read: it
    /// starts at least `overlap` rows before `end` (about a tenth of a page) and reaches as far past `end` as
    /// possible, with `perPage` between half the maximum and the maximum. Always moves past `end`.
    static func nextWindow(after end: Int, maximum: Int) -> (page: Int, perPage: Int) {
        guard maximum > 1, end > 0 else { return (end / max(maximum, 1) + 1, max(maximum, 1)) }
        let overlap = max(1, maximum / 10)
        var best: (page: Int, perPage: Int, progress: Int)?
        for size in stride(from: maximum, through: max(1, maximum / 2), by: -1) {
            let startIndex = max(0, end - overlap) / size
            let progress = (startIndex + 1) * size - end
            if progress > 0, progress > (best?.progress ?? 0) { best = (startIndex + 1, size, progress) }
        }
        if let best { return (best.page, best.perPage) }
        return (end / maximum + 1, maximum)
    }

    /// Page numbers from a stored position, kept in 1…1,000,000 so `(page − 1) · per_page` cannot overflow
    /// (docs/DESIGN.md §2 rule 12); no real run of one timestamp spans a million pages.
    static func clampPage(_ page: Int) -> Int { min(max(1, page), 1_000_000) }

    static func floorSecond(_ date: Date) -> Date {
        Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
    }

    /// Query-component escaping: `2024-05-01T00:00:00Z` → `2024-05-01T00%3A00%3A00Z` (as GitHub's own links do).
    static func queryEscape(_ text: String) -> String { PercentEncoding.rfc3986(text) }

    /// A path segment (owner, repository) escaped the same way.
    static func pathEscape(_ text: String) -> String { PercentEncoding.rfc3986(text) }
}
