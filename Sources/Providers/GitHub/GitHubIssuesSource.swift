// Delta polling of a repository's issues (GitHub REST "List repository issues",
// `GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&since=…&per_page=…`;
// provider-wire-facts §3.1–§3.4).
//
// GitHub offers no keyset pagination, only `since` (inclusive, on `updated_at`, whole seconds) and page
// numbers. Page numbers over a set that changes while we read it skip or repeat rows, so (DESIGN §2 rule 3):
// - after a page whose rows span several timestamps, the next request is page 1 again with `since` = the
//   newest `updated_at` seen; rows at exactly that instant that were already on the previous page are
//   filtered out (their ids travel in the position's `seen` hint);
// - only when a whole page shares one timestamp T and `since` is already T (a run of identical timestamps
//   longer than a page) does the walk use `page=N+1` — the one place where nothing else advances.
// Only an empty page or a response without a `next` link ends the scan (rule 4). The position's hints
// (`since`, `page`, `seen`) are persisted by the engine with the page, so a restarted scan asks exactly the
// request that was next.
//
// Known limit (inherent to page numbers): inside a multi-page run of one timestamp, a row of the run that is
// updated between two page requests leaves the run and shifts the rest back by one; the row that moves into
// the already-read page is missed by this scan if it also changed in that very second. The next cycle's
// lookback re-reads the run only when the watermark has not moved past it.
public import Core
public import Foundation
import HTTPClient

public struct GitHubIssuesSource: ObjectSource {
    /// Fields that change without a change of content: the cursor field and GitHub's bookkeeping counters
    /// (reaction totals, comment count, sub-issue and dependency summaries). DESIGN §4: volatile by default.
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
        let since: Date?
        let page: Int
        let seen: Set<String>
        if let after = request.after {
            since = after.hints["since"].flatMap(Timestamps.parseRFC3339) ?? Self.floorSecond(after.timestamp)
            page = after.hints["page"].flatMap { Int($0) }.map { max(1, $0) } ?? 1
            seen = Set((after.hints["seen"] ?? "").split(separator: ",").map(String.init))
        } else {
            since = request.lowerBound.map(Self.floorSecond)
            page = 1
            seen = []
        }
        let perPage = min(max(request.pageSize, 1), 100)
        var query = "state=all&sort=updated&direction=asc"
        if let since { query += "&since=" + Self.queryEscape(Timestamps.rfc3339(since)) }
        query += "&per_page=\(perPage)"
        if page > 1 { query += "&page=\(page)" }
        var headers: [(name: String, value: String)] = []
        let firstPage = request.after == nil
        if firstPage, let validator = request.ifNoneMatch { headers.append((name: "If-None-Match", value: validator)) }

