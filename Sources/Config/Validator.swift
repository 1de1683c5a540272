// One pass over the parsed document that builds the typed config and records every problem (docs/DESIGN.md §6).
// Provider-specific keys are read by each provider's `ProviderSchema` (Config/Providers/), not here.
import Foundation
import Core
import Crypto

/// A `connections.d` file: its path and parsed JSON (one connection object or an array of them).
struct ConnectionFile {
    var path: String
    var json: JSONValue
}

/// Connection ids seen so far, in order, with where each was first defined (to name both places of a duplicate).
struct ConnectionIDs {
    private(set) var ordered: [String] = []
    private var origins: [String: (file: String?, path: String)] = [:]

    var count: Int { ordered.count }
    func origin(of id: String) -> (file: String?, path: String)? { origins[id] }

    mutating func add(_ id: String, file: String?, path: String) {
        ordered.append(id)
        if origins[id] == nil { origins[id] = (file, path) }
    }
}

struct Validator {
    let environment: ConfigEnvironment
    let problems = ProblemList()

    static let defaultStateDirectory = "/var/lib/deltahook"

    func validate(_ json: JSONValue, mainFile: String? = nil, connectionFiles: [ConnectionFile] = [],
                  unreadableFiles: Int = 0) -> DeltahookConfig? {
        guard let root = Fields(json, path: "", problems: problems) else { return nil }

        var stateDirectory = Validator.defaultStateDirectory
        if let s = root.string("state_directory", expected: "an absolute directory path") {
            if s.hasPrefix("/") { stateDirectory = s } else {
                problems.add("state_directory", "\"\(s)\" is not an absolute path; expected e.g. \"/var/lib/deltahook\"")
            }
        } else if let fromSystemd = environment.variables["STATE_DIRECTORY"]?.split(separator: ":").first,
                  !fromSystemd.isEmpty {
            // systemd sets $STATE_DIRECTORY from StateDirectory= (a colon-separated list when several).
            stateDirectory = String(fromSystemd)
        }
        // Read by ConfigLoader before the walk (it decides which files exist); only its type is checked here.
        _ = root.string("connections_directory", expected: "a directory path, absolute or relative to the config file")
        let logLevel = root.choice("log_level", ConfigLogLevel.self) ?? .info
        var http: HTTPListenConfig?
        if let h = root.object("http") {
            if let listen = h.string("listen", required: true, expected: "\"host:port\", e.g. \"127.0.0.1:9464\"") {
                http = parseListen(listen, path: h.child("listen"))
            }
            h.reportUnknownKeys()
        }
        let shutdownTimeout = root.duration("shutdown_timeout", minimum: .milliseconds(1)) ?? .seconds(10)

        var connections: [ConnectionConfig] = []
        var ids = ConnectionIDs()
        let inline = root.array("connections", expected: "an array of connections")
        for (value, path) in inline ?? [] {
            if let connection = validateConnectionEntry(value, path: path, source: mainFile, ids: &ids) {
                connections.append(connection)
            }
        }
        // One file per connection (or a list of them), in name order; the same walk, labelled with the file.
        for file in connectionFiles {
            problems.file = file.path
            defer { problems.file = nil }
            let items: [(JSONValue, String)]
            if let array = file.json.arrayValue {
                if array.isEmpty { problems.add("$", "is an empty list; put one connection object (or a list of them) in the file, or remove the file") }
                items = array.enumerated().map { ($1, "$[\($0)]") }
            } else {
                items = [(file.json, "$")]
            }
            for (value, path) in items {
                if let connection = validateConnectionEntry(value, path: path, source: file.path, ids: &ids) {
                    connections.append(connection)
                }
            }
        }
        if inline == nil && !root.has("connections") && connectionFiles.isEmpty && unreadableFiles == 0 {
            problems.add("connections", "is required; expected an array of connections (or one *.json file per connection in the connections directory)")
        } else if inline?.isEmpty == true && connectionFiles.isEmpty && unreadableFiles == 0 {
            problems.add("connections", "is empty; configure at least one connection (here or as *.json files in the connections directory)")
        }
        let connectionIDs = ids.ordered

        var subscribers: [SubscriberConfig] = []
        var subscriberIDs: [String] = []
        if let items = root.array("subscribers", expected: "an array of subscribers") {
            for (value, path) in items {
                guard let s = Fields(value, path: path, problems: problems) else { continue }
                if let id = s.string("id", required: true, expected: "a subscriber id such as \"crm\""),
                   checkIdentifier(id, path: s.child("id"))
                {
                    if subscriberIDs.contains(id) {
                        problems.add(s.child("id"), "duplicate subscriber id \"\(id)\"; ids must be unique")
                    }
                    subscriberIDs.append(id)
                }
                if let subscriber = validateSubscriber(s, connectionIDs: connectionIDs) { subscribers.append(subscriber) }
                s.reportUnknownKeys()
            }
        }

        var delivery = DeliveryConfig.defaults
        if let d = root.object("delivery") {
            if let items = d.array("retry_schedule", expected: "an array of durations such as [\"0s\", \"5s\", \"5m\"]") {
                if items.isEmpty || items.count > 100 {
                    problems.add(d.child("retry_schedule"), "expected 1 to 100 durations, found \(items.count)")
                } else {
                    let parsed = items.map { Fields.duration($0.0, path: $0.1, minimum: .zero, problems: problems) }
                    if parsed.allSatisfy({ $0 != nil }) { delivery.retrySchedule = parsed.compactMap { $0 } }
                }
            }
            if let j = d.number("jitter", in: 0...1, expected: "a fraction from 0 to 1, e.g. 0.2") { delivery.jitter = j }
            if let p = d.duration("pause_after", minimum: .seconds(1)) { delivery.pauseAfter = p }
            if let p = d.duration("probe_interval", minimum: .seconds(1)) { delivery.probeInterval = p }
            if let m = d.duration("max_retry_after", minimum: .seconds(1)) { delivery.maxRetryAfter = m }
            d.reportUnknownKeys()
        }
        var retention = RetentionConfig.defaults
        if let r = root.object("retention") {
            let minimum = RetentionConfig.minimum
            if let d = r.duration("delivered", minimum: minimum) { retention.delivered = d }
            if let f = r.duration("failed", minimum: minimum) { retention.failed = f }
            if let t = r.duration("tombstones", minimum: minimum) { retention.tombstones = t }
            r.reportUnknownKeys()
        }
        let store = root.object("store").map(validateStore) ?? .defaults
        let hints = validateHints(root)
        checkHintListener(hints, http: http, connections: connections)
        root.allow(["subscribers", "connections", "connections_directory"])
        root.reportUnknownKeys()

        guard problems.problems.isEmpty else { return nil }
        return DeltahookConfig(stateDirectory: stateDirectory, logLevel: logLevel, http: http, connections: connections,
                               subscribers: subscribers, delivery: delivery, shutdownTimeout: shutdownTimeout,
                               retention: retention, store: store, hints: hints)
    }

