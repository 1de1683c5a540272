// The typed configuration (docs/DESIGN.md §6). Every value here has passed validation and every secret is resolved.
public import Foundation
public import Core

/// A fully valid deltahook configuration.
public struct DeltahookConfig: Sendable {
    /// Where the SQLite store lives: `state_directory`, else `$STATE_DIRECTORY`, else `/var/lib/deltahook`.
    public var stateDirectory: String
    public var logLevel: ConfigLogLevel
    /// The optional loopback listener for `/metrics` and `/healthz`; nil when `http` is absent.
    public var http: HTTPListenConfig?
    public var connections: [ConnectionConfig]
    public var subscribers: [SubscriberConfig]
    public var delivery: DeliveryConfig
    /// Bound on the SIGTERM drain (default 10 s).
    public var shutdownTimeout: Duration
    /// How long finished rows stay in the store (docs/DESIGN.md §6 `retention`).
    public var retention: RetentionConfig = .defaults
    /// Which database holds the state, and this daemon's part in a cluster (docs/DESIGN.md §6 `store`).
    public var store: StoreConfig = .defaults
    /// Push hints: listener, debounce window, rate (docs/DESIGN.md §6 `hints`; `Config/HintsConfig.swift`).
    public var hints: HintsConfig = .defaults

    /// Every resolved secret, for registering with the process's `SecretScrubber` (Core).
    public var allSecrets: [Secret] {
        var out: [Secret] = []
        for connection in connections { out += connection.auth.secrets }
        for connection in connections { if let hints = connection.hints { out.append(hints.secret) } }
        for subscriber in subscribers { out += subscriber.secrets.map(\.secret) }
        if case .postgres(let url) = store.backend { out.append(url) }
        return out
    }

    /// Texts a log scrubber must never let through: every secret, plus the base64 key part of `whsec_`
    /// secrets (a key may be printed without its prefix by mistake).
    public var redactionTexts: [String] {
        var out = allSecrets.map(\.unredactedValue)
        // An `Authorization: Basic` value is as good as the password; a 401 body may echo the header.
        for connection in connections {
            if case .basic(let username, let password) = connection.auth {
                out.append(Data("\(username):\(password.unredactedValue)".utf8).base64EncodedString())
            }
        }
        for subscriber in subscribers {
            out += subscriber.secrets.map { String($0.secret.unredactedValue.dropFirst(WebhookSecret.prefix.count)) }
        }
        return out + store.redactionTexts
    }

    /// Teaches `scrubber` every configured secret and every subscriber URL (shown as `scheme://host[:port]/…`,
    /// since hooks carry their secret in the path). Called at start and on every reload; a secret of the old
    /// config stays registered, because texts that mention it may still be in flight.
    public func register(in scrubber: SecretScrubber) {
        scrubber.register(contentsOf: redactionTexts)
        for subscriber in subscribers { scrubber.registerSubscriberURL(subscriber.url.absoluteString) }
    }

    public func connection(id: String) -> ConnectionConfig? { connections.first { $0.id == id } }

    /// Which connections differ from `old` (a reload's summary): ids added, changed (another revision) and removed.
    public func connectionChanges(since old: DeltahookConfig) -> ConnectionChanges {
        let before = Dictionary(old.connections.map { ($0.id, $0.revision) }, uniquingKeysWith: { a, _ in a })
        let now = Set(connections.map(\.id))
        var changes = ConnectionChanges()
        for connection in connections {
            guard let revision = before[connection.id] else { changes.added.append(connection.id); continue }
            if revision != connection.revision || revision.isEmpty { changes.changed.append(connection.id) }
        }
        changes.removed = before.keys.filter { !now.contains($0) }
        changes.added.sort()
        changes.changed.sort()
        changes.removed.sort()
        return changes
    }

    /// Configured (connection, object) pairs: what a cluster's nodes divide among themselves.
    public var objectCount: Int { connections.reduce(0) { $0 + $1.objects.count } }
    public func subscriber(id: String) -> SubscriberConfig? { subscribers.first { $0.id == id } }
}

/// Connection ids a reload adds, changes and removes, each sorted.
public struct ConnectionChanges: Sendable, Equatable {
    public var added: [String] = []
    public var changed: [String] = []
    public var removed: [String] = []

    public init(added: [String] = [], changed: [String] = [], removed: [String] = []) {
        self.added = added
        self.changed = changed
        self.removed = removed
    }
}

/// `log_level` names; the Logging module maps them to its `LogLevel` by name.
public enum ConfigLogLevel: String, Sendable, CaseIterable {
    case debug, info, notice, warning, error, critical
}

/// `http.listen`: `"127.0.0.1:9464"` or `"[::1]:9464"`.
public struct HTTPListenConfig: Sendable, Hashable {
    public var host: String
    public var port: UInt16
}

