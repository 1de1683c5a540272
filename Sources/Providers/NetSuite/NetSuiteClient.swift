// One NetSuite account: TBA signing, the per-account concurrency limit, SuiteQL requests and error mapping
// (docs/DESIGN.md §2 rules 9 and 11, §3; provider-wire-facts §2). Every object of a connection shares one client,
// because NetSuite's concurrency limit is per account.
public import Foundation
public import Core
import Crypto
public import HTTPClient

/// The parts of a SuiteQL response deltahook reads (`{links, count, hasMore, items, offset, totalResults}`).
public struct SuiteQLPage: Sendable {
    /// Items in response order, each parsed on its own when the page as a whole is not valid JSON (a `1e999`,
    /// invalid UTF-8 in one row), so one bad row is rejected instead of failing the page (docs/DESIGN.md §2 rule 16).
    public var elements: [RecordElement]
    /// The items that parsed; each an object of lower-case keys with string values (and `links`).
    public var items: [JSONValue] {
        elements.compactMap { element in
            if case .parsed(let value) = element { return value }
            return nil
        }
    }
    public var hasMore: Bool
    public var count: Int
    public var offset: Int
    public var totalResults: Int
}

/// The four Token-Based Authentication values of a NetSuite integration and its access token (`auth` `tba`).
public struct NetSuiteTokens: Sendable {
    public var consumerKey: String
    public var consumerSecret: String
    public var tokenID: String
    public var tokenSecret: String

    public init(consumerKey: String, consumerSecret: String, tokenID: String, tokenSecret: String) {
        self.consumerKey = consumerKey
        self.consumerSecret = consumerSecret
        self.tokenID = tokenID
        self.tokenSecret = tokenSecret
    }
}

/// A signed, concurrency-limited SuiteQL client for one NetSuite account.
public final class NetSuiteClient: Sendable {
    /// Tuning knobs; the defaults are NetSuite's documented limits.
    public struct Options: Sendable {
        /// Concurrent requests allowed on this account (config `max_concurrency`, default 5).
        public var maxConcurrency: Int
        /// How often a 429 is retried in place before the connection is told to wait (scheduler gate).
        public var rateLimitRetries: Int
        /// Longest in-place wait for a 429; longer waits go to the scheduler as `rateLimited`.
        public var maxInlineWait: Duration
        /// Backoff for 429s without Retry-After (NetSuite's concurrency 429 carries none).
        public var backoff: RateLimitBackoff
        /// SuiteQL's row cap per query (100,000, provider-wire-facts §2.2); lowered only by tests.
        public var rowCap: Int
        public var timeout: Duration
        /// Set by tests to reproduce the documented signature; nil = a fresh nonce and the current time.
        public var fixedNonce: String?
        public var fixedTimestamp: Int64?
        /// How long to wait before asking again when every cluster-wide slot of the account is taken.
        public var permitBackoff: PermitBackoff
        /// The cluster-wide semaphore (docs/DESIGN.md §2 rule 21): every request then also holds one of the account's
        /// `max_concurrency` slots, so all nodes together stay within the limit. nil: the local limit only.
        public var permits: (any ClusterPermits)?

        public init(maxConcurrency: Int = 5, rateLimitRetries: Int = 6, maxInlineWait: Duration = .seconds(30),
                    backoff: RateLimitBackoff = RateLimitBackoff(base: .milliseconds(500), cap: .seconds(30)),
                    rowCap: Int = 100_000, timeout: Duration = .seconds(120),
                    permitBackoff: PermitBackoff = PermitBackoff()) {
            self.maxConcurrency = maxConcurrency
            self.rateLimitRetries = rateLimitRetries
            self.maxInlineWait = maxInlineWait
            self.backoff = backoff
            self.rowCap = rowCap
            self.timeout = timeout
            self.permitBackoff = permitBackoff
        }
    }

    public let connection: String
    /// As configured, e.g. `1234567_SB1`.
    public let accountID: String
    /// `https://1234567-sb1.suitetalk.api.netsuite.com` unless overridden (emulators), no trailing slash.
    public let baseURL: String
    public let clock: NetSuiteClock
    public let options: Options
    private let credentials: OAuth1.Credentials
    private let http: ProviderHTTP
    private let semaphore: AsyncSemaphore
    /// The account's slots shared by every node of a cluster (docs/DESIGN.md §2 rule 21); nil: this process's
    /// semaphore is the only limit (tests, `poll-once`).
    private let permits: (any ClusterPermits)?