    // MARK: Connections

    /// One connection object at `path`: id (unique across config.json and every connection file), then its keys.
    func validateConnectionEntry(_ value: JSONValue, path: String, source: String?, ids: inout ConnectionIDs)
        -> ConnectionConfig?
    {
        guard let c = Fields(value, path: path, problems: problems) else { return nil }
        if let id = c.string("id", required: true, expected: "a connection id such as \"acme-snow\"") {
            if checkIdentifier(id, path: c.child("id")) {
                if let first = ids.origin(of: id) {
                    if first.file == source {
                        problems.add(c.child("id"), "duplicate connection id \"\(id)\"; ids must be unique")
                    } else {
                        problems.add(c.child("id"), "duplicate connection id \"\(id)\", also defined in "
                            + "\(first.file ?? "the config") at \(first.path); ids must be unique across config.json "
                            + "and the connections directory (rename one, or remove the older file)")
                    }
                }
                ids.add(id, file: source, path: c.child("id"))
            }
        }
        var connection = validateConnection(c)
        c.reportUnknownKeys()
        connection?.source = source
        if let secrets = connection?.auth.secrets {
            // The JSON as written plus the resolved secret values (a rotated secret file is a change too).
            var material = JSONValue.object(c.object).canonicalBytes()
            for secret in secrets {
                material.append(0)
                material += Array(secret.unredactedValue.utf8)
            }
            connection?.revision = Digest.sha256(material).hexString
        }
        return connection
    }

