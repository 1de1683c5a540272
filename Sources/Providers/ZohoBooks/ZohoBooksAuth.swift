// Zoho OAuth access tokens for one Zoho Books connection (docs/providers.md "Zoho Books", [ZA1][ZA2]).
//
// Zoho access tokens live one hour (`expires_in: 3600`); the refresh-token grant is a POST to the data
// center's accounts server, `{accounts}/oauth/v2/token`, with `grant_type=refresh_token`, `client_id`,
// `client_secret` and `refresh_token`. One authenticator per connection, shared by its objects: a token is
// fetched once, refreshed about 5 minutes before it expires by a single request even when several objects need
// it at once, and a 401 from the API invalidates the token it was sent with so the client refreshes exactly once
// before giving up (docs/DESIGN.md §2 rule 11). Zoho documents no rotation of refresh tokens, but a response that
// carries one replaces the configured token and is kept sealed in the state store, as ServiceNow's is, because a
// restart must not go back to a token the server has retired.
public import Foundation
public import Config
public import Core
import Crypto
import HTTPClient

public actor ZohoBooksAuthenticator {
    private struct Token {
        var value: String
        var refreshAt: Date
    }

    private let clientID: String
    private let clientSecret: Secret
    private let configuredRefresh: Secret
    private let http: ProviderHTTP
    /// `{accounts}/oauth/v2/token`.
    public let tokenURL: String
    private let now: @Sendable () -> Date
    private let authState: (any AuthStateStore)?
    private var token: Token?
    private var inFlight: Task<Token, any Error>?
    private var latestRefreshToken: String?
    private var loadedPersisted = false
    /// Token requests sent so far (tests assert "refreshed once").
    public private(set) var tokenRequests = 0

    /// The auth_state key of a rotated refresh token.
    public static let refreshTokenKey = "zoho_books.oauth.refresh_token"
    /// Refresh this long before `expires_in` runs out, so a token never expires between our check and Zoho's.
    public static let refreshMargin: TimeInterval = 300
    /// Zoho's documented lifetime, assumed when `expires_in` is missing, zero, negative or unreadable: a bad value
    /// must not turn into a token request before every API call (rule 11). Zoho also limits how many access tokens
    /// a refresh token may mint in ten minutes, which makes that failure mode worse than elsewhere ([ZA1]).
    public static let fallbackLifetime: Int64 = 3600

    public init(clientID: String, clientSecret: Secret, refreshToken: Secret, tokenURL: String, http: ProviderHTTP,
                now: @escaping @Sendable () -> Date = { Date() }, authState: (any AuthStateStore)? = nil) {
        self.clientID = clientID
        self.clientSecret = clientSecret
        configuredRefresh = refreshToken
        self.tokenURL = tokenURL
        self.http = http
        self.now = now
        self.authState = authState
    }

    /// `Zoho-oauthtoken <token>`, Zoho's own scheme for the `Authorization` header ([ZB1]), and the token itself.
    public func authorization() async throws -> (header: String, token: String) {
        let current = try await validToken()
        return ("Zoho-oauthtoken \(current.value)", current.value)
    }

    /// The API refused `rejected` (401): forget it, unless a newer one replaced it meanwhile.
    public func rejected(token rejected: String) {
        if token?.value == rejected { token = nil }
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

    private func requestToken() async throws -> Token {
        let configured = configuredRefresh.unredactedValue
        if !loadedPersisted {
            loadedPersisted = true
            latestRefreshToken = await loadPersisted(configured: configured)
        }
        let form = [("grant_type", "refresh_token"), ("client_id", clientID),
                    ("client_secret", clientSecret.unredactedValue), ("refresh_token", latestRefreshToken ?? configured)]
        let body = form.map { "\(PercentEncoding.rfc3986($0.0))=\(PercentEncoding.rfc3986($0.1))" }.joined(separator: "&")
        tokenRequests += 1
        let started = now()
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
            let reader = FieldReader(parsed, path: "$")
            let access = try reader.requiredString("access_token")
            // Registered before first use, so an error body that echoes it is already scrubbed (docs/DESIGN.md §1).
            http.scrubber?.registerRuntimeToken(access)
            var lifetime = Self.fallbackLifetime
            switch parsed["expires_in"] {
            case .some(.integer(let seconds)) where seconds > 0: lifetime = seconds
            case .some(.string(let text)) where (Int64(text) ?? 0) > 0: lifetime = Int64(text) ?? lifetime
            default: break
            }
            lifetime = min(lifetime, 366 * 86_400) // rule 12: a year is already absurd; Double stays exact
            if let rotated = reader.optionalString("refresh_token") {
                http.scrubber?.registerRuntimeToken(rotated)
                if rotated != (latestRefreshToken ?? configured) {
                    latestRefreshToken = rotated
                    await persist(rotated, configured: configured)
                }
            }
            // Five minutes early, but never more than half the lifetime (a short-lived token still gets used).
            let margin = min(Self.refreshMargin, Double(lifetime) / 2)
            return Token(value: access, refreshAt: started.addingTimeInterval(Double(lifetime) - margin))
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

    // MARK: Rotated refresh token (sealed, docs/DESIGN.md §1)

    private func sealingKey(configured: String) -> [UInt8] {
        HMAC.sha256(key: Array(clientSecret.unredactedValue.utf8),
                    message: Array("deltahook auth_state v1\u{0}\(http.connection)\u{0}\(configured)".utf8))
    }

    private func loadPersisted(configured: String) async -> String? {
        guard let authState else { return nil }
        do {
            guard let text = try await authState.loadAuthState(connection: http.connection, key: Self.refreshTokenKey),
                  let value = try? JSONValue.parse(Array(text.utf8)),
                  value["configured_sha256"]?.stringValue == Digest.sha256Hex(configured),
                  let sealed = value["sealed"]?.stringValue, let bytes = Data(base64Encoded: sealed),
                  let opened = try? Seal.open(Array(bytes), key: sealingKey(configured: configured)) else { return nil }
            let token = String(decoding: opened, as: UTF8.self)
            guard !token.isEmpty else { return nil }
            http.scrubber?.registerRuntimeToken(token)
            return token
        } catch {
            http.waits.logger?.warning("could not read persisted Zoho OAuth state", [.connection: http.connection],
                                       error: error)
            return nil
        }
    }

    private func persist(_ token: String, configured: String) async {
        guard let authState else { return }
        do {
            let sealed = try Seal.seal(Array(token.utf8), key: sealingKey(configured: configured))
            let value = JSONValue.object(JSONObject([("configured_sha256", .string(Digest.sha256Hex(configured))),
                                                     ("sealed", .string(Data(sealed).base64EncodedString()))]))
            try await authState.saveAuthState(connection: http.connection, key: Self.refreshTokenKey,
                                               value: value.serialized())
        } catch {
            http.waits.logger?.warning("could not persist the rotated Zoho refresh token", [.connection: http.connection],
                                       error: error)
        }
    }
}
