// The GitHub emulator's issue list: filtering, sorting, paging with `Link` headers, weak ETags, and the JSON
// rendering of an issue (provider-wire-facts §3). Split from GitHubEmulator.swift to keep each file readable.
import Core
import Crypto
import Foundation
import HTTPServer

extension GitHubEmulator {
    func list(_ request: HTTPServerRequest, now: Date) -> HTTPServerResponse {
        let stateFilter = request.queryValue("state") ?? "open"
        let sort = request.queryValue("sort") ?? "created"
        let direction = request.queryValue("direction") ?? "desc"
        var since: Date?
        if let text = request.queryValue("since") {
            guard let date = Timestamps.parseRFC3339(text) else {
                return Self.error(422, "Validation Failed")
            }
            since = date
        }
        let perPage = min(max(Int(request.queryValue("per_page") ?? "30") ?? 30, 1), 100)
        let page = max(Int(request.queryValue("page") ?? "1") ?? 1, 1)

        var rows = state.withLock { Array($0.issues.values) }
        rows = rows.filter { issue in
            (stateFilter == "all" || issue.state == stateFilter) && (since.map { issue.updatedAt >= $0 } ?? true)
        }
        rows.sort { a, b in
            let (x, y) = sort == "updated" ? (a.updatedAt, b.updatedAt) : (a.createdAt, b.createdAt)
            if x != y { return direction == "asc" ? x < y : x > y }
            return direction == "asc" ? a.id < b.id : a.id > b.id
        }
        let lastPage = max(1, (rows.count + perPage - 1) / perPage)
        let slice = rows.dropFirst((page - 1) * perPage).prefix(perPage)
        let poison = state.withLock { $0.poison }
        var body: [UInt8] = [UInt8(ascii: "[")]
        for (index, issue) in slice.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body += poison[issue.id].map { Array($0.utf8) } ?? render(issue).serializedBytes()
        }
        body.append(UInt8(ascii: "]"))
        let etag = "W/\"" + Digest.sha256(body).hexString + "\""

