// One pass over the parsed document that builds the typed config and records every problem (DESIGN §6).
import Foundation
import Core

struct Validator {
    let environment: ConfigEnvironment
    let problems = ProblemList()

    static let defaultStateDirectory = "/var/lib/deltahook"
    static let githubDefaultBaseURL = "https://api.github.com"

    func validate(_ json: JSONValue) -> DeltahookConfig? {
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
        var connectionIDs: [String] = []
        if let items = root.array("connections", required: true, expected: "an array of connections") {
            if items.isEmpty { problems.add("connections", "is empty; configure at least one connection") }
            for (value, path) in items {
                guard let c = Fields(value, path: path, problems: problems) else { continue }
                if let id = c.string("id", required: true, expected: "a connection id such as \"acme-snow\"") {
                    if checkIdentifier(id, path: c.child("id")) {
                        if connectionIDs.contains(id) {
                            problems.add(c.child("id"), "duplicate connection id \"\(id)\"; ids must be unique")
                        }
                        connectionIDs.append(id)
                    }
                }
                if let connection = validateConnection(c) { connections.append(connection) }
                c.reportUnknownKeys()
            }
        }

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
        root.allow(["subscribers", "connections"])
        root.reportUnknownKeys()

        guard problems.problems.isEmpty else { return nil }
        return DeltahookConfig(stateDirectory: stateDirectory, logLevel: logLevel, http: http, connections: connections,
                               subscribers: subscribers, delivery: delivery, shutdownTimeout: shutdownTimeout,
                               retention: retention)
    }

    // MARK: Connections

    static let connectionKeys: [Provider: [String]] = [
        .servicenow: [], .github: [], .rest: [],
        .netsuite: ["account_id", "time_zone", "max_concurrency"],
    ]

