// A loopback GitHub REST emulator for repository issues, faithful to provider-wire-facts §3:
// numeric ids, `YYYY-MM-DDTHH:MM:SSZ` timestamps, `closed_at` null when open, pull requests mixed into the
// issue list (with `pull_request` and `draft`; issue rows have no such key), `since` inclusive on `updated_at`,
// `sort`/`direction`/`page`/`per_page`, `Link` headers in GitHub's numeric `/repositories/{id}/issues` form,
// weak ETags with 304 (empty body, rate limit not charged), `x-ratelimit-*` headers, primary limits as 403/429
// with remaining 0, secondary limits by message, and the App token endpoint verifying RS256 JWTs.
//
// Tests drive it through a Swift mutation API (timestamps set explicitly through an injectable clock) and a
// queue of faults applied to the next issue-list requests.
import Core
public import Crypto
public import Foundation
import HTTPServer
import Synchronization

/// A clock tests can freeze, set and advance. Unfrozen it follows real time plus an offset.
public final class EmulatorClock: Sendable {
    private let state: Mutex<(frozen: Date?, offset: TimeInterval)>

    public init(frozenAt date: Date? = nil) { state = Mutex((date, 0)) }

    public func now() -> Date {
        state.withLock { s in s.frozen ?? Date().addingTimeInterval(s.offset) }
    }

    public func set(_ date: Date) { state.withLock { $0.frozen = date } }

    public func advance(by seconds: TimeInterval) {
        state.withLock { s in
            if let frozen = s.frozen { s.frozen = frozen.addingTimeInterval(seconds) } else { s.offset += seconds }
        }
    }
}

public final class GitHubEmulator: Sendable {
    /// One issue or pull request as the emulator stores it.
    public struct Issue: Sendable, Hashable {
        public var id: Int64
        public var number: Int64
        public var title: String
        public var body: String?
        public var state: String
        public var stateReason: String?
        public var labels: [String]
        public var assignees: [String]
        public var author: String
        public var comments: Int
        public var isPullRequest: Bool
        public var draft: Bool
        public var createdAt: Date
        public var updatedAt: Date
        public var closedAt: Date?
    }

    /// What the next issue-list requests do instead of (or before) answering normally.
    public enum Fault: Sendable {
        /// Answer normally.
        case none
        /// Answer with this status and a GitHub error body.
        case status(Int)
        /// 200 with a body that is not JSON.
        case malformedJSON
        /// 200 with a JSON array whose first row lacks `updated_at`.
        case missingField
        /// Answer normally after this long.
        case delay(Duration)
        /// Secondary rate limit: 403 (or 429) with GitHub's message, with or without `retry-after`.
        case secondaryRateLimit(status: Int, retryAfter: Int?)
        /// Run this (e.g. mutate issues) before answering normally: "an update landing between pages".
        case hook(@Sendable (GitHubEmulator) -> Void)
        /// `status` (403 or 429) with these exact rate-limit header texts (nil: header left out), for hostile values
        /// such as `x-ratelimit-remaining: 0` + `x-ratelimit-reset: 9223372036854775807`, or
        /// `retry-after: 99999999999999999999` (docs/DESIGN.md §2 rule 12).
        case rateLimitHeaders(status: Int, remaining: String?, reset: String?, retryAfter: String?)
    }

    /// A request as the emulator saw it, for assertions.
    public struct LoggedRequest: Sendable {
        public var method: String
        public var path: String
        public var query: [String: String]
        public var ifNoneMatch: String?
        public var authorization: String?
        public var userAgent: String?
        public var status: Int
    }

    public struct Options: Sendable {
        public var owner: String
        public var repository: String
        public var repositoryID: Int64
        /// Accepted personal access tokens.
        public var tokens: Set<String>
        /// GitHub App: id (the JWT `iss`), installation id and the App's public key.
        public var appID: String?
        public var installationID: String?
        public var appPublicKey: RSAKey?
        /// Installation token lifetime (GitHub: one hour).
        public var tokenLifetime: TimeInterval
        /// Primary rate limit per window.
        public var rateLimit: Int
        /// Status for an exhausted primary limit (GitHub uses 403 or 429).
        public var rateLimitStatus: Int

        public init(owner: String = "octo-org", repository: String = "hello", repositoryID: Int64 = 1_296_269,
                    tokens: Set<String> = ["ghp_emulatortoken"], appID: String? = nil, installationID: String? = nil,
                    appPublicKey: RSAKey? = nil, tokenLifetime: TimeInterval = 3600, rateLimit: Int = 5000,
                    rateLimitStatus: Int = 403) {
            self.owner = owner
            self.repository = repository
            self.repositoryID = repositoryID
            self.tokens = tokens
            self.appID = appID
            self.installationID = installationID
            self.appPublicKey = appPublicKey
            self.tokenLifetime = tokenLifetime
            self.rateLimit = rateLimit
            self.rateLimitStatus = rateLimitStatus
        }
    }

