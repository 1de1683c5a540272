// One GitHub connection: authentication (PAT or App installation token), the standard request headers, and
// the mapping of GitHub's answers to ProviderError (GitHub docs "Rate limits for the REST API",
// "Troubleshooting the REST API"; provider-wire-facts §3.4–§3.6). Shared by every object of the connection,
// because rate limits and tokens belong to the account, not to a repository (docs/DESIGN.md §2 rule 10).
public import Core
public import Crypto
public import Foundation
public import HTTPClient

/// How a GitHub connection authenticates.
public enum GitHubCredentials: Sendable {
    /// A personal access token (classic or fine-grained), sent as `Authorization: Bearer`.
    case token(String)
    /// A GitHub App installation: JWT → installation token.
    case app(appID: String, installationID: String, privateKey: RSAKey)
}

public final class GitHubClient: Sendable {
    /// GitHub requires a User-Agent and recommends pinning the media type and API version
    /// (GitHub docs "Getting started with the REST API").
    static let standardHeaders: [(name: String, value: String)] = [
        (name: "Accept", value: "application/vnd.github+json"),
        (name: "X-GitHub-Api-Version", value: "2022-11-28"),
    ]

    public let connection: String
    /// Without a trailing slash: `https://api.github.com`, a GHES `https://host/api/v3`, or an emulator.
    public let baseURL: String
    public let http: ProviderHTTP
    /// Non-nil for App auth.
    public let appTokens: GitHubAppTokens?
    private let personalToken: String?
    /// Secondary limits without `retry-after`: wait at least 60 s, then exponentially longer (GitHub docs).
    public let secondaryBackoff: RateLimitBackoff
    let clock: @Sendable () -> Date

    /// - Parameter http: the connection's limits, allowed origins and logger (ProviderFactory builds it from the
    ///   config); nil builds a plain one on `transport` (tests).
    public init(connection: String, baseURL: String, credentials: GitHubCredentials, transport: any HTTPTransport,
                userAgent: String = "deltahook/1", timeout: Duration = .seconds(60),
                clock: @escaping @Sendable () -> Date = { Date() }, http: ProviderHTTP? = nil) {
        self.connection = connection
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.http = http?.with(userAgent: userAgent, timeout: timeout)
            ?? ProviderHTTP(transport: transport, connection: connection, userAgent: userAgent, timeout: timeout)
        self.clock = clock
        self.secondaryBackoff = RateLimitBackoff(base: .seconds(60), cap: .seconds(3600))
        switch credentials {
        case .token(let token):
            personalToken = token
            appTokens = nil
        case .app(let appID, let installationID, let key):
            personalToken = nil
            appTokens = GitHubAppTokens(appID: appID, installationID: installationID, privateKey: key, http: self.http,
                                        baseURL: base, clock: clock)
        }
    }

    /// GETs `url` with auth and the standard headers. A 401 re-mints an App token once and retries; a second
    /// 401 (or any 401 with a PAT) is `.authentication`. Rate limits, permission errors and other failures are
    /// classified; 2xx and 304 are returned.
    public func get(_ url: String, headers extra: [(name: String, value: String)] = []) async throws
        -> ProviderResponse
    {
        var refreshed = false
        while true {
            let authorization = try await authorizationValue()
            let response = try await http.send(url: url, headers: Self.standardHeaders + extra + [
                (name: "Authorization", value: authorization),
            ])
            if response.status == 401 {
                if let appTokens, !refreshed {
                    refreshed = true
                    await appTokens.invalidate()
                    continue
                }
                throw ProviderError.authentication(
                    message: "\(connection): GitHub answered 401 \(Self.message(response))",
                    hint: appTokens == nil
                        ? "the token in auth.token was revoked, expired or mistyped; it needs read access to issues"
                        : "a freshly minted installation token was refused; check the App's installation and permissions")
            }
            if let error = Self.classify(response, connection: connection, what: "reading \(URLRedaction.redact(url))",
                                         now: clock(), backoff: secondaryBackoff, waits: http.waits) {
                throw error
            }
            secondaryBackoff.reset()
            return response
        }
    }

    private func authorizationValue() async throws -> String {
        if let appTokens { return "Bearer \(try await appTokens.token())" }
        return "Bearer \(personalToken ?? "")"
    }

    /// The `message` of a GitHub error body, or a short excerpt when the body is not the usual JSON.
    static func message(_ response: ProviderResponse) -> String {
        if let body = try? JSONValue.parse(response.body), let message = body["message"]?.stringValue { return message }
        return ProviderHTTP.excerpt(response.body)
    }

    /// Maps an error answer to ProviderError; nil for 2xx and 304.
    ///
    /// GitHub docs "Rate limits for the REST API": exhausting the primary limit gives 403 or 429 with
    /// `x-ratelimit-remaining: 0` — wait until `x-ratelimit-reset` (epoch seconds). Secondary limits give 403
    /// or 429 with a message naming them and maybe `retry-after`; without either header wait at least a
    /// minute, longer each time. Any other 403 is a permission problem.
    public static func classify(_ response: ProviderResponse, connection: String, what: String, now: Date,
                                backoff: RateLimitBackoff?, waits: ProviderWaitPolicy) -> ProviderError? {
        let status = response.status
        if (200..<300).contains(status) || status == 304 { return nil }
        let text = message(response)
        if status == 403 || status == 429 {
            // Every wait is bounded to [0, max_provider_wait]; a reset in the past, negative or not a number counts
            // as absent and falls through to the backoff below (docs/DESIGN.md §2 rule 12). One second of slack:
            // GitHub's reset is whole seconds and a request at the reset second may still be refused.
            if response.headers["x-ratelimit-remaining"]?.trimmingCharacters(in: .whitespaces) == "0",
               let wait = waits.untilEpoch(response.headers, header: "x-ratelimit-reset", now: now, slack: 1) {
                return .rateLimited(retryAfter: wait,
                                    message: "\(connection): GitHub primary rate limit exhausted \(what): \(text)")
            }
            if let wait = waits.retryAfter(response.headers, now: now) {
                return .rateLimited(retryAfter: wait, message: "\(connection): GitHub rate limit \(what): \(text)")
            }
            let lower = text.lowercased()
            if status == 429 || lower.contains("rate limit") || lower.contains("abuse") {
                let wait = backoff?.nextWait() ?? .seconds(60)
                return .rateLimited(retryAfter: waits.bounded(max(wait, .seconds(60)), source: "secondary rate limit backoff"),
                                    message: "\(connection): GitHub secondary rate limit \(what): \(text)")
            }
            return .permission(message: "\(connection): GitHub refused \(what) (403 \(text)); "
                + "hint: the token or App needs read access to issues of this repository")
        }
        switch status {
        case 404:
            return .configuration(message: "\(connection): GitHub answered 404 \(what) (\(text)); hint: check the "
                + "repository name and that the token can see it (GitHub answers 404, not 403, for private repositories "
                + "without access)")
        case 301, 302, 307, 308:
            return .configuration(message: "\(connection): GitHub answered \(status) \(what): the repository moved or "
                + "was renamed; hint: update the object's repository (Location: \(response.headers["location"] ?? "-"))")
        case 401:
            return .authentication(message: "\(connection): GitHub answered 401 \(text)",
                                   hint: "check the connection's auth credentials")
        default:
            return .http(status: status, message: "\(connection): GitHub answered \(status) \(what): \(text)")
        }
    }
}