    func validateConnection(_ c: Fields) -> ConnectionConfig? {
        let id = c.object["id"]?.stringValue ?? "?"
        // Provider-independent: checked even when the provider is unknown, so every problem is listed at once.
        let limits = validateLimits(c)
        guard let provider = c.choice("provider", Provider.self, required: true) else {
            // Without a provider the provider-specific keys cannot be judged; accept them all to avoid noise, but
            // check what every connection and object shares, so "every problem at once" stays true.
            c.allow(["auth"] + Validator.connectionKeys.values.flatMap { $0 })
            if c.has("base_url"), let text = c.string("base_url", expected: "an https URL") {
                _ = parseURL(text, path: c.child("base_url"), allowHTTP: true, isBase: true)
            }
            for (value, path) in c.array("objects", required: true, expected: "an array of objects to poll") ?? [] {
                guard let o = Fields(value, path: path, problems: problems) else { continue }
                _ = validateObject(o, provider: nil)
                o.reportUnknownKeys()
            }
            return nil
        }
        c.allow(Validator.connectionKeys[provider] ?? [])

        var netsuite: NetSuiteSettings?
        if provider == .netsuite { netsuite = validateNetSuite(c) }

        var baseURL: URL?
        if c.has("base_url") {
            if let text = c.string("base_url", expected: "an https URL") {
                baseURL = parseURL(text, path: c.child("base_url"), allowHTTP: true, isBase: true)
            }
        } else {
            c.allow(["base_url"])
            switch provider {
            case .servicenow:
                problems.add(c.child("base_url"), "is required for servicenow; expected the instance URL, e.g. \"https://acme.service-now.com\"")
            case .rest:
                problems.add(c.child("base_url"), "is required for rest; expected the API's root URL, e.g. \"https://api.example.com\"")
            case .github:
                baseURL = URL(string: Validator.githubDefaultBaseURL)
            case .netsuite:
                if let netsuite {
                    baseURL = URL(string: "https://\(netsuite.hostAccountID).suitetalk.api.netsuite.com")
                }
            }
        }

        let auth = c.object("auth", required: true, expected: "an object with a \"type\"").flatMap {
            validateAuth($0, provider: provider)
        }

        var objects: [ObjectConfig] = []
        var names: [String] = []
        if let items = c.array("objects", required: true, expected: "an array of objects to poll") {
            if items.isEmpty { problems.add(c.child("objects"), "is empty; configure at least one object to poll") }
            for (value, path) in items {
                guard let o = Fields(value, path: path, problems: problems) else { continue }
                if let object = validateObject(o, provider: provider) {
                    if names.contains(object.name) {
                        problems.add(o.child("name"), "duplicate object name \"\(object.name)\" in connection \"\(id)\"")
                    }
                    names.append(object.name)
                    objects.append(object)
                }
                o.reportUnknownKeys(context: "for \(provider.rawValue) objects")
            }
        }
        guard let baseURL, let auth, let connectionID = c.object["id"]?.stringValue else { return nil }
        if provider == .netsuite && netsuite == nil { return nil }
        return ConnectionConfig(id: connectionID, provider: provider, baseURL: baseURL, auth: auth, objects: objects,
                                netsuite: netsuite, limits: limits)
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

    func validateNetSuite(_ c: Fields) -> NetSuiteSettings? {
        let account = c.string("account_id", required: true, expected: "the NetSuite account id, e.g. \"1234567\" or \"1234567_SB1\"")
        if let account, !account.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
            problems.add(c.child("account_id"), "\"\(account)\" is not a NetSuite account id; expected letters, digits and \"_\", e.g. \"1234567_SB1\"")
            return nil
        }
        var zone: TimeZone?
        if let name = c.string("time_zone", required: true, expected: "the account's IANA time zone, e.g. \"America/Los_Angeles\"") {
            // Only IANA names: abbreviations like "PST" do not say when DST applies.
            if TimeZone.knownTimeZoneIdentifiers.contains(name) || name == "UTC", let tz = TimeZone(identifier: name) {
                zone = tz
            } else {
                let hint = Suggestion.hint(for: name, in: TimeZone.knownTimeZoneIdentifiers)
                problems.add(c.child("time_zone"), "\"\(name)\" is not an IANA time zone name; expected e.g. \"America/Los_Angeles\" (Setup > Company > General Preferences)\(hint)")
            }
        }
        let maxConcurrency = c.integer("max_concurrency", in: 1...100) ?? 5
        guard let account, let zone else { return nil }
        return NetSuiteSettings(accountID: account, timeZone: zone, maxConcurrency: maxConcurrency)
    }

    static let authTypes: [Provider: [String]] = [
        .servicenow: ["basic", "oauth2"],
        .github: ["token", "github_app"],
        .netsuite: ["tba"],
        .rest: ["none", "basic", "token", "header"],
    ]