    private struct State {
        var issues: [Int64: Issue] = [:]
        var nextID: Int64 = 1_000_000_001
        var nextNumber: Int64 = 1
        var faults: [Fault] = []
        var log: [LoggedRequest] = []
        var remaining: Int
        var reset: Date
        var installationTokens: [String: Date] = [:]
        var mintedTokens = 0
        var arrivedListRequests = 0
        /// Issue id → the raw JSON text served for it instead of its rendering (a poison row).
        var poison: [Int64: String] = [:]
    }

    public let options: Options
    public let clock: EmulatorClock
    private let state: Mutex<State>
    private let server: Mutex<HTTPServer?>
    /// `http://127.0.0.1:PORT`, the connection's `base_url`.
    public let baseURL: String

    public init(options: Options = Options(), clock: EmulatorClock = EmulatorClock()) throws {
        self.options = options
        self.clock = clock
        state = Mutex(State(remaining: options.rateLimit, reset: clock.now().addingTimeInterval(3600)))
        server = Mutex(nil)
        let box = WeakBox()
        let http = try HTTPServer(handler: { request in
            guard let emulator = box.get() else { return .text("gone", status: 503) }
            return await emulator.handle(request)
        })
        baseURL = http.baseURL
        server.withLock { $0 = http }
        box.set(self)
    }

    /// Stops the server. Always call it (tests use defer).
    public func stop() {
        let http = server.withLock { s -> HTTPServer? in
            let current = s
            s = nil
            return current
        }
        http?.stop()
    }

    // MARK: Mutation API

    /// Creates an issue (or pull request) updated and created at `at` (default: the clock, whole seconds).
    @discardableResult
    public func createIssue(title: String, body: String? = nil, labels: [String] = [], assignees: [String] = [],
                            pullRequest: Bool = false, at: Date? = nil) -> Issue {
        let when = Self.second(at ?? clock.now())
        return state.withLock { s in
            let issue = Issue(id: s.nextID, number: s.nextNumber, title: title, body: body, state: "open",
                              stateReason: nil, labels: labels, assignees: assignees, author: "octocat", comments: 0,
                              isPullRequest: pullRequest, draft: false, createdAt: when, updatedAt: when, closedAt: nil)
            s.nextID += 1
            s.nextNumber += 1
            s.issues[issue.id] = issue
            return issue
        }
    }

    /// Applies `change` to issue `number` and stamps `updated_at` (default: the clock). Returns the new issue.
    @discardableResult
    public func updateIssue(_ number: Int64, at: Date? = nil, _ change: (inout Issue) -> Void) -> Issue? {
        let when = Self.second(at ?? clock.now())
        return state.withLock { s in
            guard var issue = s.issues.values.first(where: { $0.number == number }) else { return nil }
            change(&issue)
            issue.updatedAt = when
            s.issues[issue.id] = issue
            return issue
        }
    }

    @discardableResult
    public func close(_ number: Int64, at: Date? = nil) -> Issue? {
        let when = Self.second(at ?? clock.now())
        return updateIssue(number, at: when) { issue in
            issue.state = "closed"
            issue.stateReason = "completed"
            issue.closedAt = when
        }
    }

    @discardableResult
    public func reopen(_ number: Int64, at: Date? = nil) -> Issue? {
        updateIssue(number, at: at) { issue in
            issue.state = "open"
            issue.stateReason = "reopened"
            issue.closedAt = nil
        }
    }

    /// Deletes (or transfers away) an issue: it vanishes from every listing.
    public func delete(_ number: Int64) {
        state.withLock { s in
            if let issue = s.issues.values.first(where: { $0.number == number }) { s.issues[issue.id] = nil }
        }
    }

    /// Puts a deleted issue back with its id and number (an issue transferred away and back, or restored by
    /// support), updated at `at`: an undelete, which must become `created` again.
    @discardableResult
    public func restore(_ issue: Issue, at: Date? = nil) -> Issue {
        var restored = issue
        restored.updatedAt = Self.second(at ?? clock.now())
        state.withLock { $0.issues[restored.id] = restored }
        return restored
    }

    public func issue(number: Int64) -> Issue? {
        state.withLock { s in s.issues.values.first { $0.number == number } }
    }

    public var issues: [Issue] { state.withLock { Array($0.issues.values).sorted { $0.number < $1.number } } }

    // MARK: Faults and observation

    /// Serves issue `number` as `rawJSON` verbatim from now on (still filtered and ordered by its real `updated_at`):
    /// a poison row such as `{"id": null, …}` or `{"id": 1e999, …}` that the adapter must reject on its own while
    /// the rest of the page flows (docs/DESIGN.md §2 rule 16). Returns false when there is no such issue.
    @discardableResult
    public func poisonIssue(_ number: Int64, rawJSON: String) -> Bool {
        state.withLock { s in
            guard let issue = s.issues.values.first(where: { $0.number == number }) else { return false }
            s.poison[issue.id] = rawJSON
            return true
        }
    }

