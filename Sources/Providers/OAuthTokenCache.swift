// What every OAuth 2 provider of deltahook does with its access tokens (ServiceNow's `/oauth_token.do`, Zoho's
// accounts server): one token per connection, fetched once and shared by its objects, refreshed a little before it
// expires by a single request even when several objects need it at once, and forgotten when the API rejects it so
// the caller refreshes exactly once before giving up (docs/DESIGN.md §2 rule 11). A refresh token the server hands
// back replaces the configured one and is kept sealed in the state store, because a restart must not go back to a
// token the server has retired (docs/DESIGN.md §1).
//
// Written once so both providers keep the same guarantees; what differs — the grant's form, how a refusal looks,
// the documented lifetime and how early to refresh — stays in each authenticator (`OAuthTokenPolicy`).
import Foundation
import Config
import Core
import Crypto

/// An access token and the moment to stop using it.
struct OAuthAccessToken: Sendable {
    var value: String
    var refreshAt: Date
}

/// The members of a token response (RFC 6749 §5.1) deltahook reads, with outside input made safe: a missing, zero,
/// negative or unreadable `expires_in` becomes the provider's documented lifetime — never "already expired", which
/// would send a token request before every API call (rules 11, 12) — and anything beyond a year is cut to a year
/// (a broken answer; it also keeps the `Double` arithmetic exact).
struct OAuthTokenResponse: Sendable {
    var accessToken: String
    /// Seconds, in `1...366 days`.
    var lifetime: Int64
    var refreshToken: String?

    init(_ body: JSONValue, fallbackLifetime: Int64) throws {
        let reader = FieldReader(body, path: "$")
        accessToken = try reader.requiredString("access_token")
        var lifetime = fallbackLifetime
        switch body["expires_in"] {
        case .some(.integer(let seconds)) where seconds > 0: lifetime = seconds
        case .some(.string(let text)) where (Int64(text) ?? 0) > 0: lifetime = Int64(text) ?? lifetime
        default: break
        }
        self.lifetime = min(lifetime, 366 * 86_400)
        refreshToken = reader.optionalString("refresh_token")
    }
}

/// What differs between providers in caching their tokens.
struct OAuthTokenPolicy: Sendable {
    /// The auth_state key a rotated refresh token is kept under.
    var refreshTokenKey: String
    /// The lifetime assumed when `expires_in` is missing or unusable (the provider's documented one).
    var fallbackLifetime: Int64
    /// Refresh this long before the token expires, so it never expires between our check and the server's…
    var refreshMargin: TimeInterval
    /// …but never more than this share of its lifetime, so a short-lived token still gets used.
    var maxMarginShare: Double
}

