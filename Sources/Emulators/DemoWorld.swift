// The world `deltahook demo` runs against: emulated ServiceNow, GitHub, NetSuite and a Zoho Books organization (on a
// request budget, docs/DESIGN.md §2 rule 22) with a few seeded records, and a
// receiver that verifies every signature with its own copy of the secret. Everything listens on 127.0.0.1 with
// ephemeral ports; every secret is generated per run (OpenSSL's CSPRNG) and known only to the emulator it belongs
// to, the receiver and the credential files the demo writes for the daemon.
public import Foundation
import Core
import Crypto
import HTTPServer

/// Secrets of one demo run. Each one lives in three places, as in production: the provider (emulator), the
/// credential file deltahook reads, and — for the webhook secret — the receiver.
public struct DemoSecrets: Sendable {
    public var serviceNowClientID = "deltahook-demo"
    public var serviceNowClientSecret: String
    public var githubToken: String
    public var netsuiteConsumerKey: String
    public var netsuiteConsumerSecret: String
    public var netsuiteTokenID: String
    public var netsuiteTokenSecret: String
    /// Zoho's client ids are public (`1000.` + 30 characters); the client secret and refresh token are not.
    public var zohoClientID = "1000.DELTAHOOKDEMOCLIENT"
    public var zohoClientSecret: String
    public var zohoRefreshToken: String
    public var webhookSecret: String
    /// The GitHub repository webhook's secret: the emulator signs its push hints with it (docs/DESIGN.md §2 rule 23).
    public var githubHookSecret = ""

    /// Fresh random secrets.
    public static func generate() throws -> DemoSecrets {
        func hex(_ count: Int) throws -> String { try SecureRandom.bytes(count).hexString }
        var secrets = DemoSecrets(serviceNowClientSecret: try hex(16), githubToken: "ghp_" + (try hex(18)),
                                  netsuiteConsumerKey: try hex(32), netsuiteConsumerSecret: try hex(32),
                                  netsuiteTokenID: try hex(32), netsuiteTokenSecret: try hex(32),
                                  zohoClientSecret: try hex(21), zohoRefreshToken: "1000." + (try hex(32)),
                                  webhookSecret: try StandardWebhooks.generateSecret())
        secrets.githubHookSecret = try hex(32)
        return secrets
    }

    /// Credential file name → content, for a `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=` layout).
    public var credentialFiles: [(name: String, value: String)] {
        [("snow-client-secret", serviceNowClientSecret), ("github-token", githubToken),
         ("ns-consumer-key", netsuiteConsumerKey), ("ns-consumer-secret", netsuiteConsumerSecret),
         ("ns-token-id", netsuiteTokenID), ("ns-token-secret", netsuiteTokenSecret),
         ("zoho-client-secret", zohoClientSecret), ("zoho-refresh-token", zohoRefreshToken),
         ("demo-webhook-secret", webhookSecret), ("github-hook-secret", githubHookSecret)]
    }
}

/// The five emulated providers and the verifying receiver of one demo run. `stop()` closes every listener.
public final class DemoWorld: Sendable {
    public static let serviceNowConnection = "demo-servicenow"
    public static let githubConnection = "demo-github"
    public static let netsuiteConnection = "demo-netsuite"
    public static let zohoConnection = "demo-zoho-books"
    public static let subscriber = "demo-receiver"
    /// NetSuite answers in the account's zone; a zone away from UTC shows the conversion doing its job.
    public static let netsuiteTimeZone = "America/Los_Angeles"
    public static let netsuiteAccount = "1234567_SB1"
    public static let githubOwner = "octo-org"
    public static let githubRepository = "hello"
    /// NetSuite internal ids of the seeded customers (the emulator has no id listing to read them back from).
    public static let seededCustomers: [(id: Int64, company: String, status: String)] = [
        (101, "Acme Corporation", "13"), (102, "Globex Inc.", "13"), (103, "Initech", "6"),
    ]
    /// The Zoho Books connection's `budget` (docs/DESIGN.md §2 rule 22). Zoho's free plan sells 1,000 requests a
    /// day and 100 a minute; at the demo's one-second intervals its two objects would ask for about 120 a minute.
    /// The budget windows are the real UTC minute and day and cannot be compressed, so the demo scales the plan
    /// down in time instead: 60 a minute (54 planned after the default 10 % reserve) makes the planner stretch both
    /// intervals to roughly 2–3 s within the first cycles, which the summary shows after a few seconds; `per_day` is
    /// 60 × 1,440, the per-minute rate sustained all day, so the day window never binds tighter than the minute
    /// one whatever the time of day the demo runs (a smaller per_day would stretch by an amount that depends on the
    /// hours left until UTC midnight, and the demo would not behave the same twice).
    public static let zohoBudgetPerMinute = 60
    public static let zohoBudgetPerDay = 60 * 1440

