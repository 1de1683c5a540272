// GitHub App installation tokens (GitHub docs "Authenticating as a GitHub App installation",
// "Generating a JSON Web Token (JWT) for a GitHub App"; provider-wire-facts §3.6).
//
// An RS256 JWT (iat = now − 60 s, exp ≤ 10 min) is exchanged at
// `POST /app/installations/{id}/access_tokens` for a token that lives one hour (201 {token, expires_at}).
// The token is cached per connection and replaced before it expires, so a poll never starts with a token
// that dies mid-scan (docs/DESIGN.md §2 rule 11).
public import Crypto
public import Foundation
import Core

/// Mints and caches installation tokens for one GitHub App connection.
public actor GitHubAppTokens {
    public let appID: String
    public let installationID: String
    private let privateKey: RSAKey
    private let http: ProviderHTTP
    private let baseURL: String
    private let clock: @Sendable () -> Date
    /// Replace a token this long before `expires_at` (capped at half its lifetime, so short-lived test
    /// tokens are not re-minted on every request).
    public let refreshMargin: Duration

    private var cached: (token: String, refreshAt: Date, expiresAt: Date)?
    private var inFlight: Task<(token: String, refreshAt: Date, expiresAt: Date), any Error>?
    /// Tokens minted so far (for status and tests).
    public private(set) var mintCount = 0

    public init(appID: String, installationID: String, privateKey: RSAKey, http: ProviderHTTP, baseURL: String,
                refreshMargin: Duration = .seconds(300), clock: @escaping @Sendable () -> Date = { Date() }) {
        self.appID = appID
        self.installationID = installationID
        self.privateKey = privateKey
        self.http = http
        self.baseURL = baseURL
        self.refreshMargin = refreshMargin
        self.clock = clock
    }

    /// A token valid for a while yet; mints one when none is cached or the cached one is due for refresh.
    public func token() async throws -> String {
        if let cached, clock() < cached.refreshAt { return cached.token }
        return try await mint()
    }

    /// Forgets the cached token (after a 401: it was revoked or the clock is off).
    public func invalidate() {
        cached = nil
    }

    private func mint() async throws -> String {
        if let inFlight { return try await inFlight.value.token }
        let task = Task { [privateKey, appID, installationID, http, baseURL, clock, refreshMargin] in
            try await Self.exchange(appID: appID, installationID: installationID, privateKey: privateKey, http: http,
                                    baseURL: baseURL, clock: clock, refreshMargin: refreshMargin)
        }
        inFlight = task
        defer { inFlight = nil }
        let result = try await task.value
        cached = result
        mintCount += 1
        return result.token
    }

    private static func exchange(appID: String, installationID: String, privateKey: RSAKey, http: ProviderHTTP,
                                 baseURL: String, clock: @Sendable () -> Date, refreshMargin: Duration) async throws
        -> (token: String, refreshAt: Date, expiresAt: Date)
    {
        let now = clock()
        let jwt: String
        do {
            jwt = try GitHubAppJWT.make(appID: appID, privateKey: privateKey, now: now)
            http.scrubber?.registerRuntimeToken(jwt)
        } catch {
            throw ProviderError.authentication(message: "\(http.connection): could not sign the GitHub App JWT: \(error)",
                                               hint: "check auth.private_key: it must be the App's RSA private key (PEM)")
        }
        let url = "\(baseURL)/app/installations/\(installationID)/access_tokens"
        let response = try await http.send(method: "POST", url: url, headers: GitHubClient.standardHeaders + [
            (name: "Authorization", value: "Bearer \(jwt)"),
        ])
        switch response.status {
        case 201, 200:
            break
        case 401:
            throw ProviderError.authentication(
                message: "\(http.connection): GitHub rejected the App JWT: \(GitHubClient.message(response))",
                hint: "check auth.app_id and auth.private_key (the App's key) and that this machine's clock is right")
        case 404:
            throw ProviderError.authentication(
                message: "\(http.connection): installation \(installationID) not found for App \(appID)",
                hint: "check auth.installation_id: the App must be installed on the repository's owner")
        default:
            if let error = GitHubClient.classify(response, connection: http.connection, what: "minting an App token",
                                                 now: now, backoff: nil, waits: http.waits) {
                throw error
            }
            throw ProviderError.http(status: response.status,
                                     message: "\(http.connection): unexpected answer minting an App token")
        }
        let body = try response.json(context: "\(http.connection): App token response")
        let reader = FieldReader(body, path: "$")
        let token = try reader.requiredString("token")
        // Registered before first use, so an error body echoing it is already scrubbed (docs/DESIGN.md §1).
        http.scrubber?.registerRuntimeToken(token)
        let expiresAt = try reader.requiredTimestamp("expires_at", format: "RFC 3339", Timestamps.parseRFC3339)
        let lifetime = max(0, expiresAt.timeIntervalSince(now))
        let margin = min(refreshMargin.seconds, lifetime / 2)
        return (token, expiresAt.addingTimeInterval(-margin), expiresAt)
    }
}