/// The token state of one OAuth connection. The owning authenticator builds the grant and reads the response's
/// status; this actor decides when a request is needed, makes concurrent callers share one, and keeps the
/// refresh token current.
actor OAuthTokenCache {
    private let http: ProviderHTTP
    private let clientSecret: Secret
    /// nil when the grant uses no refresh token (client credentials, password): nothing to rotate.
    private let configuredRefreshToken: String?
    private let authState: (any AuthStateStore)?
    private let now: @Sendable () -> Date
    private let policy: OAuthTokenPolicy
    private var token: OAuthAccessToken?
    private var inFlight: Task<OAuthAccessToken, any Error>?
    private var latestRefreshToken: String?
    private var loadedPersisted = false
    /// Token requests started so far (tests assert "refreshed exactly once").
    private(set) var tokenRequests = 0

    init(http: ProviderHTTP, clientSecret: Secret, configuredRefreshToken: String?, authState: (any AuthStateStore)?,
         now: @escaping @Sendable () -> Date, policy: OAuthTokenPolicy) {
        self.http = http
        self.clientSecret = clientSecret
        self.configuredRefreshToken = configuredRefreshToken
        self.authState = authState
        self.now = now
        self.policy = policy
    }

    /// The cached token while it is fresh; otherwise one `fetch` shared by every caller that arrives meanwhile.
    func validToken(fetch: @escaping @Sendable () async throws -> OAuthAccessToken) async throws -> OAuthAccessToken {
        if let token, now() < token.refreshAt { return token }
        if let inFlight { return try await inFlight.value }
        tokenRequests += 1
        let task = Task { try await fetch() }
        inFlight = task
        defer { inFlight = nil }
        let fresh = try await task.value
        token = fresh
        return fresh
    }

    /// The API refused `rejected` (401): forget it, unless a newer one replaced it meanwhile.
    func rejected(token rejected: String) {
        if token?.value == rejected { token = nil }
    }

    /// The clock reading a token request starts at: its lifetime counts from before the request was sent.
    func requestStarted() -> Date { now() }

    /// The refresh token to send: the rotated one (read from the store on first use) or the configured one.
    func refreshToken() async -> String {
        let configured = configuredRefreshToken ?? ""
        if !loadedPersisted {
            loadedPersisted = true
            latestRefreshToken = await loadPersisted(configured: configured)
        }
        return latestRefreshToken ?? configured
    }

    /// Takes a successful token response: registers every token with the scrubber before first use (so an error
    /// body that echoes one is already scrubbed, docs/DESIGN.md §1), keeps a rotated refresh token, and returns
    /// the access token with its refresh time counted from `started`.
    func accept(_ body: JSONValue, started: Date) async throws -> OAuthAccessToken {
        let response = try OAuthTokenResponse(body, fallbackLifetime: policy.fallbackLifetime)
        http.scrubber?.registerRuntimeToken(response.accessToken)
        if let rotated = response.refreshToken {
            http.scrubber?.registerRuntimeToken(rotated)
            if let configured = configuredRefreshToken, rotated != (latestRefreshToken ?? configured) {
                latestRefreshToken = rotated
                await persist(rotated, configured: configured)
            }
        }
        let lifetime = Double(response.lifetime)
        let margin = min(policy.refreshMargin, lifetime * policy.maxMarginShare)
        return OAuthAccessToken(value: response.accessToken, refreshAt: started.addingTimeInterval(lifetime - margin))
    }

    // MARK: Rotated refresh token (sealed, docs/DESIGN.md §1)

    /// The key that seals the persisted refresh token: HMAC-SHA256 keyed by the configured client_secret over the
    /// connection and the configured refresh token. It lives only in the config's secrets, never in the store.
    private func sealingKey(configured: String) -> [UInt8] {
        HMAC.sha256(key: Array(clientSecret.unredactedValue.utf8),
                    message: Array("deltahook auth_state v1\u{0}\(http.connection)\u{0}\(configured)".utf8))
    }

    /// The persisted rotated refresh token, when it was rotated from the refresh token configured now. The value
    /// is stored with a digest of the configured token it descends from: an operator who puts a new refresh_token
    /// in the config (after a revocation) gets it used, not the stale persisted one. A value written in the clear
    /// by an older version is still read.
    private func loadPersisted(configured: String) async -> String? {
        guard let authState, configuredRefreshToken != nil else { return nil }
        do {
            guard let text = try await authState.loadAuthState(connection: http.connection, key: policy.refreshTokenKey),
                  let value = try? JSONValue.parse(Array(text.utf8)),
                  value["configured_sha256"]?.stringValue == Digest.sha256Hex(configured) else { return nil }
            let token: String
            if let sealed = value["sealed"]?.stringValue {
                guard let bytes = Data(base64Encoded: sealed),
                      let opened = try? Seal.open(Array(bytes), key: sealingKey(configured: configured)) else {
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
    /// reveal it. A failure is logged (never with the token) and the in-memory token still serves this process.
    private func persist(_ token: String, configured: String) async {
        guard let authState else { return }
        do {
            let sealed = try Seal.seal(Array(token.utf8), key: sealingKey(configured: configured))
            let value = JSONValue.object(JSONObject([("configured_sha256", .string(Digest.sha256Hex(configured))),
                                                     ("sealed", .string(Data(sealed).base64EncodedString()))]))
            try await authState.saveAuthState(connection: http.connection, key: policy.refreshTokenKey,
                                               value: value.serialized())
        } catch {
            http.waits.logger?.warning("could not persist the rotated OAuth refresh token", [.connection: http.connection],
                                       error: error)
        }
    }
}