    /// A minimal issue row with `idText` as the literal JSON of its `id` (`null`, `1e999`, `"x"`).
    public static func poisonRow(idText: String, number: Int64, updatedAt: Date) -> String {
        let at = Timestamps.rfc3339(updatedAt)
        return "{\"id\":\(idText),\"number\":\(number),\"state\":\"open\",\"title\":\"poison\",\"created_at\":\"\(at)\","
            + "\"updated_at\":\"\(at)\",\"closed_at\":null,\"labels\":[],\"assignees\":[]}"
    }

    /// Queues faults for the next issue-list requests, one per request, in order.
    public func queueFaults(_ faults: [Fault]) { state.withLock { $0.faults += faults } }

    public func clearFaults() { state.withLock { $0.faults = [] } }

    /// Exhausts the primary rate limit until `reset` (answers 403/429 with remaining 0 until then).
    public func exhaustRateLimit(until reset: Date) {
        state.withLock { s in
            s.remaining = 0
            s.reset = reset
        }
    }

    public var rateLimitRemaining: Int { state.withLock { $0.remaining } }
    public var requests: [LoggedRequest] { state.withLock { $0.log } }
    /// Issue-list requests only (delta scans and id listings).
    public var listRequests: [LoggedRequest] { requests.filter { $0.path.hasSuffix("/issues") } }
    /// Issue-list requests that have arrived, counted before they are answered (a delayed request counts).
    public var arrivedListRequests: Int { state.withLock { $0.arrivedListRequests } }
    public var mintedTokens: Int { state.withLock { $0.mintedTokens } }
    public func clearLog() {
        state.withLock { s in
            s.log = []
            s.arrivedListRequests = 0
        }
    }

    /// Invalidates every installation token (the next use answers 401 "Bad credentials").
    public func revokeInstallationTokens() { state.withLock { $0.installationTokens = [:] } }

    // MARK: Serving