    public let secrets: DemoSecrets
    public let servicenow: ServiceNowEmulator
    public let github: GitHubEmulator
    public let netsuite: NetSuiteEmulator
    public let zoho: ZohoBooksEmulator
    public let receiver: ReceiverEmulator
    /// Where the daemon hears push hints (`hints.listen`), and the GitHub side that sends one after each GitHub change.
    public let hintPort: UInt16
    public let hints: GitHubHintSender
    /// GitHub is polled this seldom in the demo, so its events visibly come from hinted polls; the interval stays
    /// the safety net (a lost hint is picked up by the next interval poll).
    public static let githubInterval = "15s"

    /// Starts every server (stopping the ones already started when a later one fails) and seeds the records.
    public init(secrets: DemoSecrets, now: Date = Date()) throws {
        self.secrets = secrets
        guard let zone = TimeZone(identifier: Self.netsuiteTimeZone) else {
            throw DemoError("the time zone database has no \(Self.netsuiteTimeZone); install the tzdata package")
        }
        var started: [@Sendable () -> Void] = []
        do {
            let servicenow = try ServiceNowEmulator(options: .init(
                users: [:], oauthClients: [secrets.serviceNowClientID: secrets.serviceNowClientSecret],
                refreshTokens: [], clientCredentialsEnabled: true))
            started.append(servicenow.stop)
            // A demo may run for hours at one poll a second; the primary limit must not be the story it tells.
            let github = try GitHubEmulator(options: .init(owner: Self.githubOwner, repository: Self.githubRepository,
                                                           tokens: [secrets.githubToken], rateLimit: 1_000_000))
            started.append(github.stop)
            let netsuite = try NetSuiteEmulator(options: .init(
                accountID: Self.netsuiteAccount, timeZone: zone,
                credentials: .init(consumerKey: secrets.netsuiteConsumerKey, consumerSecret: secrets.netsuiteConsumerSecret,
                                   tokenID: secrets.netsuiteTokenID, tokenSecret: secrets.netsuiteTokenSecret)))
            started.append(netsuite.stop)
            // The organization keeps Zoho's real 100-a-minute limit (the budget stays under it); its daily limit is
            // raised with the budget's, so a demo left running for hours is not cut off by the emulator's own count.
            var zohoOptions = ZohoBooksEmulator.Options()
            zohoOptions.clientID = secrets.zohoClientID
            zohoOptions.clientSecret = secrets.zohoClientSecret
            zohoOptions.refreshToken = secrets.zohoRefreshToken
            zohoOptions.perDayLimit = Self.zohoBudgetPerDay
            let zoho = try ZohoBooksEmulator(options: zohoOptions)
            started.append(zoho.stop)
            let receiver = try ReceiverEmulator(secrets: [secrets.webhookSecret])
            started.append(receiver.stop)
            let hintPort = try Self.freeLoopbackPort()
            let hints = try GitHubHintSender(url: "http://127.0.0.1:\(hintPort)/hooks/\(Self.githubConnection)/issues",
                                             secret: secrets.githubHookSecret)
            started.append(hints.stop)
            self.hintPort = hintPort
            self.hints = hints
            self.servicenow = servicenow
            self.github = github
            self.netsuite = netsuite
            self.zoho = zoho
            self.receiver = receiver
        } catch {
            for stop in started.reversed() { stop() }
            throw error
        }
        try seed(now: now)
    }

    /// Stops every listener. Safe to call twice.
    public func stop() {
        servicenow.stop()
        github.stop()
        netsuite.stop()
        zoho.stop()
        receiver.stop()
        hints.stop()
    }