    /// Reads the keys every connection shares; the provider's schema (`provider.schema`, one per provider in
    /// `Config/Providers/`) reads its own keys, says whether `base_url` is required or derived, and lists the auth
    /// kinds and models it accepts.
    func validateConnection(_ c: Fields) -> ConnectionConfig? {
        let id = c.object["id"]?.stringValue ?? "?"
        // Provider-independent: checked even when the provider is unknown, so every problem is listed at once.
        let limits = validateLimits(c)
        let hints = validateConnectionHints(c)
        let budget = validateBudget(c)
        guard let provider = c.choice("provider", Provider.self, required: true) else {
            // Without a provider the provider-specific keys cannot be judged; accept them all to avoid noise, but
            // check what every connection and object shares, so "every problem at once" stays true.
            c.allow(["auth"] + ProviderSchemas.all.flatMap(\.connectionKeys))
            if c.has("base_url"), let text = c.string("base_url", expected: "an https URL") {
                _ = parseURL(text, path: c.child("base_url"), allowHTTP: true, isBase: true)
            }
            for (value, path) in c.array("objects", required: true, expected: "an array of objects to poll") ?? [] {
                guard let o = Fields(value, path: path, problems: problems) else { continue }
                _ = validateObject(o, schema: nil)
                o.reportUnknownKeys()
            }
            return nil
        }
        let schema = provider.schema
        c.allow(schema.connectionKeys)
        let settings = schema.connectionSettings(c, validator: self)

        var baseURL: URL?
        if c.has("base_url") {
            if let text = c.string("base_url", expected: "an https URL") {
                baseURL = parseURL(text, path: c.child("base_url"), allowHTTP: true, isBase: true)
            }
        } else {
            c.allow(["base_url"])
            if let example = schema.baseURLExample {
                problems.add(c.child("base_url"), "is required for \(provider.rawValue); expected \(example)")
            } else if let settings {
                baseURL = schema.defaultBaseURL(settings)
            }
        }

        let auth = c.object("auth", required: true, expected: "an object with a \"type\"").flatMap {
            validateAuth($0, schema: schema)
        }

        var objects: [ObjectConfig] = []
        var names: [String] = []
        if let items = c.array("objects", required: true, expected: "an array of objects to poll") {
            if items.isEmpty { problems.add(c.child("objects"), "is empty; configure at least one object to poll") }
            for (value, path) in items {
                guard let o = Fields(value, path: path, problems: problems) else { continue }
                if let object = validateObject(o, schema: schema) {
                    if names.contains(object.name) {
                        problems.add(o.child("name"), "duplicate object name \"\(object.name)\" in connection \"\(id)\"")
                    }
                    names.append(object.name)
                    objects.append(object)
                }
                o.reportUnknownKeys(context: "for \(provider.rawValue) objects")
            }
        }
        guard let baseURL, let auth, let settings, let connectionID = c.object["id"]?.stringValue else { return nil }
        var connection = ConnectionConfig(id: connectionID, provider: provider, baseURL: baseURL, auth: auth,
                                          objects: objects, settings: settings, limits: limits)
        connection.budget = budget
        connection.hints = hints
        return connection
    }

    /// `budget`: `{"per_day": 1000, "per_minute": 100, "reserve": 0.1}` — requests the connection may send per
    /// UTC day (required, 1…10,000,000) and per minute (optional), and the share of the day left unplanned for
    /// sweeps and token refreshes (docs/DESIGN.md §2 rule 22). Absent: no budget.
    func validateBudget(_ c: Fields) -> RequestBudgetLimits? {
        guard c.has("budget") else { return nil }
        guard let b = c.object("budget", expected: "an object such as {\"per_day\": 1000}") else { return nil }
        defer { b.reportUnknownKeys() }
        let perDay = b.integer("per_day", in: 1...10_000_000)
        if !b.has("per_day") { problems.add(b.child("per_day"), "is required; expected an integer from 1 to 10000000") }
        let perMinute = b.integer("per_minute", in: 1...10_000_000)
        if let perDay, let perMinute, perMinute > perDay {
            problems.add(b.child("per_minute"), "\(perMinute) is more than per_day (\(perDay)); the day's limit would bind first")
        }
        let reserve = b.number("reserve", in: 0...0.9, expected: "a fraction from 0 to 0.9, e.g. 0.1")
            ?? RequestBudgetLimits.defaultReserve
        guard let perDay else { return nil }
        return RequestBudgetLimits(perDay: perDay, perMinute: perMinute, reserve: reserve)
    }