    private func handle(_ request: HTTPServerRequest) async -> HTTPServerResponse {
        var logged = LoggedRequest(method: request.method, path: request.path,
                                   query: Dictionary(request.query.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 }),
                                   ifNoneMatch: request.headers["if-none-match"],
                                   authorization: request.headers["authorization"],
                                   userAgent: request.headers["user-agent"], status: 0)
        if request.path.hasSuffix("/issues") { state.withLock { $0.arrivedListRequests += 1 } }
        var response = await route(request)
        logged.status = response.status
        state.withLock { $0.log.append(logged) }
        response.headers.append(("x-github-api-version-selected", "2022-11-28"))
        return response
    }

    private func route(_ request: HTTPServerRequest) async -> HTTPServerResponse {
        guard let agent = request.headers["user-agent"], !agent.isEmpty else {
            return Self.error(403, "Request forbidden by administrative rules. Please make sure your request has a "
                + "User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).")
        }
        let repoPath = "/repos/\(options.owner)/\(options.repository)/issues"
        let numericPath = "/repositories/\(options.repositoryID)/issues"
        if request.method == "POST", request.path.hasPrefix("/app/installations/"), request.path.hasSuffix("/access_tokens") {
            return mintToken(request)
        }
        guard request.method == "GET", request.path == repoPath || request.path == numericPath else {
            return Self.error(404, "Not Found")
        }
        if let denied = authenticate(request) { return denied }
        let now = clock.now()
        if let limited = primaryLimit(now: now) { return limited }

        let fault: Fault = state.withLock { s in s.faults.isEmpty ? .none : s.faults.removeFirst() }
        switch fault {
        case .none: break
        case .status(let code):
            charge()
            return Self.error(code, code >= 500 ? "Server Error" : "Error", headers: rateHeaders())
        case .malformedJSON:
            charge()
            return HTTPServerResponse(status: 200, headers: [("Content-Type", "application/json; charset=utf-8")] +
                rateHeaders(), body: Array("[{\"id\": 1, \"title\": \"unterminated".utf8))
        case .missingField:
            charge()
            return .json(Array(#"[{"id":1,"number":1,"state":"open","title":"x"}]"#.utf8), headers: rateHeaders())
        case .delay(let duration):
            try? await Task.sleep(for: duration)
        case .secondaryRateLimit(let status, let retryAfter):
            var headers = rateHeaders()
            if let retryAfter { headers.append(("retry-after", String(retryAfter))) }
            return Self.error(status, "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                + "try again. If you reach out to GitHub Support for help, please include the request ID.", headers: headers)
        case .hook(let hook):
            hook(self)
        case .rateLimitHeaders(let status, let remaining, let reset, let retryAfter):
            var headers: [(name: String, value: String)] = [("x-ratelimit-limit", String(options.rateLimit))]
            if let remaining { headers.append(("x-ratelimit-remaining", remaining)) }
            if let reset { headers.append(("x-ratelimit-reset", reset)) }
            if let retryAfter { headers.append(("retry-after", retryAfter)) }
            return Self.error(status, "API rate limit exceeded for installation.", headers: headers)
        }
        return list(request, now: clock.now())
    }

    private func authenticate(_ request: HTTPServerRequest) -> HTTPServerResponse? {
        guard let header = request.headers["authorization"] else {
            return Self.error(401, "Requires authentication")
        }
        let parts = header.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2, parts[0].lowercased() == "bearer" || parts[0].lowercased() == "token" else {
            return Self.error(401, "Bad credentials")
        }
        let token = parts[1]
        if options.tokens.contains(token) { return nil }
        let now = clock.now()
        let valid = state.withLock { s in s.installationTokens[token].map { now < $0 } ?? false }
        return valid ? nil : Self.error(401, "Bad credentials")
    }

    /// The primary limit: a new window starts at `reset`; an exhausted window answers 403/429 with remaining 0.
    private func primaryLimit(now: Date) -> HTTPServerResponse? {
        let exhausted = state.withLock { s -> Bool in
            if now >= s.reset {
                s.remaining = options.rateLimit
                s.reset = now.addingTimeInterval(3600)
            }
            return s.remaining <= 0
        }
        guard exhausted else { return nil }
        return Self.error(options.rateLimitStatus, "API rate limit exceeded for installation ID 1. If you reach out to "
            + "GitHub Support for help, please include the request ID.", headers: rateHeaders())
    }

    private func charge() {
        state.withLock { s in s.remaining = max(0, s.remaining - 1) }
    }

    private func rateHeaders() -> [(name: String, value: String)] {
        let (remaining, reset) = state.withLock { ($0.remaining, $0.reset) }
        return [
            ("x-ratelimit-limit", String(options.rateLimit)),
            ("x-ratelimit-remaining", String(remaining)),
            ("x-ratelimit-reset", String(Int64(reset.timeIntervalSince1970.rounded(.up)))),
            ("x-ratelimit-used", String(options.rateLimit - remaining)),
            ("x-ratelimit-resource", "core"),
        ]
    }

    private func list(_ request: HTTPServerRequest, now: Date) -> HTTPServerResponse {
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

    // MARK: App installation tokens

    private func mintToken(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let parts = request.path.split(separator: "/")
        guard parts.count == 4, let appID = options.appID, let key = options.appPublicKey,
              String(parts[2]) == options.installationID else {
            return Self.error(404, "Not Found")
        }
        guard let header = request.headers["authorization"], header.hasPrefix("Bearer ") else {
            return Self.error(401, "A JSON web token could not be decoded")
        }
        let jwt = String(header.dropFirst("Bearer ".count))
        let now = clock.now()
        do {
            let claims = try GitHubAppJWT.verify(jwt, publicKey: key, now: now)
            guard claims.issuer == appID else { return Self.error(401, "Integration not found") }
        } catch {
            return Self.error(401, error.description)
        }
        let token = "ghs_" + ((try? SecureRandom.bytes(18))?.hexString ?? UUID().uuidString)
        let expires = Self.second(now.addingTimeInterval(options.tokenLifetime))
        state.withLock { s in
            s.installationTokens[token] = expires
            s.mintedTokens += 1
        }
        let body = JSONValue.object(JSONObject([
            ("token", .string(token)), ("expires_at", .string(Timestamps.rfc3339(expires))),
            ("permissions", .object(JSONObject([("issues", "read"), ("metadata", "read")]))),
            ("repository_selection", "selected"),
        ]))
        return .json(body.serializedBytes(), status: 201)
    }

    // MARK: Helpers

    static func error(_ status: Int, _ message: String, headers: [(name: String, value: String)] = [])
        -> HTTPServerResponse
    {
        let body = JSONValue.object(JSONObject([
            ("message", .string(message)), ("documentation_url", "https://docs.github.com/rest"),
            ("status", .string(String(status))),
        ]))
        return .json(body.serializedBytes(), status: status, headers: headers)
    }

    static func second(_ date: Date) -> Date { Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down)) }

    static func escape(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}

/// Breaks the emulator ↔ server cycle: the server's handler holds the emulator weakly.
private final class WeakBox: Sendable {
    private let value = Mutex<WeakRef?>(nil)
    private struct WeakRef: @unchecked Sendable { weak var emulator: GitHubEmulator? }
    func set(_ emulator: GitHubEmulator) { value.withLock { $0 = WeakRef(emulator: emulator) } }
    func get() -> GitHubEmulator? { value.withLock { $0?.emulator } }
}