    /// Added to the request timeout for a cluster slot's ttl. A slot must outlive the request it covers — else
    /// a slow request's slot expires and another node takes it, and the account sees one request too many — so
    /// the ttl is the longest a request can take (`timeout`, a whole-transfer limit) plus time to sign, to take
    /// and give back the slot (two database writes) and for clock steps between nodes and the database.
    public static let permitTTLMargin: Duration = .seconds(30)

    /// - Parameters:
    ///   - baseURL: nil derives the host from the account id (`1234567_SB1` → `1234567-sb1.suitetalk…`).
    public init(connection: String, accountID: String, baseURL: String?, timeZone: TimeZone, tokens: NetSuiteTokens,
                transport: any HTTPTransport, options: Options = Options(), http: ProviderHTTP? = nil) {
        self.connection = connection
        self.accountID = accountID
        let base = baseURL ?? "https://\(Self.hostForm(accountID)).suitetalk.api.netsuite.com"
        self.baseURL = base.hasSuffix("/") ? String(base.dropLast()) : base
        clock = NetSuiteClock(zone: timeZone)
        self.options = options
        credentials = OAuth1.Credentials(realm: Self.realm(accountID), consumerKey: tokens.consumerKey,
                                         consumerSecret: tokens.consumerSecret, token: tokens.tokenID,
                                         tokenSecret: tokens.tokenSecret)
        // The factory passes the connection's limits, origins and logger; tests may build a plain one.
        self.http = http?.with(timeout: options.timeout)
            ?? ProviderHTTP(transport: transport, connection: connection, timeout: options.timeout)
        semaphore = AsyncSemaphore(value: max(1, options.maxConcurrency))
        self.permits = options.permits
    }

    /// The cluster-wide semaphore of this account: one name per account whatever the spelling of its id
    /// (`1234567_sb1` and `1234567-SB1` are one account), because NetSuite counts requests per account.
    public var permitName: String { "netsuite:\(Self.realm(accountID))" }

    /// How long a cluster slot is held at most: the request timeout plus ``permitTTLMargin``.
    public var permitTTL: Duration { options.timeout + Self.permitTTLMargin }