        var headers: [(name: String, value: String)] = [("Cache-Control", "private, max-age=60, s-maxage=60"),
                                                       ("ETag", etag)]
        headers += [("x-accepted-github-permissions", "issues=read")]
        if let link = linkHeader(request, page: page, lastPage: lastPage) { headers.append(("Link", link)) }
        let inm = request.headers["if-none-match"]
        if let inm, inm.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }).contains(etag) {
            // 304: empty body, validators and rate headers kept, quota not charged (GitHub docs, best practices).
            return HTTPServerResponse(status: 304, headers: headers + rateHeaders(), body: [])
        }
        charge()
        return HTTPServerResponse(status: 200, headers: [("Content-Type", "application/json; charset=utf-8")] + headers
            + rateHeaders(), body: body)
    }

    /// `<…/repositories/{id}/issues?…&page=N>; rel="next", <…>; rel="last"` — prev/first only after page 1,
    /// next/last only before the last page, no header when everything fits on one page.
    private func linkHeader(_ request: HTTPServerRequest, page: Int, lastPage: Int) -> String? {
        guard lastPage > 1 else { return nil }
        var params: [String] = []
        for name in ["state", "sort", "direction", "since", "per_page"] {
            if let value = request.queryValue(name) { params.append("\(name)=\(Self.escape(value))") }
        }
        func url(_ n: Int) -> String {
            "<\(baseURL)/repositories/\(options.repositoryID)/issues?" + (params + ["page=\(n)"]).joined(separator: "&") + ">"
        }
        var links: [String] = []
        if page > 1 { links.append("\(url(min(page - 1, lastPage))); rel=\"prev\"") }
        if page < lastPage {
            links.append("\(url(page + 1)); rel=\"next\"")
            links.append("\(url(lastPage)); rel=\"last\"")
        }
        if page > 1 { links.append("\(url(1)); rel=\"first\"") }
        return links.isEmpty ? nil : links.joined(separator: ", ")
    }

    private func render(_ issue: Issue) -> JSONValue {
        let repoAPI = "https://api.github.com/repos/\(options.owner)/\(options.repository)"
        let repoWeb = "https://github.com/\(options.owner)/\(options.repository)"
        let user: JSONValue = .object(JSONObject([
            ("login", .string(issue.author)), ("id", .integer(583231)), ("node_id", "MDQ6VXNlcjU4MzIzMQ=="),
            ("type", "User"), ("site_admin", false),
        ]))
        func person(_ login: String) -> JSONValue {
            .object(JSONObject([("login", .string(login)), ("id", .integer(Int64(abs(login.hashValue % 1_000_000)))),
                                ("type", "User"), ("site_admin", false)]))
        }
        let labels: [JSONValue] = issue.labels.enumerated().map { i, name in
            .object(JSONObject([("id", .integer(208_045_946 + Int64(i))), ("node_id", "MDU6TGFiZWwyMDgwNDU5NDY="),
                                ("url", .string("\(repoAPI)/labels/\(name)")), ("name", .string(name)),
                                ("color", "f29513"), ("default", false), ("description", .null)]))
        }
        var pairs: [(String, JSONValue)] = [
            ("url", .string("\(repoAPI)/issues/\(issue.number)")),
            ("repository_url", .string(repoAPI)),
            ("labels_url", .string("\(repoAPI)/issues/\(issue.number)/labels{/name}")),
            ("comments_url", .string("\(repoAPI)/issues/\(issue.number)/comments")),
            ("events_url", .string("\(repoAPI)/issues/\(issue.number)/events")),
            ("html_url", .string("\(repoWeb)/\(issue.isPullRequest ? "pull" : "issues")/\(issue.number)")),
            ("id", .integer(issue.id)),
            ("node_id", .string("I_kwDO\(issue.id)")),
            ("number", .integer(issue.number)),
            ("title", .string(issue.title)),
            ("user", user),
            ("labels", .array(labels)),
            ("state", .string(issue.state)),
            ("locked", false),
            ("assignee", issue.assignees.first.map(person) ?? .null),
            ("assignees", .array(issue.assignees.map(person))),
            ("milestone", .null),
            ("comments", .integer(Int64(issue.comments))),
            ("created_at", .string(Timestamps.rfc3339(issue.createdAt))),
            ("updated_at", .string(Timestamps.rfc3339(issue.updatedAt))),
            ("closed_at", issue.closedAt.map { .string(Timestamps.rfc3339($0)) } ?? .null),
            ("author_association", "OWNER"),
            ("type", .null),
            ("active_lock_reason", .null),
        ]
        if issue.isPullRequest {
            pairs.append(("draft", .bool(issue.draft)))
            pairs.append(("pull_request", .object(JSONObject([
                ("url", .string("\(repoAPI)/pulls/\(issue.number)")),
                ("html_url", .string("\(repoWeb)/pull/\(issue.number)")),
                ("diff_url", .string("\(repoWeb)/pull/\(issue.number).diff")),
                ("patch_url", .string("\(repoWeb)/pull/\(issue.number).patch")),
                ("merged_at", .null),
            ]))))
        }
        pairs += [
            ("sub_issues_summary", .object(JSONObject([("total", 0), ("completed", 0), ("percent_completed", 0)]))),
            ("body", issue.body.map(JSONValue.string) ?? .null),
            ("closed_by", issue.closedAt == nil ? .null : user),
            ("reactions", .object(JSONObject([
                ("url", .string("\(repoAPI)/issues/\(issue.number)/reactions")), ("total_count", 0), ("+1", 0),
                ("-1", 0), ("laugh", 0), ("hooray", 0), ("confused", 0), ("heart", 0), ("rocket", 0), ("eyes", 0),
            ]))),
            ("timeline_url", .string("\(repoAPI)/issues/\(issue.number)/timeline")),
            ("performed_via_github_app", .null),
            ("state_reason", issue.stateReason.map(JSONValue.string) ?? .null),
        ]
        return .object(JSONObject(pairs))
    }
}
