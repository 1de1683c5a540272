// Zoho OAuth access tokens for one Zoho Books connection (docs/providers.md "Zoho Books", [ZA1][ZA2]).
//
// Zoho access tokens live one hour (`expires_in: 3600`); the refresh-token grant is a POST to the data
// center's accounts server, `{accounts}/oauth/v2/token`, with `grant_type=refresh_token`, `client_id`,
// `client_secret` and `refresh_token`. One authenticator per connection, shared by its objects: a token is
// fetched once, refreshed about 5 minutes before it expires by a single request even when several objects need
// it at once, and a 401 from the API invalidates the token it was sent with so the client refreshes exactly once
// before giving up (docs/DESIGN.md §2 rule 11). Zoho documents no rotation of refresh tokens, but a response that
// carries one replaces the configured token and is kept sealed in the state store, as ServiceNow's is, because a
// restart must not go back to a token the server has retired. The caching and the rotation are
// `OAuthTokenCache`'s, shared with ServiceNow; what is Zoho's own stays here (the form, refusals, limits).
public import Foundation
public import Config
public import Core
import Crypto
import HTTPClient

public actor ZohoBooksAuthenticator {
    private let clientID: String
    private let clientSecret: Secret
    private let http: ProviderHTTP
    /// `{accounts}/oauth/v2/token`.
    public let tokenURL: String
    private let cache: OAuthTokenCache
    /// Token requests sent so far (tests assert "refreshed once").
    public var tokenRequests: Int { get async { await cache.tokenRequests } }

    /// The auth_state key of a rotated refresh token.
    public static let refreshTokenKey = "zoho_books.oauth.refresh_token"
    /// Refresh this long before `expires_in` runs out, so a token never expires between our check and Zoho's
    /// (never more than half the lifetime, so a short-lived token still gets used).
    public static let refreshMargin: TimeInterval = 300
    /// Zoho's documented lifetime, assumed when `expires_in` is missing, zero, negative or unreadable: a bad value
    /// must not turn into a token request before every API call (rule 11). Zoho also limits how many access tokens
    /// a refresh token may mint in ten minutes, which makes that failure mode worse than elsewhere ([ZA1]).
    public static let fallbackLifetime: Int64 = 3600

    public init(clientID: String, clientSecret: Secret, refreshToken: Secret, tokenURL: String, http: ProviderHTTP,
                now: @escaping @Sendable () -> Date = { Date() }, authState: (any AuthStateStore)? = nil) {
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.tokenURL = tokenURL
        self.http = http
        cache = OAuthTokenCache(http: http, clientSecret: clientSecret,
                                configuredRefreshToken: refreshToken.unredactedValue, authState: authState, now: now,
                                policy: OAuthTokenPolicy(refreshTokenKey: Self.refreshTokenKey,
                                                         fallbackLifetime: Self.fallbackLifetime,
                                                         refreshMargin: Self.refreshMargin, maxMarginShare: 0.5))
    }

    /// `Zoho-oauthtoken <token>`, Zoho's own scheme for the `Authorization` header ([ZB1]), and the token itself.
    public func authorization() async throws -> (header: String, token: String) {
        let current = try await cache.validToken { try await self.requestToken() }
        return ("Zoho-oauthtoken \(current.value)", current.value)
    }

    /// The API refused `rejected` (401): forget it, unless a newer one replaced it meanwhile.
    public func rejected(token rejected: String) async {
        await cache.rejected(token: rejected)
    }

    private func requestToken() async throws -> OAuthAccessToken {
        let refreshToken = await cache.refreshToken()
        let form = [("grant_type", "refresh_token"), ("client_id", clientID),
                    ("client_secret", clientSecret.unredactedValue), ("refresh_token", refreshToken)]
        let body = form.map { "\(PercentEncoding.rfc3986($0.0))=\(PercentEncoding.rfc3986($0.1))" }.joined(separator: "&")
        let started = await cache.requestStarted()
        let response = try await http.send(method: "POST", url: tokenURL,
                                           headers: [("Content-Type", "application/x-www-form-urlencoded"),
                                                     ("Accept", "application/json")],
                                           body: Array(body.utf8))
        let origin = "\(http.connection): \(URLRedaction.redact(tokenURL))"
        let parsed = try? JSONValue.parse(response.body)
        // Zoho's accounts server is reported to refuse a grant as `{"error": "invalid_code"}`, sometimes with HTTP
        // 200; its documentation does not say (docs/providers.md "Zoho Books", OAuth), so the safe reading: an
        // `error` member is a refusal whatever the status.
        if let error = parsed?["error"]?.stringValue {
            throw ProviderError.authentication(
                message: "\(origin) refused the refresh_token grant (HTTP \(response.status): \(clipped(error)))",
                hint: Self.hint)
        }
        switch response.status {
        case 200:
            guard let parsed else {
                throw ProviderError.malformed(path: "$", message: "\(origin): token response is not JSON: "
                    + ProviderHTTP.excerpt(response.body))
            }
            return try await cache.accept(parsed, started: started)
        case 400, 401, 403:
            throw ProviderError.authentication(
                message: "\(origin) refused the refresh_token grant (HTTP \(response.status): "
                    + "\(ProviderHTTP.excerpt(response.body, limit: 200)))", hint: Self.hint)
        case 429:
            let wait = http.retryAfter(response.headers) ?? http.waits.bounded(seconds: 60, source: "token endpoint 429")
            throw ProviderError.rateLimited(retryAfter: wait, message: "\(origin): token endpoint rate limited "
                + "(Zoho limits the access tokens one refresh token may mint per ten minutes)")
        default:
            throw ProviderError.http(status: response.status, message: "\(origin): token request failed: "
                + ProviderHTTP.excerpt(response.body))
        }
    }

    static let hint = "check client_id and client_secret in the Zoho API console, that refresh_token was issued to "
        + "this client (scope ZohoBooks.…READ) and is not revoked, and that data_center matches the organization's "
        + "(a refresh token works only at the accounts server that issued it)"
}
