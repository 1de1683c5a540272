// The ServiceNow emulator's public nested types: options, faults and what it records about requests.
// The emulator itself is in ServiceNowEmulator.swift.
public import Foundation

extension ServiceNowEmulator {
    /// Which `rel="prev"` the first page's `Link` header carries (wire facts §1.5: captures show
    /// `sysparm_offset=-1` with limit 1; a 2019 report shows none).
    public enum FirstPagePrev: Sendable, Equatable {
        case none
        /// `sysparm_offset=-1` literally.
        case minusOne
        /// `sysparm_offset=-limit` (identical to `minusOne` for limit 1, the only captured case).
        case minusLimit
    }

    public struct Options: Sendable {
        /// Basic-auth users, also accepted by the password grant (username → password).
        public var users: [String: String]
        /// OAuth application registry entries (client_id → client_secret).
        public var oauthClients: [String: String]
        /// Refresh tokens valid from the start (a refresh_token-grant config needs one).
        public var refreshTokens: Set<String>
        /// `expires_in` of access tokens, in seconds (ServiceNow default lifespan 1800, answered as 1799).
        public var tokenLifetime: Int
        /// System property `glide.oauth.inbound.client.credential.grant_type.enabled`.
        public var clientCredentialsEnabled: Bool
        public var firstPagePrev: FirstPagePrev
        /// The refresh_token grant answers with a NEW refresh token and revokes the presented one, as an instance
        /// configured to rotate refresh tokens does (docs/DESIGN.md §2 rule 11). Default: the same token back.
        public var rotateRefreshTokens = false
        /// The JSON text of `expires_in` in token answers when set (`"0"`, `"-5"`, `"\"soon\""`), or `""` to leave the
        /// member out; the token's real lifetime stays `tokenLifetime`. nil: `tokenLifetime`, as the instance says.
        public var advertisedExpiresIn: String?

        public init(users: [String: String] = ["admin": "admin-password"],
                    oauthClients: [String: String] = ["deltahook": "client-secret"],
                    refreshTokens: Set<String> = ["configured-refresh-token"], tokenLifetime: Int = 1799,
                    clientCredentialsEnabled: Bool = true, firstPagePrev: FirstPagePrev = .minusOne) {
            self.users = users
            self.oauthClients = oauthClients
            self.refreshTokens = refreshTokens
            self.tokenLifetime = tokenLifetime
            self.clientCredentialsEnabled = clientCredentialsEnabled
            self.firstPagePrev = firstPagePrev
        }
    }

    /// A canned failure for the next Table API request(s).
    public enum Fault: Sendable, Equatable {
        /// 429; with `retryAfter` the rate-limit-rule headers too, without it no headers at all (§1.7).
        case rateLimited(retryAfter: Int?)
        /// Any status with the ServiceNow error envelope (`detail` nil → JSON null).
        case error(status: Int, message: String, detail: String?)
        /// 200 with an HTML page, as a hibernating developer instance answers.
        case hibernating
        /// Reset the TCP connection without answering.
        case connectionReset
        /// 429 with these exact header texts (nil: header left out), for hostile values such as
        /// `Retry-After: 99999999999999999999` or `X-RateLimit-Reset: 9223372036854775807` (docs/DESIGN.md §2 rule 12).
        case rateLimitedWith(retryAfter: String?, reset: String?)
        /// 401 whose error detail echoes the request's `Authorization` header, as careless proxies and some
        /// instance scripts do: the daemon must never store or print it (docs/DESIGN.md §1).
        case unauthorizedEchoingAuthorization
    }

    /// What a Table API request asked for, given to the request hook.
    public struct TableRequest: Sendable {
        /// 1-based count of Table API requests so far, this one included.
        public var number: Int
        public var table: String
        public var query: [String: String]
    }

    /// One answered request, for assertions.
    public struct LoggedRequest: Sendable {
        public var method: String
        public var path: String
        public var query: [String: String]
        public var status: Int
    }

    public struct EmulatorError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }
}
