// The `store` part of the config (docs/DESIGN.md §6 `store`): which database holds deltahook's state, and how a
// daemon takes part in a cluster of daemons sharing it (docs/DESIGN.md §2 rules 19–21).
public import Foundation
public import Core

/// Where the state lives and how this daemon shares it.
public struct StoreConfig: Sendable, Equatable {
    public enum Backend: Sendable, Equatable {
        /// One SQLite file in `state_directory` (the default; one daemon per directory).
        case sqlite
        /// A PostgreSQL database several daemons share; the libpq URL or keyword string is a secret (it may carry
        /// a password).
        case postgres(url: Secret)
    }

    public var backend: Backend = .sqlite
    /// How long a poll lease lasts without renewal: a dead or paused node's objects are taken over after at most
    /// this long (plus one poll interval).
    public var leaseTTL: Duration = .seconds(30)
    /// This node's id in `status` and metrics; default `<hostname>-<pid>`.
    public var nodeID: String?
    /// PostgreSQL connections this daemon opens at most.
    public var poolSize: Int = 4

    public static let defaults = StoreConfig()

    public init(backend: Backend = .sqlite, leaseTTL: Duration = .seconds(30), nodeID: String? = nil, poolSize: Int = 4) {
        self.backend = backend
        self.leaseTTL = leaseTTL
        self.nodeID = nodeID
        self.poolSize = poolSize
    }

    /// The URL secret, for the scrubber; and its password part on its own, since libpq messages or an operator's
    /// paste may show the password without the rest of the URL.
    public var redactionTexts: [String] {
        guard case .postgres(let url) = backend else { return [] }
        var texts = [url.unredactedValue]
        if let password = URLComponents(string: url.unredactedValue)?.password, !password.isEmpty {
            texts.append(password)
            if let decoded = password.removingPercentEncoding, decoded != password { texts.append(decoded) }
        }
        for pair in url.unredactedValue.split(separator: " ") where pair.hasPrefix("password=") {
            let value = pair.dropFirst("password=".count).trimmingCharacters(in: CharacterSet(charactersIn: "'"))
            if !value.isEmpty { texts.append(value) }
        }
        return texts
    }
}

extension Validator {
    /// `store`: `{"backend": "sqlite"}` (default) or `{"backend": "postgres", "url": SECRET}`, with `lease_ttl`,
    /// `node_id` and `pool_size`.
    func validateStore(_ f: Fields) -> StoreConfig {
        var config = StoreConfig.defaults
        let backend = f.string("backend", expected: "\"sqlite\" or \"postgres\"") ?? "sqlite"
        switch backend {
        case "sqlite":
            if f.has("url") {
                f.allow(["url"])
                problems.add(f.child("url"), "is only read with \"backend\": \"postgres\"; remove it or change the backend")
            }
        case "postgres":
            if let url = secret(f, "url") {
                let text = url.unredactedValue.trimmingCharacters(in: .whitespacesAndNewlines)
                if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") || text.contains("=") {
                    config.backend = .postgres(url: url)
                } else {
                    // Never echo the value: it may be the password itself.
                    problems.add(f.child("url"), "\(url.reference) is not a PostgreSQL connection URL; expected "
                        + "postgresql://user@host:5432/deltahook or a libpq keyword string such as \"host=… dbname=…\"")
                }
            }
        default:
            problems.add(f.child("backend"), "\"\(backend)\" is not a store backend; expected \"sqlite\" or \"postgres\"")
        }
        if let ttl = f.duration("lease_ttl", minimum: .seconds(2)) {
            if ttl > .seconds(600) {
                problems.add(f.child("lease_ttl"), "is longer than 10m; a dead node's objects would wait that long")
            } else {
                config.leaseTTL = ttl
            }
        }
        if let node = f.string("node_id", expected: "a node id such as \"deltahook-a\""),
           checkIdentifier(node, path: f.child("node_id")) {
            config.nodeID = node
        }
        if let pool = f.integer("pool_size", in: 1...64) { config.poolSize = pool }
        f.reportUnknownKeys()
        return config
    }
}
