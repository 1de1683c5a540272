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
import Crypto
public import Foundation
import HTTPServer
import Synchronization

public final class GitHubEmulator: Sendable {
    struct State {
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
    let state: Mutex<State>
    private let listener: EmulatorListener<GitHubEmulator>
    /// `http://127.0.0.1:PORT`, the connection's `base_url`.
    public let baseURL: String

    public init(options: Options = Options(), clock: EmulatorClock = EmulatorClock()) throws {
        self.options = options
        self.clock = clock
        state = Mutex(State(remaining: options.rateLimit, reset: clock.now().addingTimeInterval(3600)))
        listener = try EmulatorListener { emulator, request in await emulator.handle(request) }
        baseURL = listener.baseURL
        listener.attach(self)
    }

    /// Stops the server. Always call it (tests use defer).
    public func stop() { listener.stop() }

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

    func charge() {
        state.withLock { s in s.remaining = max(0, s.remaining - 1) }
    }

    func rateHeaders() -> [(name: String, value: String)] {
        let (remaining, reset) = state.withLock { ($0.remaining, $0.reset) }
        return [
            ("x-ratelimit-limit", String(options.rateLimit)),
            ("x-ratelimit-remaining", String(remaining)),
            ("x-ratelimit-reset", String(Int64(reset.timeIntervalSince1970.rounded(.up)))),
            ("x-ratelimit-used", String(options.rateLimit - remaining)),
            ("x-ratelimit-resource", "core"),
        ]
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