    /// What GitHub does after a change when a repository webhook points at deltahook: an `issues` event, signed.
    public func sendGitHubHint(_ change: DemoChange) async {
        guard change.provider == .github else { return }
        let body = JSONValue.object(JSONObject([("action", .string(change.kind)),
                                                ("repository", .object(JSONObject([
                                                    ("full_name", .string("\(Self.githubOwner)/\(Self.githubRepository)")),
                                                ])))]))
        await hints.send(event: "issues", body: Array(body.serialized().utf8))
    }

    /// A loopback port free right now (bound to port 0, read back, released) for the daemon's hint listener.
    static func freeLoopbackPort() throws -> UInt16 {
        let probe = try HTTPServer(host: "127.0.0.1", port: 0, handling: .sync { _ in .text("") })
        defer { probe.stop() }
        return probe.port
    }

    /// A handful of records per provider, dated a little in the past, so the first poll (initial_sync `emit`)
    /// shows one `created` event per record.
    private func seed(now: Date) throws {
        let past = now.addingTimeInterval(-120)
        let users: [(String, String, String, String)] = [
            ("abel.tuter", "Abel", "Tuter", "Service Desk Analyst"),
            ("beth.anglin", "Beth", "Anglin", "Network Engineer"),
            ("fred.luddy", "Fred", "Luddy", "IT Manager"),
        ]
        var userIDs: [String] = []
        for (index, user) in users.enumerated() {
            userIDs.append(try servicenow.insert("sys_user", [
                "user_name": user.0, "first_name": user.1, "last_name": user.2, "name": "\(user.1) \(user.2)",
                "email": "\(user.0)@example.com", "title": user.3, "active": "true",
            ], at: past.addingTimeInterval(Double(index))))
        }
        let incidents: [(String, String, String)] = [
            ("Email server is down", "1", "1"),
            ("VPN disconnects every hour", "2", "2"),
            ("Printer on floor 3 jams", "1", "4"),
        ]
        for (index, incident) in incidents.enumerated() {
            try servicenow.insert("incident", [
                "number": String(format: "INC%07d", 10001 + index), "short_description": incident.0,
                "state": incident.1, "priority": incident.2, "active": "true", "category": "inquiry",
                "caller_id": userIDs[index % userIDs.count],
                "opened_at": Timestamps.sqlStyle(past.addingTimeInterval(Double(10 + index))),
            ], at: past.addingTimeInterval(Double(10 + index)))
        }

        let issues: [(String, [String])] = [
            ("Crash when the config file is empty", ["bug"]),
            ("Document the retry schedule", ["docs"]),
            ("Support GitHub Enterprise base URLs", ["enhancement"]),
        ]
        for (index, issue) in issues.enumerated() {
            github.createIssue(title: issue.0, labels: issue.1, at: past.addingTimeInterval(Double(20 + index)))
        }

        for (index, customer) in Self.seededCustomers.enumerated() {
            netsuite.upsert("customer", id: customer.id, modifiedAt: past.addingTimeInterval(Double(30 + index)),
                            fields: DemoWorld.customerFields(id: customer.id, company: customer.company,
                                                            status: customer.status))
        }

        let contacts = ["Zylker Traders", "Bowman & Co", "Candid Crafts"].enumerated().map { index, name in
            zoho.createContact(name: name, email: "accounts@" + name.lowercased().filter(\.isLetter) + ".example",
                               at: past.addingTimeInterval(Double(40 + index)))
        }
        for (index, contact) in contacts.enumerated() {
            let name = contact.fields["contact_name"]?.stringValue ?? ""
            zoho.createInvoice(customerID: contact.id, customerName: name, total: Double(250 * (index + 1)),
                               at: past.addingTimeInterval(Double(50 + index)))
        }
    }

    /// The columns of a NetSuite customer row as SuiteQL returns them (strings, "T"/"F" booleans).
    static func customerFields(id: Int64, company: String, status: String) -> [(String, NetSuiteValue)] {
        let slug = company.lowercased().filter { $0.isLetter }
        return [("entityid", .text("CUST\(id)")), ("companyname", .text(company)), ("isperson", .text("F")),
                ("email", .text("billing@\(slug).example")), ("phone", .text(String(format: "555-01%02d", Int(id % 100)))),
                ("entitystatus", .text(status)), ("isinactive", .text("F"))]
    }