public struct ConnectionConfig: Sendable {
    public var id: String
    public var provider: Provider
    /// Without a trailing slash. Defaults: GitHub `https://api.github.com`, NetSuite from `account_id`.
    public var baseURL: URL
    public var auth: AuthConfig
    public var objects: [ObjectConfig]
    /// The provider's own connection keys (its schema in `Config/Providers/`), e.g. NetSuite's account and zone.
    public var settings: ConnectionSettings
    /// Bounds on what this provider's answers may make the daemon do (docs/DESIGN.md §2 rules 12, 14, 18).
    public var limits: ConnectionLimits = .defaults
    /// The file this connection was read from (config.json or a `connections.d` file), for
    /// `deltahook connections list`, logs and problems; nil when validated from a document without a file.
    public var source: String? = nil
    /// A digest of the connection's JSON and its resolved secret values: equal revisions mean nothing about the
    /// connection changed, so a reload leaves its polling untouched (a rotated secret file changes it too).
    /// Never shown: it is derived from secrets.
    public var revision: String = ""
    /// `budget`: requests per UTC day and minute the connection may send (docs/DESIGN.md §2 rule 22); nil: none.
    public var budget: RequestBudgetLimits?
    /// `hints`: how this connection's push hints are authenticated; nil = it takes none (docs/DESIGN.md §6).
    public var hints: ConnectionHints?
}

/// Per-connection bounds on untrusted provider answers (docs/DESIGN.md §2 rules 12, 14, 18).
public struct ConnectionLimits: Sendable, Hashable {
    /// `max_provider_wait`: provider waits (`Retry-After`, `x-ratelimit-reset`) are clamped to `[0, this]`.
    public var maxProviderWait: Duration
    /// `max_clock_skew`: a record dated later than scan start + this does not move the cursor.
    public var maxClockSkew: Duration
    /// `max_response_bytes`: the largest provider response read; a larger page halves the page size.
    public var maxResponseBytes: Int

    public static let defaults = ConnectionLimits(maxProviderWait: .seconds(3600), maxClockSkew: .seconds(300),
                                                  maxResponseBytes: 32 << 20)

    public init(maxProviderWait: Duration, maxClockSkew: Duration, maxResponseBytes: Int) {
        self.maxProviderWait = maxProviderWait
        self.maxClockSkew = maxClockSkew
        self.maxResponseBytes = maxResponseBytes
    }
}


public enum OAuth2Grant: String, Sendable, CaseIterable {
    case password
    case refreshToken = "refresh_token"
    case clientCredentials = "client_credentials"
}

public enum AuthConfig: Sendable {
    /// ServiceNow or rest: HTTP Basic.
    case basic(username: String, password: Secret)
    /// ServiceNow OAuth2 (`/oauth_token.do`). `username`/`password` for the password grant,
    /// `refreshToken` for the refresh_token grant.
    case oauth2(grant: OAuth2Grant, clientID: String, clientSecret: Secret, username: String?, password: Secret?,
                refreshToken: Secret?)
    /// GitHub personal access token (or rest bearer token).
    case token(Secret)
    /// GitHub App: RS256 JWT signed with `privateKey` (PEM), exchanged for an installation token.
    case githubApp(appID: String, installationID: String, privateKey: Secret)
    /// NetSuite Token-Based Authentication (OAuth 1.0a, HMAC-SHA256).
    case netsuiteTBA(consumerKey: Secret, consumerSecret: Secret, tokenID: Secret, tokenSecret: Secret)
    /// rest: a secret sent in a named header, e.g. `X-API-Key`.
    case header(name: String, value: Secret)
    /// rest: no authentication.
    case none
    /// Zoho Books: the OAuth refresh-token grant at the data center's accounts server.
    case oauthRefresh(clientID: String, clientSecret: Secret, refreshToken: Secret)

    public var secrets: [Secret] {
        switch self {
        case .basic(_, let password): [password]
        case .oauth2(_, _, let clientSecret, _, let password, let refreshToken):
            [clientSecret] + [password, refreshToken].compactMap { $0 }
        case .token(let token): [token]
        case .githubApp(_, _, let key): [key]
        case .netsuiteTBA(let a, let b, let c, let d): [a, b, c, d]
        case .header(_, let value): [value]
        case .none: []
        case .oauthRefresh(_, let clientSecret, let refreshToken): [clientSecret, refreshToken]
        }
    }
}

/// Normalized models (docs/DESIGN.md §4); `record` passes raw fields through.
public enum RecordModel: String, Sendable, CaseIterable {
    case ticket, user, group, customer, employee, invoice, record
}

public enum InitialSync: String, Sendable, CaseIterable {
    /// Take a baseline without emitting events.
    case silent
    /// Emit a `created` event per existing record.
    case emit
}