    /// `max_provider_wait`, `max_clock_skew`, `max_response_bytes` (docs/DESIGN.md §2 rules 12, 14, 18).
    func validateLimits(_ c: Fields) -> ConnectionLimits {
        let defaults = ConnectionLimits.defaults
        let wait = c.duration("max_provider_wait", minimum: .seconds(1)) ?? defaults.maxProviderWait
        if wait > .seconds(7 * 86_400) {
            problems.add(c.child("max_provider_wait"), "is longer than 7d; a provider wait that long stops the connection for days")
        }
        let skew = c.duration("max_clock_skew") ?? defaults.maxClockSkew
        if skew > .seconds(86_400) {
            problems.add(c.child("max_clock_skew"), "is longer than 1d; a cursor that far ahead of the clock misses changes")
        }
        let bytes = c.integer("max_response_bytes", in: 65_536...(1 << 30)) ?? defaults.maxResponseBytes
        return ConnectionLimits(maxProviderWait: wait, maxClockSkew: skew, maxResponseBytes: bytes)
    }

    /// `delete_guard`: `false`, `true` (defaults) or `{"max_fraction": 0.2, "min_records": 10}` (rule 17).
    func validateDeleteGuard(_ o: Fields) -> DeleteGuardPolicy? {
        guard let value = o.raw("delete_guard") else { return .defaults }
        switch value {
        case .bool(let on): return on ? .defaults : nil
        case .object:
            guard let g = o.object("delete_guard") else { return .defaults }
            defer { g.reportUnknownKeys() }
            let defaults = DeleteGuardPolicy.defaults
            let fraction = g.number("max_fraction", in: 0...1, expected: "a fraction between 0 and 1, e.g. 0.2")
                ?? defaults.maxFraction
            let minimum = g.integer("min_records", in: 0...1_000_000_000) ?? defaults.minRecords
            return DeleteGuardPolicy(maxFraction: fraction, minRecords: minimum)
        default:
            problems.add(o.child("delete_guard"), "expected false, true or {\"max_fraction\": 0.2, \"min_records\": 10}, found \(value.typeName)")
            return .defaults
        }
    }

    /// `auth`: the `type` must be one of the schema's auth kinds, which then reads its own keys.
    func validateAuth(_ a: Fields, schema: any ProviderSchema) -> AuthConfig? {
        defer { a.reportUnknownKeys() }
        let allowed = schema.authKinds.map(\.type)
        let expected = "one of " + allowed.map { "\"\($0)\"" }.joined(separator: ", ")
        guard let type = a.string("type", required: true, expected: expected) else {
            a.allow(AuthKind.allKeys)
            return nil
        }
        guard let kind = schema.authKinds.first(where: { $0.type == type }) else {
            a.allow(AuthKind.allKeys)
            problems.add(a.child("type"), "\"\(type)\" is not an auth type for \(schema.provider.rawValue); expected \(expected)\(Suggestion.hint(for: type, in: allowed))")
            return nil
        }
        return kind.parse(a, self)
    }

    // MARK: Objects

