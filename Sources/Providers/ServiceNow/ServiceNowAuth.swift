// ServiceNow authentication: HTTP Basic, or OAuth 2 access tokens from the instance's `/oauth_token.do`
// (provider-wire-facts §1.8; ServiceNowDocs r_RESTOAuthExample, client-credentials-grant-workflow).
//
// One authenticator per connection, shared by all its objects: a token is fetched once, cached until
// shortly before `expires_in`, and refreshed by a single request even when several objects need it at the
// same moment. A 401 from the Table API invalidates the token it was sent with, so the caller refreshes
// exactly once before giving up (docs/DESIGN.md §2 rule 11).
public import Foundation
public import Config
public import Core
import Crypto
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
                   refreshToken: Secret?)
    }

    private struct Token {
        var value: String
        var refreshAt: Date
    }

    private let mode: Mode
    private let http: ProviderHTTP
    private let tokenURL: String
    private let now: @Sendable () -> Date
    private var token: Token?
    private var inFlight: Task<Token, any Error>?
    /// A refresh token handed back by the instance replaces the configured one for later refreshes
    /// (ServiceNow keeps the same one by default; an instance that rotates them must not lock us out).
    private var latestRefreshToken: String?
    /// Where a rotated refresh token is kept across restarts (the state store), so a restart does not go back
    /// to a configured token the instance has already revoked (docs/DESIGN.md §2 rule 11). nil: memory only.
    private let authState: (any AuthStateStore)?
    private var loadedPersistedToken = false
    /// The auth_state key of the rotated refresh token.
    public static let refreshTokenKey = "servicenow.oauth.refresh_token"
    /// The lifetime assumed when `expires_in` is missing, zero, negative or unreadable: ServiceNow's default
    /// access token lives 30 minutes (wire facts §1.8), so refreshing after 25 leaves a margin — and a bad value
    /// must not turn into a token request before every API call.
    public static let fallbackLifetime: Int64 = 25 * 60
    /// Token requests sent so far (tests assert "refreshed exactly once").
    public private(set) var tokenRequests = 0

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
            mode = .oauth(grant: grant, clientID: clientID, clientSecret: clientSecret, username: username,
                          password: password, refreshToken: refreshToken)
        default:
            throw ProviderError.configuration(
                message: "\(http.connection): ServiceNow supports auth type \"basic\" or \"oauth2\"")
        }
        self.http = http
        self.tokenURL = baseURL + "/oauth_token.do"
        self.now = now
        self.authState = authState
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
        case .oauth:
            let current = try await validToken()
            return ServiceNowAuthorization(header: "Bearer \(current.value)", token: current.value)
        }
    }

    /// The API refused `token` (401): forget it, unless a newer one replaced it meanwhile.
    public func rejected(token rejectedToken: String?) {
        guard let rejectedToken, token?.value == rejectedToken else { return }
        token = nil
    }

    private func validToken() async throws -> Token {
        if let token, now() < token.refreshAt { return token }
        if let inFlight { return try await inFlight.value }
        let task = Task { try await self.requestToken() }
        inFlight = task
        defer { inFlight = nil }
        let fresh = try await task.value
        token = fresh
        return fresh
    }

    /// POSTs the grant to `/oauth_token.do` (form-encoded, client credentials in the body, which ServiceNow
    /// accepts for every grant) and reads `{access_token, expires_in, refresh_token?}`.
    private func requestToken() async throws -> Token {
        guard case .oauth(let grant, let clientID, let clientSecret, let username, let password, let refreshToken) = mode
        else { throw ProviderError.configuration(message: "\(http.connection): no OAuth configuration") }
        var form: [(String, String)] = [("grant_type", grant.rawValue), ("client_id", clientID),
                                        ("client_secret", clientSecret.unredactedValue)]
        switch grant {
        case .password:
            form.append(("username", username ?? ""))
            form.append(("password", password?.unredactedValue ?? ""))
        case .refreshToken:
            let configured = refreshToken?.unredactedValue ?? ""
            if !loadedPersistedToken {
                loadedPersistedToken = true
                latestRefreshToken = await loadPersistedRefreshToken(configured: configured)
            }
            form.append(("refresh_token", latestRefreshToken ?? configured))
        case .clientCredentials:
            break
        }
        tokenRequests += 1
        let started = now()
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
            let body = try response.json(context: "\(origin) token response")
            let reader = FieldReader(body, path: "$")
            let access = try reader.requiredString("access_token")
            // Registered before first use, so a 401 body that echoes it is already scrubbed (docs/DESIGN.md §1).
            http.scrubber?.registerRuntimeToken(access)
            // `expires_in` ≤ 0, missing or unreadable: assume the default lifetime rather than "already expired",
            // which would send a token request before every API call (docs/DESIGN.md §2 rules 11, 12).
            var lifetime = Self.fallbackLifetime
            switch body["expires_in"] {
            case .some(.integer(let seconds)) where seconds > 0: lifetime = seconds
            case .some(.string(let text)) where (Int64(text) ?? 0) > 0: lifetime = Int64(text) ?? lifetime
            default: break
            }
            lifetime = min(lifetime, 366 * 86_400) // beyond a year is a broken answer; Double stays exact
            if let returned = reader.optionalString("refresh_token") { http.scrubber?.registerRuntimeToken(returned) }
            if let rotated = reader.optionalString("refresh_token"), grant == .refreshToken,
               rotated != latestRefreshToken ?? refreshToken?.unredactedValue {
                latestRefreshToken = rotated
                await persistRefreshToken(rotated, configured: refreshToken?.unredactedValue ?? "")
            }
            // Refresh a little early so a token never expires between our check and the instance's.
            let margin = min(60.0, Double(lifetime) / 10)
            return Token(value: access, refreshAt: started.addingTimeInterval(Double(lifetime) - margin))
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

    /// The persisted rotated refresh token, when it was rotated from the refresh token configured now. The value
    /// is stored with a digest of the configured token it descends from: an operator who puts a new refresh_token
    /// in the config (after a revocation) gets it used, not the stale persisted one. The token itself is sealed
    /// (``sealingKey(configured:)``); a value written in the clear by an older version is still read.
    private func loadPersistedRefreshToken(configured: String) async -> String? {
        guard let authState else { return nil }
        do {
            guard let text = try await authState.loadAuthState(connection: http.connection, key: Self.refreshTokenKey),
                  let value = try? JSONValue.parse(Array(text.utf8)),
                  value["configured_sha256"]?.stringValue == Digest.sha256Hex(configured) else { return nil }
            let token: String
            if let sealed = value["sealed"]?.stringValue {
                guard let key = sealingKey(configured: configured), let bytes = Data(base64Encoded: sealed),
                      let opened = try? Seal.open(Array(bytes), key: key) else {
                    http.waits.logger?.warning("persisted OAuth refresh token cannot be unsealed (client_secret changed?); using the configured refresh_token",
                                               [.connection: http.connection])
                    return nil
                }
                token = String(decoding: opened, as: UTF8.self)
            } else {
                guard let clear = value["refresh_token"]?.stringValue else { return nil }
                token = clear
            }
            guard !token.isEmpty else { return nil }
            http.scrubber?.registerRuntimeToken(token)
            return token
        } catch {
            http.waits.logger?.warning("could not read persisted OAuth state", [.connection: http.connection],
                                       error: error)
            return nil
        }
    }

    /// Keeps a rotated refresh token for the next start, sealed with AES-256-GCM so the state file alone does not
    /// reveal it (docs/DESIGN.md §1). A failure is logged (never with the token) and the in-memory token still
    /// serves this process.
    private func persistRefreshToken(_ token: String, configured: String) async {
        guard let authState, let key = sealingKey(configured: configured) else { return }
        do {
            let sealed = try Seal.seal(Array(token.utf8), key: key)
            let value = JSONValue.object(JSONObject([("configured_sha256", .string(Digest.sha256Hex(configured))),
                                                     ("sealed", .string(Data(sealed).base64EncodedString()))]))
            try await authState.saveAuthState(connection: http.connection, key: Self.refreshTokenKey,
                                               value: value.serialized())
        } catch {
            http.waits.logger?.warning("could not persist the rotated OAuth refresh token", [.connection: http.connection],
                                       error: error)
        }
    }

    /// The key that seals the persisted refresh token: HMAC-SHA256 keyed by the configured client_secret over the
    /// connection and the configured refresh token. It lives only in the config's secrets, never in the store.
    private func sealingKey(configured: String) -> [UInt8]? {
        guard case .oauth(_, _, let clientSecret, _, _, _) = mode else { return nil }
        return HMAC.sha256(key: Array(clientSecret.unredactedValue.utf8),
                           message: Array("deltahook auth_state v1\u{0}\(http.connection)\u{0}\(configured)".utf8))
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