    /// OAuth realm: the account id upper-case with underscores (`1234567_SB1`), provider-wire-facts §2.1.
    public static func realm(_ accountID: String) -> String {
        accountID.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// Host label: lower-case with hyphens (`1234567-sb1`), provider-wire-facts §2.1.
    public static func hostForm(_ accountID: String) -> String {
        accountID.lowercased().replacingOccurrences(of: "_", with: "-")
    }

    /// The SuiteQL endpoint with `limit` and `offset`, which are signed (they are query parameters).
    public func suiteQLURL(limit: Int, offset: Int) -> String {
        "\(baseURL)/services/rest/query/v1/suiteql?limit=\(limit)&offset=\(offset)"
    }

    /// The `Authorization` header for one request (fresh nonce and timestamp unless fixed for tests).
    public func authorization(method: String, url: String) throws -> String {
        guard let parsed = URL(string: url) else {
            throw ProviderError.configuration(message: "\(connection): \(URLRedaction.redact(url)) is not a valid URL")
        }
        do {
            return try OAuth1.authorizationHeader(method: method, url: parsed, credentials: credentials,
                                                  nonce: options.fixedNonce, timestamp: options.fixedTimestamp)
        } catch let error as OAuth1.OAuthError {
            throw ProviderError.configuration(message: "\(connection): cannot sign the request: \(error.description)")
        }
    }

    /// Runs one SuiteQL page. `limit` must be 1…1000 and `offset` a multiple of it (NetSuite rejects others);
    /// `offset + limit` must stay within the row cap. 429s are retried with backoff; other failures throw.
    public func query(_ sql: String, limit: Int, offset: Int) async throws -> SuiteQLPage {
        guard (1...1000).contains(limit), offset >= 0, offset % limit == 0 else {
            throw ProviderError.configuration(message: "\(connection): SuiteQL needs 1 ≤ limit ≤ 1000 and an offset that is a multiple of the limit (limit \(limit), offset \(offset))")
        }
        guard offset + limit <= options.rowCap else {
            throw ProviderError.configuration(message: "\(connection): SuiteQL cannot page past \(options.rowCap) rows (offset \(offset)) for: \(sql)")
        }
        let url = suiteQLURL(limit: limit, offset: offset)
        let body = JSONValue.object(JSONObject([("q", .string(sql))])).serializedBytes()
        var rateLimitAttempts = 0
        var authRetried = false
        while true {
            try Task.checkCancellation()
            let response = try await semaphore.withPermit {
                try await withClusterPermit {
                    // Signed inside the permits so the timestamp is fresh when the request actually leaves.
                    let auth = try authorization(method: "POST", url: url)
                    return try await http.send(method: "POST", url: url, headers: [
                        (name: "Authorization", value: auth),
                        (name: "Content-Type", value: "application/json"),
                        (name: "Accept", value: "application/json"),
                        (name: "Prefer", value: "transient"),
                    ], body: body)
                }
            }
            switch response.status {
            case 200..<300:
                options.backoff.reset()
                return try parsePage(response, sql: sql)
            case 429:
                let detail = Self.errorSummary(response.body)
                // Bounded to max_provider_wait whatever the header says (docs/DESIGN.md §2 rule 12).
                let wait = http.retryAfter(response.headers)
                    ?? http.waits.bounded(options.backoff.nextWait(), source: "429 backoff")
                rateLimitAttempts += 1
                if rateLimitAttempts > options.rateLimitRetries || wait > options.maxInlineWait {
                    throw ProviderError.rateLimited(retryAfter: wait, message: "\(connection): NetSuite answered 429 (\(detail)); the account's concurrency limit is shared with other integrations — lower max_concurrency if this persists")
                }
                try await Task.sleep(for: wait)
            case 401:
                // TBA has nothing to refresh; one retry with a fresh nonce and timestamp rules out a one-off
                // nonce or clock hiccup (docs/DESIGN.md §2 rule 11), then it is an authentication failure.
                if !authRetried {
                    authRetried = true
                    continue
                }
                throw ProviderError.authentication(
                    message: "\(connection): NetSuite rejected the Token-Based Authentication signature (HTTP 401: \(Self.errorSummary(response.body)))",
                    hint: "check the machine clock and the token/consumer secrets; TBA signatures expire (also check account_id \(credentials.realm ?? accountID) and that the token's role is active)")
            case 403:
                throw ProviderError.permission(message: "\(connection): NetSuite refused the query (HTTP 403: \(Self.errorSummary(response.body))) for: \(sql)")
            default:
                throw ProviderError.http(status: response.status,
                                         message: "\(connection): SuiteQL failed (\(Self.errorSummary(response.body))) for: \(sql)")
            }
        }
    }

    /// Runs one request holding one of the account's cluster-wide slots (inside the local semaphore, so a node
    /// waits for the cluster with at most `max_concurrency` requests). Without `permits`, just runs it.
    private func withClusterPermit<T: Sendable>(_ request: () async throws -> T) async throws -> T {
        guard let permits else { return try await request() }
        do {
            return try await permits.withPermit(name: permitName, capacity: max(1, options.maxConcurrency),
                                                ttl: permitTTL, backoff: options.permitBackoff, request)
        } catch let error as ProviderError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // The cluster's database did not answer: the request was not sent; the engine retries the cycle.
            throw ProviderError.transport(message: "\(connection): cannot take a slot of \(permitName) "
                + "(the cluster-wide max_concurrency): \(error)")
        }
    }

    private func parsePage(_ response: ProviderResponse, sql: String) throws -> SuiteQLPage {
        let (json, items) = try RecordArrayParser.parse(response.body, recordsPath: ["items"], pathText: "$.items",
                                                        idPath: ["id"], context: "\(connection): SuiteQL response")
        guard case .array? = json["items"] else {
            throw ProviderError.malformed(path: "$.items", message: "\(connection): expected an array of rows for: \(sql)")
        }
        func int(_ key: String) throws -> Int {
            guard let value = json[key]?.int64Value else {
                throw ProviderError.malformed(path: "$.\(key)", message: "\(connection): expected a number")
            }
            return Int(value)
        }
        guard let hasMore = json["hasMore"]?.boolValue else {
            throw ProviderError.malformed(path: "$.hasMore", message: "\(connection): expected a boolean")
        }
        return SuiteQLPage(elements: items, hasMore: hasMore, count: try int("count"), offset: try int("offset"),
                           totalResults: try int("totalResults"))
    }

    /// `title`, then each `o:errorDetails[].o:errorCode: detail` (provider-wire-facts §2.4), or a body excerpt.
    public static func errorSummary(_ body: [UInt8]) -> String {
        guard let json = try? JSONValue.parse(body), case .object = json else {
            return body.isEmpty ? "empty body" : ProviderHTTP.excerpt(body)
        }
        var parts = [String]()
        if let title = json["title"]?.stringValue { parts.append(title) }
        for detail in json["o:errorDetails"]?.arrayValue ?? [] {
            let code = detail["o:errorCode"]?.stringValue ?? "?"
            let text = detail["detail"]?.stringValue ?? ""
            parts.append(text.isEmpty ? code : "\(code): \(String(text.prefix(300)))")
        }
        return parts.isEmpty ? ProviderHTTP.excerpt(body) : parts.joined(separator: "; ")
    }
}
