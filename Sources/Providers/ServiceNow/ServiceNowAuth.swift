// ServiceNow authentication: HTTP Basic, or OAuth 2 access tokens from the instance's `/oauth_token.do`
// (provider-wire-facts §1.8; ServiceNowDocs r_RESTOAuthExample, client-credentials-grant-workflow).
//
// One authenticator per connection, shared by all its objects: a token is fetched once, cached until
// shortly before `expires_in`, and refreshed by a single request even when several objects need it at the
// same moment. A 401 from the Table API invalidates the token it was sent with, so the caller refreshes
// exactly once before giving up (docs/DESIGN.md §2 rule 11). The caching and the refresh-token rotation are
// `OAuthTokenCache`'s, shared with Zoho Books; the grants and ServiceNow's ways of failing stay here.
public import Foundation
public import Config
public import Core
import HTTPClient

/// What goes into the `Authorization` header, and the token it carries (nil for Basic) so a 401 can
/// invalidate exactly that token.
public struct ServiceNowAuthorization: Sendable {
    public var header: String
    public var token: String?
}

public actor ServiceNowAuthenticator {
    private enum Mode {
        case basic(header: String)
        case oauth(grant: OAuth2Grant, clientID: String, clientSecret: Secret, username: String?, password: Secret?,
                   cache: OAuthTokenCache)
    }

    private let mode: Mode
    private let http: ProviderHTTP
    private let tokenURL: String
    /// The auth_state key of the rotated refresh token.
    public static let refreshTokenKey = "servicenow.oauth.refresh_token"
    /// The lifetime assumed when `expires_in` is missing, zero, negative or unreadable: ServiceNow's default
    /// access token lives 30 minutes (wire facts §1.8), so refreshing after 25 leaves a margin — and a bad value
    /// must not turn into a token request before every API call.
    public static let fallbackLifetime: Int64 = 25 * 60
    /// Token requests sent so far (tests assert "refreshed exactly once").
    public var tokenRequests: Int {
        get async {
            guard case .oauth(_, _, _, _, _, let cache) = mode else { return 0 }
            return await cache.tokenRequests
        }
    }

    /// - Parameters:
    ///   - baseURL: the instance URL without a trailing slash (`https://acme.service-now.com`).
    ///   - now: the clock deciding when a cached token is too old (tests inject one).
    ///   - authState: keeps a rotated refresh token across restarts (nil: memory only).
    public init(auth: AuthConfig, baseURL: String, http: ProviderHTTP, now: @escaping @Sendable () -> Date = { Date() },
                authState: (any AuthStateStore)? = nil) throws {
        switch auth {
        case .basic(let username, let password):
            let pair = Data("\(username):\(password.unredactedValue)".utf8).base64EncodedString()
            mode = .basic(header: "Basic \(pair)")
        case .oauth2(let grant, let clientID, let clientSecret, let username, let password, let refreshToken):
            switch grant {
            case .password where username == nil || password == nil:
                throw ProviderError.configuration(message: "\(http.connection): the oauth2 password grant needs username and password")
            case .refreshToken where refreshToken == nil:
                throw ProviderError.configuration(message: "\(http.connection): the oauth2 refresh_token grant needs refresh_token")
            default: break
            }
            // A refresh token the instance hands back replaces the configured one for later refreshes (ServiceNow
            // keeps the same one by default; an instance that rotates them must not lock us out), and is kept in
            // the state store across restarts. Only the refresh_token grant has one to rotate.
            let cache = OAuthTokenCache(
                http: http, clientSecret: clientSecret,
                configuredRefreshToken: grant == .refreshToken ? refreshToken?.unredactedValue : nil,
                authState: authState, now: now,
                // Refresh a minute early (a tenth of the lifetime at most) so a token never expires between our
                // check and the instance's.
                policy: OAuthTokenPolicy(refreshTokenKey: Self.refreshTokenKey, fallbackLifetime: Self.fallbackLifetime,
                                         refreshMargin: 60, maxMarginShare: 0.1))
            mode = .oauth(grant: grant, clientID: clientID, clientSecret: clientSecret, username: username,
                          password: password, cache: cache)
        default:
            throw ProviderError.configuration(
                message: "\(http.connection): ServiceNow supports auth type \"basic\" or \"oauth2\"")
        }
        self.http = http
        self.tokenURL = baseURL + "/oauth_token.do"
    }

    public var usesOAuth: Bool {
        if case .oauth = mode { return true }
        return false
    }

    /// The header for the next API request: Basic credentials, or a cached/refreshed bearer token.
    public func authorization() async throws -> ServiceNowAuthorization {
        switch mode {
        case .basic(let header):
            return ServiceNowAuthorization(header: header, token: nil)
        case .oauth(_, _, _, _, _, let cache):
            let current = try await cache.validToken { try await self.requestToken() }
            return ServiceNowAuthorization(header: "Bearer \(current.value)", token: current.value)
        }
    }

    /// The API refused `token` (401): forget it, unless a newer one replaced it meanwhile.
    public func rejected(token rejectedToken: String?) async {
        guard let rejectedToken, case .oauth(_, _, _, _, _, let cache) = mode else { return }
        await cache.rejected(token: rejectedToken)
    }

    /// POSTs the grant to `/oauth_token.do` (form-encoded, client credentials in the body, which ServiceNow
    /// accepts for every grant) and reads `{access_token, expires_in, refresh_token?}`.
    private func requestToken() async throws -> OAuthAccessToken {
        guard case .oauth(let grant, let clientID, let clientSecret, let username, let password, let cache) = mode
        else { throw ProviderError.configuration(message: "\(http.connection): no OAuth configuration") }
        var form: [(String, String)] = [("grant_type", grant.rawValue), ("client_id", clientID),
                                        ("client_secret", clientSecret.unredactedValue)]
        switch grant {
        case .password:
            form.append(("username", username ?? ""))
            form.append(("password", password?.unredactedValue ?? ""))
        case .refreshToken:
            form.append(("refresh_token", await cache.refreshToken()))
        case .clientCredentials:
            break
        }
        let started = await cache.requestStarted()
        let response = try await http.send(
            method: "POST", url: tokenURL,
            headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")],
            body: Array(ServiceNowQuery.queryString(form).utf8))
        let origin = "\(http.connection): \(URLRedaction.redact(tokenURL))"
        switch response.status {
        case 200:
            guard !ServiceNowClient.looksLikeHTML(response) else {
                throw ProviderError.http(status: 200, message: "\(origin) answered with an HTML page instead of a token: "
                                         + ServiceNowClient.hibernationAdvice)
            }
            return try await cache.accept(try response.json(context: "\(origin) token response"), started: started)
        case 400, 401, 403:
            throw ProviderError.authentication(
                message: "\(origin) refused the \(grant.rawValue) grant (HTTP \(response.status): \(Self.oauthErrorText(response)))",
                hint: Self.hint(for: grant))
        case 429:
            if let wait = http.retryAfter(response.headers) {
                throw ProviderError.rateLimited(retryAfter: wait, message: "\(origin): token endpoint rate limited")
            }
            throw ProviderError.http(status: 429, message: "\(origin): token endpoint rate limited")
        default:
            throw ProviderError.http(status: response.status,
                                     message: "\(origin): token request failed: \(ProviderHTTP.excerpt(response.body))")
        }
    }

    /// ServiceNow answers failures with `{"error_description":"access_denied","error":"server_error"}`
    /// rather than RFC 6749 codes (wire facts §1.8), so both members are shown as they came.
    private static func oauthErrorText(_ response: ProviderResponse) -> String {
        guard let body = try? JSONValue.parse(response.body) else { return ProviderHTTP.excerpt(response.body, limit: 200) }
        let parts = [body["error"]?.stringValue, body["error_description"]?.stringValue].compactMap { $0 }
        return parts.isEmpty ? ProviderHTTP.excerpt(response.body, limit: 200) : parts.joined(separator: ": ")
    }

    static func hint(for grant: OAuth2Grant) -> String {
        let common = "check client_id and client_secret against the instance's OAuth Application Registry entry"
        switch grant {
        case .password:
            return common + ", and the username/password of the integration user (not locked out, password not expired)"
        case .refreshToken:
            return common + ", and that refresh_token was issued to this client and is neither expired nor revoked"
        case .clientCredentials:
            return common + "; the client_credentials grant also needs the system property "
                + "glide.oauth.inbound.client.credential.grant_type.enabled = true and an OAuth Application User on the entry"
        }
    }
}