    /// Validates one object. `schema` nil (the connection's provider is unknown or missing): the keys every
    /// object shares are still checked, so check-config lists every problem at once; the provider's own keys
    /// are accepted unjudged and no object is returned.
    func validateObject(_ o: Fields, schema: (any ProviderSchema)?) -> ObjectConfig? {
        o.allow(schema?.objectKeys ?? ProviderSchemas.all.flatMap(\.objectKeys))
        let name = o.string("name", required: true, expected: "the object name (ServiceNow table, NetSuite record table, or a label)")
        if let name, let schema, !schema.isValidObjectName(name) {
            problems.add(o.child("name"), "\"\(name)\" is not a valid \(schema.provider.rawValue) object name; expected \(schema.objectNameExpected)")
        }
        let models = schema?.models ?? RecordModel.allCases
        let model = o.choice("model", RecordModel.self, allowed: models,
                             why: "\(schema?.provider.rawValue ?? "this provider's") data has no \(o.object["model"]?.stringValue ?? "") mapping; use \"record\"") ?? .record
        let interval = o.duration("interval", minimum: .seconds(1)) ?? .seconds(60)
        let lookback = o.duration("lookback") ?? .seconds(1)
        let reconcile = o.duration("reconcile_every", minimum: .seconds(60)) ?? .seconds(6 * 3600)
        let ignore = o.stringArray("ignore_fields", allowEmpty: true, element: fieldName) ?? []
        let initialSync = o.choice("initial_sync", InitialSync.self) ?? .silent
        let maximumPageSize = schema?.maximumPageSize ?? ProviderSchemas.all.map(\.maximumPageSize).max() ?? 10_000
        let pageSize = o.integer("page_size", in: 1...maximumPageSize) ?? schema?.defaultPageSize ?? 100
        let fields = o.stringArray("fields", element: fieldName)
        let hasDeleteFeed = schema?.hasDeleteFeed ?? true
        var deleteFeed = hasDeleteFeed ? DeleteFeed.audit : .none
        if hasDeleteFeed, let d = o.choice("delete_feed", DeleteFeed.self) { deleteFeed = d }
        let settings = schema?.objectSettings(o, validator: self)
        let deleteGuard = validateDeleteGuard(o)
        let maxPages = o.integer("max_pages_per_scan", in: 1...10_000_000) ?? 10_000
        let emit = o.choice("emit", EmitPolicy.self) ?? .anyChange
        guard let name, let settings else { return nil }
        return ObjectConfig(name: name, model: model, interval: interval, lookback: lookback, reconcileEvery: reconcile,
                            ignoreFields: ignore, initialSync: initialSync, pageSize: pageSize, fields: fields,
                            deleteFeed: deleteFeed, settings: settings, deleteGuard: deleteGuard,
                            maxPagesPerScan: maxPages, emit: emit)
    }

    func fieldName(_ name: String, _ path: String) -> Bool {
        // Field names end up in ServiceNow sysparm_fields and SuiteQL SELECT lists: keep them plain.
        if !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ".") }) {
            return true
        }
        problems.add(path, "\"\(name)\" is not a field name; expected letters, digits, \"_\" and \".\"")
        return false
    }

    // MARK: Small parsers

    func isIdentifier(_ s: String) -> Bool { Validator.isIdentifier(s) }

    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.first, first.isASCII, first.isLetter || first.isNumber, s.count <= 100 else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == ".") }
    }

    func checkIdentifier(_ id: String, path: String) -> Bool {
        if isIdentifier(id) { return true }
        problems.add(path, "\"\(id)\" is not a valid id; expected letters, digits, \"-\", \"_\" and \".\", starting with a letter or digit")
        return false
    }

    func parseURL(_ text: String, path: String, allowHTTP: Bool, isBase: Bool) -> URL? {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            problems.add(path, "\"\(text)\" is not an absolute URL; expected e.g. \"https://example.com\"")
            return nil
        }
        guard scheme == "https" || scheme == "http" else {
            problems.add(path, "\"\(text)\" uses scheme \"\(scheme)\"; expected https")
            return nil
        }
        guard let host = components.host, !host.isEmpty else {
            problems.add(path, "\"\(text)\" has no host")
            return nil
        }
        if components.user != nil || components.password != nil {
            // Do not echo: the user-info part may hold a password.
            problems.add(path, "credentials inside the URL are not allowed; use the auth settings or secret references")
            return nil
        }
        if let port = components.port, !(1...65_535).contains(port) {
            problems.add(path, "port \(port) is out of range; expected 1 to 65535")
            return nil
        }
        if scheme == "http" && !allowHTTP {
            problems.add(path, "\"\(text)\" uses http; HTTPS is required unless the subscriber sets \"allow_insecure_http\": true")
            return nil
        }
        if components.fragment != nil {
            problems.add(path, "\"\(text)\" has a #fragment, which is never sent; remove it")
            return nil
        }
        if isBase && components.query != nil {
            problems.add(path, "\"\(text)\" has a query string; base_url is the API root only")
            return nil
        }
        var normalized = text
        if isBase { while normalized.hasSuffix("/") { normalized.removeLast() } }
        return URL(string: normalized)
    }

    func parseListen(_ text: String, path: String) -> HTTPListenConfig? {
        var host: Substring
        var port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[close...].hasPrefix("]:") else {
                problems.add(path, "\"\(text)\" is not \"[ipv6]:port\"")
                return nil
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                problems.add(path, "\"\(text)\" has no port; expected \"host:port\", e.g. \"127.0.0.1:9464\"")
                return nil
            }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let p = UInt16(port), p > 0 else {
            problems.add(path, "\"\(text)\" is not \"host:port\" with a port from 1 to 65535, e.g. \"127.0.0.1:9464\"")
            return nil
        }
        return HTTPListenConfig(host: String(host), port: p)
    }
}