    func validateAuth(_ a: Fields, provider: Provider) -> AuthConfig? {
        defer { a.reportUnknownKeys() }
        let allowed = Validator.authTypes[provider] ?? []
        let expected = "one of " + allowed.map { "\"\($0)\"" }.joined(separator: ", ")
        guard let type = a.string("type", required: true, expected: expected) else {
            a.allow(["username", "password", "grant", "client_id", "client_secret", "refresh_token", "token", "app_id",
                     "installation_id", "private_key", "consumer_key", "consumer_secret", "token_id", "token_secret",
                     "name", "value"])
            return nil
        }
        switch (provider, type) {
        case (.servicenow, "basic"), (.rest, "basic"):
            let user = a.string("username", required: true, expected: "the user name")
            let password = secret(a, "password")
            guard let user, let password else { return nil }
            return .basic(username: user, password: password)
        case (.servicenow, "oauth2"):
            let grant = a.choice("grant", OAuth2Grant.self, required: true)
            let clientID = a.string("client_id", required: true, expected: "the OAuth client id (System OAuth > Application Registry)")
            let clientSecret = secret(a, "client_secret")
            let needsUser = grant == .password
            let needsRefresh = grant == .refreshToken
            let username = a.string("username", required: needsUser, expected: "the user name (password grant)")
            let password = a.has("password") || needsUser ? secret(a, "password") : nil
            let refresh = a.has("refresh_token") || needsRefresh ? secret(a, "refresh_token") : nil
            a.allow(["password", "refresh_token"])
            guard let grant, let clientID, let clientSecret else { return nil }
            if needsUser && (username == nil || password == nil) { return nil }
            if needsRefresh && refresh == nil { return nil }
            return .oauth2(grant: grant, clientID: clientID, clientSecret: clientSecret, username: username,
                           password: password, refreshToken: refresh)
        case (.github, "token"), (.rest, "token"):
            return secret(a, "token").map { .token($0) }
        case (.github, "github_app"):
            let appID = idText(a, "app_id")
            let installation = idText(a, "installation_id")
            let key = secret(a, "private_key")
            if let key, !key.unredactedValue.contains("-----BEGIN") {
                problems.add(a.child("private_key"), "\(key.reference) does not hold a PEM private key (expected a \"-----BEGIN … PRIVATE KEY-----\" block as downloaded from the GitHub App settings)")
                return nil
            }
            guard let appID, let installation, let key else { return nil }
            return .githubApp(appID: appID, installationID: installation, privateKey: key)
        case (.netsuite, "tba"):
            let ck = secret(a, "consumer_key"), cs = secret(a, "consumer_secret")
            let tid = secret(a, "token_id"), ts = secret(a, "token_secret")
            guard let ck, let cs, let tid, let ts else { return nil }
            return .netsuiteTBA(consumerKey: ck, consumerSecret: cs, tokenID: tid, tokenSecret: ts)
        case (.rest, "header"):
            let name = a.string("name", required: true, expected: "an HTTP header name such as \"X-API-Key\"")
            if let name, !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
                problems.add(a.child("name"), "\"\(name)\" is not an HTTP header name")
                return nil
            }
            let value = secret(a, "value")
            guard let name, let value else { return nil }
            return .header(name: name, value: value)
        case (.rest, "none"):
            return AuthConfig.none
        default:
            a.allow(["username", "password", "grant", "client_id", "client_secret", "refresh_token", "token", "app_id",
                     "installation_id", "private_key", "consumer_key", "consumer_secret", "token_id", "token_secret",
                     "name", "value"])
            problems.add(a.child("type"), "\"\(type)\" is not an auth type for \(provider.rawValue); expected \(expected)\(Suggestion.hint(for: type, in: allowed))")
            return nil
        }
    }

    /// GitHub App ids are numbers; accept them as JSON numbers or strings.
    func idText(_ a: Fields, _ key: String) -> String? {
        guard let value = a.raw(key) else {
            problems.add(a.child(key), "is required; expected a number such as 123456")
            return nil
        }
        if let i = value.int64Value, i > 0 { return String(i) }
        if let s = value.stringValue, !s.isEmpty, s.allSatisfy(\.isNumber) { return s }
        problems.add(a.child(key), "expected a positive number such as 123456, found \(value.typeName)")
        return nil
    }

    // MARK: Secrets

    /// Parses a secret reference and resolves it now, so `check-config` proves the secret is there.
    func secret(_ f: Fields, _ key: String) -> Secret? {
        guard let value = f.raw(key) else {
            problems.add(f.child(key), "is required; expected a secret reference: {\"credential\": \"name\"}, {\"file\": \"/path\"} or {\"env\": \"NAME\"}")
            return nil
        }
        return secret(value, path: f.child(key))
    }

    func secret(_ value: JSONValue, path: String) -> Secret? {
        guard let reference = secretReference(value, path: path) else { return nil }
        switch environment.resolve(reference) {
        case .success(let secret): return secret
        case .failure(let error):
            problems.add(path, error.description)
            return nil
        }
    }

    func secretReference(_ value: JSONValue, path: String) -> SecretReference? {
        let usage = "{\"credential\": \"name\"}, {\"file\": \"/path\"} or {\"env\": \"NAME\"}"
        if value.stringValue != nil {
            // Never echo the string: it is probably the secret itself.
            problems.add(path, "a plain string is not accepted for a secret (keep secrets out of the config file); use \(usage)")
            return nil
        }
        guard let f = Fields(value, path: path, problems: problems) else { return nil }
        let credential = f.string("credential", expected: "a credential name")
        let file = f.string("file", expected: "an absolute file path")
        let env = f.string("env", expected: "an environment variable name")
        f.reportUnknownKeys()
        let given = [credential, file, env].compactMap { $0 }
        guard given.count == 1 else {
            if given.count > 1 || f.object.keys.allSatisfy({ $0.hasPrefix(commentKeyPrefix) }) {
                problems.add(path, "expected exactly one of \"credential\", \"file\", \"env\": \(usage)")
            }
            return nil
        }
        if let credential {
            guard !credential.contains("/"), credential != ".", credential != ".." else {
                problems.add(joinPath(path, "credential"), "\"\(credential)\" is not a credential name (no \"/\"); use {\"file\": …} for paths")
                return nil
            }
            return .credential(credential)
        }
        if let file {
            guard file.hasPrefix("/") else {
                problems.add(joinPath(path, "file"), "\"\(file)\" is not an absolute path")
                return nil
            }
            return .file(file)
        }
        if let env {
            let ok = env.first.map { $0 == "_" || ($0.isASCII && $0.isLetter) } ?? false
                && env.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
            guard ok else {
                problems.add(joinPath(path, "env"), "\"\(env)\" is not an environment variable name; expected e.g. \"GITHUB_TOKEN\"")
                return nil
            }
            return .environment(env)
        }
        return nil
    }

    // MARK: Objects

    static let objectKeys: [Provider: [String]] = [
        .servicenow: ["delete_feed"],
        .netsuite: ["delete_feed", "record_type"],
        .github: ["repository", "include_pull_requests"],
        .rest: ["request"],
    ]

    /// Models each provider's data allows (DESIGN §4); `record` always works.
    static let models: [Provider: [RecordModel]] = [
        .servicenow: [.ticket, .user, .group, .record],
        .netsuite: [.customer, .employee, .invoice, .record],
        .github: [.ticket, .record],
        .rest: [.record],
    ]

    /// Validates one object. `provider` nil (the connection's provider is unknown or missing): the keys every
    /// object shares are still checked, so check-config lists every problem at once; the provider's own keys
    /// are accepted unjudged and no object is returned.
    func validateObject(_ o: Fields, provider: Provider?) -> ObjectConfig? {
        o.allow(provider.map { Validator.objectKeys[$0] ?? [] } ?? Validator.objectKeys.values.flatMap { $0 })
        let name = o.string("name", required: true, expected: "the object name (ServiceNow table, NetSuite record table, or a label)")
        if let name, let provider {
            let ok: Bool
            switch provider {
            case .servicenow: ok = name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }
            case .netsuite: ok = name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
            case .github, .rest: ok = isIdentifier(name)
            }
            if !ok {
                let expected = provider == .servicenow ? "a table name: lower-case letters, digits and \"_\""
                    : provider == .netsuite ? "a SuiteQL table: letters, digits and \"_\""
                    : "letters, digits, \"-\", \"_\" and \".\""
                problems.add(o.child("name"), "\"\(name)\" is not a valid \(provider.rawValue) object name; expected \(expected)")
            }
        }
        let models = provider.map { Validator.models[$0] ?? [.record] } ?? RecordModel.allCases
        let model = o.choice("model", RecordModel.self, allowed: models,
                             why: "\(provider?.rawValue ?? "this provider's") data has no \(o.object["model"]?.stringValue ?? "") mapping; use \"record\"") ?? .record
        let interval = o.duration("interval", minimum: .seconds(1)) ?? .seconds(60)
        let lookback = o.duration("lookback") ?? .seconds(1)
        let reconcile = o.duration("reconcile_every", minimum: .seconds(60)) ?? .seconds(6 * 3600)
        let ignore = o.stringArray("ignore_fields", allowEmpty: true, element: fieldName) ?? []
        let initialSync = o.choice("initial_sync", InitialSync.self) ?? .silent
        let maximumPageSize = provider?.maximumPageSize ?? Provider.allCases.map(\.maximumPageSize).max() ?? 10_000
        let pageSize = o.integer("page_size", in: 1...maximumPageSize) ?? provider?.defaultPageSize ?? 100
        let fields = o.stringArray("fields", element: fieldName)
        let hasDeleteFeed = provider?.hasDeleteFeed ?? true
        var deleteFeed = hasDeleteFeed ? DeleteFeed.audit : .none
        if hasDeleteFeed, let d = o.choice("delete_feed", DeleteFeed.self) { deleteFeed = d }
        var includePRs = false
        var repository: GitHubRepository?
        var recordType: String?
        var request: RestRequestConfig?
        switch provider {
        case .github:
            includePRs = o.bool("include_pull_requests") ?? false
            if let text = o.string("repository", required: true, expected: "\"owner/repo\"") {
                let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                if parts.count == 2, parts.allSatisfy({ !$0.isEmpty && isIdentifier($0) }) {
                    repository = GitHubRepository(owner: parts[0], name: parts[1])
                } else {
                    problems.add(o.child("repository"), "\"\(text)\" is not \"owner/repo\"")
                }
            }
        case .netsuite:
            if let t = o.string("record_type", expected: "a NetSuite record type such as \"CustInvc\"") {
                if t.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) { recordType = t } else {
                    problems.add(o.child("record_type"), "\"\(t)\" is not a NetSuite record type; expected letters and digits, e.g. \"CustInvc\"")
                }
            }
        case .rest:
            request = o.object("request", required: true, expected: "the request description (see config.example.json)")
                .flatMap(validateRequest)
        case .servicenow, nil:
            break
        }
        let deleteGuard = validateDeleteGuard(o)
        let maxPages = o.integer("max_pages_per_scan", in: 1...10_000_000) ?? 10_000
        let emit = o.choice("emit", EmitPolicy.self) ?? .anyChange
        guard let name, let provider else { return nil }
        if provider == .github && repository == nil { return nil }
        if provider == .rest && request == nil { return nil }
        return ObjectConfig(name: name, model: model, interval: interval, lookback: lookback, reconcileEvery: reconcile,
                            ignoreFields: ignore, initialSync: initialSync, pageSize: pageSize, fields: fields,
                            deleteFeed: deleteFeed, includePullRequests: includePRs, repository: repository,
                            recordType: recordType, request: request, deleteGuard: deleteGuard,
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

    // MARK: Generic REST

    static let placeholders = ["cursor", "limit", "page", "offset", "next"]

    func validateRequest(_ r: Fields) -> RestRequestConfig? {
        defer { r.reportUnknownKeys() }
        let path = r.string("path", required: true, expected: "a path template such as \"/v1/orders?updated_since={cursor}&limit={limit}\"")
        var used: Set<String> = []
        if let path {
            if !path.hasPrefix("/") {
                problems.add(r.child("path"), "\"\(path)\" must start with \"/\" (it is appended to base_url)")
            }
            var rest = Substring(path)
            while let open = rest.firstIndex(of: "{") {
                guard let close = rest[open...].firstIndex(of: "}") else {
                    problems.add(r.child("path"), "unclosed \"{\" in \"\(path)\"")
                    break
                }
                let name = String(rest[rest.index(after: open)..<close])
                if Validator.placeholders.contains(name) { used.insert(name) } else {
                    problems.add(r.child("path"), "unknown placeholder {\(name)}; known: {cursor}, {limit}, {page}, {offset}, {next}\(Suggestion.hint(for: name, in: Validator.placeholders))")
                }
                rest = rest[rest.index(after: close)...]
            }
            if !used.contains("cursor") {
                problems.add(r.child("path"), "must contain {cursor} so each poll asks only for records updated since the cursor")
            }
        }
        let records = dotPath(r, "records", required: false) ?? []
        let idField = dotPath(r, "id_field", required: true)
        let cursorField = dotPath(r, "cursor_field", required: true)
        let format = r.choice("cursor_format", RestCursorFormat.self) ?? .rfc3339
        var pagination = RestPagination.none
        var needed: Set<String> = []
        if let value = r.raw("pagination") {
            let pp = r.child("pagination")
            let styles = ["none", "page", "offset", "next_token", "next_url", "link_header"]
            var style: String?
            var p: Fields?
            if let s = value.stringValue { style = s } else if let f = Fields(value, path: pp, problems: problems) {
                p = f
                style = f.string("style", required: true, expected: styles.joined(separator: ", "))
            }
            switch style {
            case "none": pagination = .none
            case "page":
                pagination = .page(start: p?.integer("start", in: 0...1) ?? 1)
                needed.insert("page")
            case "offset": pagination = .offset; needed.insert("offset")
            case "next_token", "next_url":
                let field = p.flatMap { dotPath($0, "field", required: true) }
                if p == nil { problems.add(pp, "style \"\(style ?? "")\" needs an object with \"field\", e.g. {\"style\": \"\(style ?? "")\", \"field\": \"meta.next\"}") }
                if let field { pagination = style == "next_token" ? .nextToken(field: field) : .nextURL(field: field) }
                if style == "next_token" { needed.insert("next") }
            case "link_header": pagination = .linkHeader
            case nil: break
            case let other?:
                problems.add(p == nil ? pp : joinPath(pp, "style"), "\"\(other)\" is not a pagination style; expected one of \(styles.joined(separator: ", "))\(Suggestion.hint(for: other, in: styles))")
            }
            p?.reportUnknownKeys()
        }
        if path != nil {
            for name in needed.subtracting(used).sorted() {
                problems.add(r.child("path"), "pagination needs the {\(name)} placeholder in the path")
            }
            for name in used.intersection(["page", "offset", "next"]).subtracting(needed).sorted() {
                problems.add(r.child("path"), "{\(name)} is only filled by the matching pagination style")
            }
        }
        guard let path, let idField, let cursorField else { return nil }
        return RestRequestConfig(path: path, recordsPath: records, idField: idField, cursorField: cursorField,
                                 cursorFormat: format, pagination: pagination)
    }

    func dotPath(_ f: Fields, _ key: String, required: Bool) -> [String]? {
        guard f.has(key) || required else { _ = f.raw(key); return nil }
        guard let text = f.string(key, required: required, expected: "a dot path such as \"data.items\"") else {
            return nil
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.allSatisfy({ !$0.isEmpty }) else {
            problems.add(f.child(key), "\"\(text)\" is not a dot path; expected names separated by \".\"")
            return nil
        }
        return parts
    }

    // MARK: Subscribers

    func validateSubscriber(_ s: Fields, connectionIDs: [String]) -> SubscriberConfig? {
        let allowInsecure = s.bool("allow_insecure_http") ?? false
        let allowPrivate = s.bool("allow_private_network") ?? false
        var url: URL?
        if let text = s.string("url", required: true, expected: "the receiver's https URL") {
            url = parseURL(text, path: s.child("url"), allowHTTP: allowInsecure, isBase: false)
        }
        var secrets: [WebhookSecret] = []
        var secretsOK = true
        if let items = s.array("secrets", required: true, expected: "an array of secret references such as [{\"credential\": \"crm-webhook-secret\"}]") {
            if items.isEmpty { problems.add(s.child("secrets"), "is empty; expected at least one whsec_ signing secret") }
            for (value, path) in items {
                guard let secret = secret(value, path: path) else { secretsOK = false; continue }
                switch WebhookSecret.parse(secret) {
                case .success(let w): secrets.append(w)
                case .failure(let e): problems.add(path, e.description); secretsOK = false
                }
            }
        } else { secretsOK = false }
        let events = s.stringArray("events", element: checkGlob) ?? ["*"]
        var connections: [String]?
        if let names = s.stringArray("connections") {
            for (i, name) in names.enumerated() where !connectionIDs.contains(name) {
                problems.add("\(s.child("connections"))[\(i)]", "no connection has id \"\(name)\"\(Suggestion.hint(for: name, in: connectionIDs))")
            }
            connections = names
        }
        let timeout = s.duration("timeout", minimum: .milliseconds(100)) ?? .seconds(15)
        let maxInFlight = s.integer("max_in_flight", in: 1...1024) ?? 16
        let rateLimit = s.number("rate_limit", in: 0.001...1_000_000, expected: "requests per second, a positive number")
        let styles = s.stringArray("signature_styles") { value, path in
            if SignatureStyle(rawValue: value) != nil { return true }
            problems.add(path, "\"\(value)\" is not a signature style; expected \"standard\" or \"github\"\(Suggestion.hint(for: value, in: SignatureStyle.allCases.map(\.rawValue)))")
            return false
        }
        let includeRaw = s.bool("include_raw") ?? false
        var caFile: String?
        if let path = s.string("ca_file", expected: "an absolute path to a PEM bundle") {
            if !path.hasPrefix("/") {
                problems.add(s.child("ca_file"), "\"\(path)\" is not an absolute path")
            } else if !FileManager.default.isReadableFile(atPath: path) {
                problems.add(s.child("ca_file"), "\"\(path)\" does not exist or is not readable")
            } else { caFile = path }
        }
        guard let id = s.object["id"]?.stringValue, let url, secretsOK, !secrets.isEmpty else { return nil }
        return SubscriberConfig(id: id, url: url, secrets: secrets, events: events.map(EventTypeGlob.init),
                                connections: connections, timeout: timeout, maxInFlight: maxInFlight,
                                rateLimit: rateLimit, signatureStyles: (styles ?? ["standard"]).compactMap(SignatureStyle.init),
                                includeRaw: includeRaw, allowInsecureHTTP: allowInsecure,
                                allowPrivateNetwork: allowPrivate, caFile: caFile)
    }

    /// An event glob must be able to match something: `*`, or `<model|*>.<created|updated|deleted|*>`.
    func checkGlob(_ glob: String, _ path: String) -> Bool {
        if glob == "*" { return true }
        let parts = glob.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let models = RecordModel.allCases.map(\.rawValue)
        let kinds = ["created", "updated", "deleted"]
        guard parts.count == 2 else {
            problems.add(path, "\"\(glob)\" is not an event pattern; expected \"*\", \"<model>.<kind>\", \"ticket.*\" or \"*.deleted\"")
            return false
        }
        var ok = true
        if parts[0] != "*" && !models.contains(parts[0]) {
            problems.add(path, "\"\(glob)\" names no model; models: \(models.joined(separator: ", "))\(Suggestion.hint(for: parts[0], in: models))")
            ok = false
        }
        if parts[1] != "*" && !kinds.contains(parts[1]) {
            problems.add(path, "\"\(glob)\" names no event kind; kinds: created, updated, deleted\(Suggestion.hint(for: parts[1], in: kinds))")
            ok = false
        }
        return ok
    }

    // MARK: Small parsers

    func isIdentifier(_ s: String) -> Bool {
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