        let response = try await client.get(issuesURL + "?" + query, headers: headers)
        if response.status == 304 {
            // Nothing changed since the validator's answer; GitHub does not charge the rate limit for it.
            return DeltaPage(records: [], next: nil, notModified: true, validator: request.ifNoneMatch)
        }
        let rows = try parseRows(response, context: "\(owner)/\(repository) issues page \(page)")
        let hasNext = LinkHeader.parse(response.headers.values("link"))["next"] != nil
        guard let last = rows.last, let newest = last.updatedAt else {
            return DeltaPage(records: [], next: nil, validator: firstPage ? response.headers["etag"] : nil)
        }
        // Rows already delivered before this request: below `since` (cannot happen with an inclusive `since`,
        // kept as a guard) or at exactly `since` and listed in the previous page's `seen` ids.
        let fresh = rows.filter { row in
            guard let at = row.updatedAt, let since else { return true }
            if at < since { return false }
            return !(at == since && seen.contains(row.id))
        }
        var next: ScanPosition?
        if hasNext {
            if let since, newest == since {
                // A whole page of one timestamp, already asked from that timestamp: step the page number.
                next = ScanPosition(timestamp: newest, recordID: last.id,
                                    hints: ["since": Timestamps.rfc3339(newest), "page": String(page + 1)])
            } else {
                let atNewest = rows.filter { $0.updatedAt == newest }.map(\.id)
                next = ScanPosition(timestamp: newest, recordID: last.id,
                                    hints: ["since": Timestamps.rfc3339(newest), "page": "1",
                                            "seen": atNewest.joined(separator: ",")])
            }
        }
        // The first page's ETag is a safe validator only when that page was the whole answer: with ascending
        // order a change lands at the end, which is beyond a full first page and would not alter its ETag.
        let validator = (firstPage && !hasNext) ? response.headers["etag"] : nil
        return DeltaPage(records: fresh, next: next, validator: validator)
    }

    private func parseRows(_ response: ProviderResponse, context: String) throws -> [SourceRecord] {
        let body = try response.json(context: "\(client.connection): \(context)")
        guard let array = body.arrayValue else {
            throw ProviderError.malformed(path: "$", message: "\(client.connection): \(context): expected a JSON array "
                + "of issues, found \(body.typeName)")
        }
        var records: [SourceRecord] = []
        records.reserveCapacity(array.count)
        var previous: Date?
        for (i, row) in array.enumerated() {
            let path = "$[\(i)]"
            let reader = FieldReader(row, path: path)
            let id = try reader.requiredString("id")
            let updated = try reader.requiredTimestamp("updated_at", format: "RFC 3339", Timestamps.parseRFC3339)
            if let previous, updated < previous {
                throw ProviderError.malformed(path: "\(path).updated_at", message: "\(client.connection): \(context): "
                    + "rows are not in ascending updated_at order (sort=updated&direction=asc was asked)")
            }
            previous = updated
            let isPullRequest = row["pull_request"] != nil
            let record = descriptor.model == "ticket" ? try GitHubTicket.normalize(row, path: path) : row
            records.append(SourceRecord(id: id, updatedAt: updated, raw: row, record: record,
                                        emits: !isPullRequest || includePullRequests))
        }
        return records
    }

    // MARK: Reconciliation

    /// Lists every issue and pull request id (`state=all&sort=created&direction=asc`), following the `Link`
    /// next URL; the token is that URL. Deleted and transferred issues simply vanish from this listing
    /// (GitHub has no delete feed for issues), which is how reconciliation finds them.
    public func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage {
        let url: String
        if let token {
            guard Self.origin(of: token) == Self.origin(of: client.baseURL) else {
                throw ProviderError.malformed(path: "Link", message: "\(client.connection): the next page link points "
                    + "to another host (\(HTTPClientError.redact(token))); refusing to send credentials there")
            }
            url = token
        } else {
            url = issuesURL + "?state=all&sort=created&direction=asc&per_page=\(min(max(pageSize, 1), 100))"
        }
        let response = try await client.get(url)
        let body = try response.json(context: "\(client.connection): \(owner)/\(repository) id listing")
        guard let array = body.arrayValue else {
            throw ProviderError.malformed(path: "$", message: "\(client.connection): id listing: expected a JSON array, "
                + "found \(body.typeName)")
        }
        var ids: [String] = []
        ids.reserveCapacity(array.count)
        for (i, row) in array.enumerated() {
            ids.append(try FieldReader(row, path: "$[\(i)]").requiredString("id"))
        }
        let next = array.isEmpty ? nil : LinkHeader.parse(response.headers.values("link"))["next"]
        return IDPage(ids: ids, next: next)
    }

    /// GitHub has no delete feed for issues: deleted and transferred issues are found by reconciliation.
    public func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? {
        nil
    }

    // MARK: Helpers

    static func floorSecond(_ date: Date) -> Date {
        Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
    }

    /// Query-component escaping: `2024-05-01T00:00:00Z` → `2024-05-01T00%3A00%3A00Z` (as GitHub's own links do).
    static func queryEscape(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    static func pathEscape(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// `scheme://host[:port]`, lower-cased, for the same-origin check on followed links.
    static func origin(of url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host
        else { return nil }
        let port = components.port.map { ":\($0)" } ?? ""
        return "\(scheme.lowercased())://\(host.lowercased())\(port)"
    }
}