    /// The deltahook configuration for this world (docs/DESIGN.md §6): one connection per provider polled every second,
    /// initial_sync `emit` (the seeded records appear at once), secrets from `$CREDENTIALS_DIRECTORY`, and the
    /// receiver as the only subscriber (plain HTTP on loopback, allowed explicitly).
    public func configJSON(stateDirectory: String, logLevel: String) -> String {
        func object(_ name: String, _ model: String, interval: String = "1s", extra: [(String, JSONValue)] = [])
            -> JSONValue
        {
            .object(JSONObject([("name", .string(name)), ("model", .string(model)), ("interval", .string(interval)),
                                ("reconcile_every", .string("1m")), ("initial_sync", .string("emit"))] + extra))
        }
        func credential(_ name: String) -> JSONValue { .object(JSONObject([("credential", .string(name))])) }
        let connections: [JSONValue] = [
            .object(JSONObject([
                ("id", .string(Self.serviceNowConnection)), ("provider", .string("servicenow")),
                ("base_url", .string(servicenow.baseURL)),
                ("auth", .object(JSONObject([("type", .string("oauth2")), ("grant", .string("client_credentials")),
                                             ("client_id", .string(secrets.serviceNowClientID)),
                                             ("client_secret", credential("snow-client-secret"))]))),
                ("objects", .array([object("incident", "ticket"), object("sys_user", "user")])),
            ])),
            .object(JSONObject([
                ("id", .string(Self.githubConnection)), ("provider", .string("github")),
                ("base_url", .string(github.baseURL)),
                ("auth", .object(JSONObject([("type", .string("token")), ("token", credential("github-token"))]))),
                ("hints", .object(JSONObject([("style", .string("github")), ("secret", credential("github-hook-secret"))]))),
                ("objects", .array([object("issues", "ticket", interval: Self.githubInterval,
                                           extra: [("repository", .string("\(Self.githubOwner)/\(Self.githubRepository)"))])])),
            ])),
            .object(JSONObject([
                ("id", .string(Self.netsuiteConnection)), ("provider", .string("netsuite")),
                ("account_id", .string(Self.netsuiteAccount)), ("base_url", .string(netsuite.baseURL)),
                ("time_zone", .string(Self.netsuiteTimeZone)),
                ("auth", .object(JSONObject([("type", .string("tba")),
                                             ("consumer_key", credential("ns-consumer-key")),
                                             ("consumer_secret", credential("ns-consumer-secret")),
                                             ("token_id", credential("ns-token-id")),
                                             ("token_secret", credential("ns-token-secret"))]))),
                ("objects", .array([object("customer", "customer")])),
            ])),
            .object(JSONObject([
                ("id", .string(Self.zohoConnection)), ("provider", .string("zoho_books")),
                ("organization_id", .string(zoho.options.organizationID)), ("base_url", .string(zoho.baseURL)),
                ("accounts_url", .string(zoho.accountsURL)),
                ("budget", .object(JSONObject([("per_day", .integer(Int64(Self.zohoBudgetPerDay))),
                                               ("per_minute", .integer(Int64(Self.zohoBudgetPerMinute)))]))),
                ("auth", .object(JSONObject([("type", .string("oauth_refresh")),
                                             ("client_id", .string(secrets.zohoClientID)),
                                             ("client_secret", credential("zoho-client-secret")),
                                             ("refresh_token", credential("zoho-refresh-token"))]))),
                ("objects", .array([object("invoices", "invoice"), object("contacts", "customer")])),
            ])),
        ]
        let subscriber: JSONValue = .object(JSONObject([
            ("id", .string(Self.subscriber)), ("url", .string(receiver.url)),
            ("secrets", .array([credential("demo-webhook-secret")])), ("events", .array([.string("*")])),
            ("allow_insecure_http", .bool(true)), ("allow_private_network", .bool(true)),
        ]))
        let root: JSONValue = .object(JSONObject([
            ("state_directory", .string(stateDirectory)), ("log_level", .string(logLevel)),
            ("shutdown_timeout", .string("3s")),
            ("hints", .object(JSONObject([("listen", .string("127.0.0.1:\(hintPort)")), ("debounce", .string("1s"))]))),
            ("connections", .array(connections)), ("subscribers", .array([subscriber])),
        ]))
        return root.serialized() + "\n"
    }
}

public struct DemoError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