public enum DeleteFeed: String, Sendable, CaseIterable {
    /// ServiceNow `sys_audit_delete` / NetSuite `DeletedRecord`, plus reconciliation.
    case audit
    /// Reconciliation sweeps only.
    case none
}

public struct ObjectConfig: Sendable {
    /// ServiceNow table, NetSuite SuiteQL table, or a free name (GitHub, rest). Unique within its connection.
    public var name: String
    public var model: RecordModel
    public var interval: Duration
    /// Extra overlap re-read below the cursor for late-visible rows (default 1 s, one granule).
    public var lookback: Duration
    /// Full id-set reconciliation period (default 6 h).
    public var reconcileEvery: Duration
    /// Volatile fields left out of the content hash, added to the provider's defaults.
    public var ignoreFields: [String]
    public var initialSync: InitialSync
    public var pageSize: Int
    /// Restrict what is fetched; nil = everything.
    public var fields: [String]?
    public var deleteFeed: DeleteFeed
    /// The provider's own object keys, typed (GitHub repository, NetSuite record type, rest request).
    public var settings: ObjectSettings
    /// nil when `"delete_guard": false` (docs/DESIGN.md §2 rule 17).
    public var deleteGuard: DeleteGuardPolicy? = .defaults
    /// Cap on the pages of one delta scan (`max_pages_per_scan`, default 10000, rule 18).
    public var maxPagesPerScan: Int = 10_000
    /// `emit`: which content changes become `updated` events (default any change, rule 5a).
    public var emit: EmitPolicy = .anyChange
}

public enum SignatureStyle: String, Sendable, CaseIterable {
    /// Standard Webhooks `webhook-signature`.
    case standard
    /// Also `x-hub-signature-256: sha256=<hex>`.
    case github
}

public struct SubscriberConfig: Sendable {
    public var id: String
    public var url: URL
    /// Signing secrets; more than one during rotation (every one signs).
    public var secrets: [WebhookSecret]
    public var events: [EventTypeGlob]
    /// Connection ids whose events go here; nil = all connections.
    public var connections: [String]?
    public var timeout: Duration
    public var maxInFlight: Int
    /// Requests per second; nil = unlimited.
    public var rateLimit: Double?
    public var signatureStyles: [SignatureStyle]
    public var includeRaw: Bool
    public var allowInsecureHTTP: Bool
    public var allowPrivateNetwork: Bool
    /// PEM bundle of extra trusted CAs.
    public var caFile: String?

    /// Whether an event of `type` from `connection` is for this subscriber.
    public func accepts(eventType type: String, connection: String) -> Bool {
        if let connections, !connections.contains(connection) { return false }
        return EventTypeGlob.anyMatches(events, type)
    }
}

public struct DeliveryConfig: Sendable {
    /// Delay before each attempt; the first is usually 0.
    public var retrySchedule: [Duration]
    /// ± fraction applied to each delay (0…1).
    public var jitter: Double
    /// A subscriber failing continuously this long is paused (probed, not dropped).
    public var pauseAfter: Duration
    /// How often a paused subscriber is probed.
    public var probeInterval: Duration
    /// Cap on a receiver's `Retry-After`.
    public var maxRetryAfter: Duration

    public static let defaultRetrySchedule: [Duration] = [
        .zero, .seconds(5), .seconds(300), .seconds(1800), .seconds(7200), .seconds(18_000), .seconds(36_000),
        .seconds(36_000),
    ]

    public static let defaults = DeliveryConfig(retrySchedule: defaultRetrySchedule, jitter: 0.2,
                                                pauseAfter: .seconds(5 * 86_400), probeInterval: .seconds(300),
                                                maxRetryAfter: .seconds(3600))
}

/// `retention`: how long the store keeps finished rows before the maintenance loop or `deltahook prune` removes
/// them (docs/DESIGN.md §6). Pending deliveries and their events are never removed.
public struct RetentionConfig: Sendable, Hashable {
    /// Events whose every delivery was delivered, counted from the last delivery (default 7 d).
    public var delivered: Duration
    /// Failed and orphaned deliveries and their events, counted from when they failed or were orphaned (30 d).
    public var failed: Duration
    /// Tombstones of deleted records, counted from the delete (90 d).
    public var tombstones: Duration

    public static let defaults = RetentionConfig(delivered: .seconds(7 * 86_400), failed: .seconds(30 * 86_400),
                                                 tombstones: .seconds(90 * 86_400))
    /// Shorter retention would prune before an operator could look; one minute is for soak tests.
    public static let minimum: Duration = .seconds(60)

    public init(delivered: Duration, failed: Duration, tombstones: Duration) {
        self.delivered = delivered
        self.failed = failed
        self.tombstones = tombstones
    }
}
