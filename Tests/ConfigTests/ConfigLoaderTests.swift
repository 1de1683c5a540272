import Foundation
import Testing
import Core
@testable import Config

@Suite struct ExampleConfigTests {
    @Test func exampleIsValidWhenItsSecretsExist() throws {
        let dir = try Fixtures.exampleCredentialsDirectory()
        let config = try ConfigLoader.load(path: Fixtures.examplePath, environment: Fixtures.environment(dir))
        #expect(config.connections.map(\.provider) == [.servicenow, .netsuite, .github, .rest, .zohoBooks])
        let books = try #require(config.connection(id: "acme-books"))
        #expect(books.baseURL.absoluteString == "https://www.zohoapis.in/books/v3")
        #expect(books.settings.zohoBooks?.accountsURL?.absoluteString == "https://accounts.zoho.in")
        #expect(books.objects.map(\.model) == [.invoice, .customer])
        #expect(books.objects[1].settings.zohoBooks?.contactType == "customer")
        #expect(config.subscribers.count == 1)

        let snow = try #require(config.connection(id: "acme-snow"))
        #expect(snow.baseURL.absoluteString == "https://acme.service-now.com")
        #expect(snow.objects[0].deleteFeed == .audit)
        #expect(snow.objects[0].lookback == .seconds(5))
        #expect(snow.objects[1].model == .user)
        #expect(snow.limits == .defaults)
        #expect(snow.objects[0].deleteGuard == .defaults && snow.objects[0].maxPagesPerScan == 10_000)
        guard case .oauth2(let grant, let clientID, let secret, _, _, let refresh) = snow.auth else {
            Issue.record("expected oauth2 auth"); return
        }
        #expect(grant == .refreshToken && clientID == "deltahook")
        // Trailing newline of the credential file is trimmed.
        #expect(secret.unredactedValue == "\(Fixtures.distinctive)-snow-client-secret")
        #expect(refresh?.reference == .credential("snow-refresh-token"))

        let netsuite = try #require(config.connection(id: "acme-netsuite"))
        #expect(netsuite.baseURL.absoluteString == "https://1234567-sb1.suitetalk.api.netsuite.com")
        #expect(netsuite.settings.netsuite?.timeZone.identifier == "America/Los_Angeles")
        #expect(netsuite.settings.netsuite?.maxConcurrency == 5)
        #expect(netsuite.objects[1].settings.netsuite?.recordType == "CustInvc")

        let github = try #require(config.connection(id: "octo-github"))
        #expect(github.baseURL.absoluteString == "https://api.github.com")
        #expect(github.objects[0].settings.github?.repository == GitHubRepository(owner: "octo-org", name: "hello"))
        #expect(github.objects[0].pageSize == 100)
        #expect(github.objects[0].deleteFeed == DeleteFeed.none)

        let rest = try #require(config.connection(id: "acme-orders"))
        let request = try #require(rest.objects[0].settings.rest)
        #expect(request.pagination == .page(start: 1))
        #expect(request.recordsPath == ["data"])
        #expect(request.cursorField == ["updated_at"])

        let crm = try #require(config.subscriber(id: "crm"))
        #expect(crm.secrets[0].unredactedKey.count == 32)
        #expect(crm.signatureStyles == [.standard, .github])
        #expect(crm.accepts(eventType: "ticket.updated", connection: "acme-snow"))
        #expect(crm.accepts(eventType: "record.deleted", connection: "octo-github"))
        #expect(!crm.accepts(eventType: "record.created", connection: "octo-github"))
        #expect(!crm.accepts(eventType: "record.deleted", connection: "acme-orders"))
        #expect(config.delivery.retrySchedule.count == 8)
        #expect(config.delivery.maxRetryAfter == .seconds(3600))
        #expect(config.http == HTTPListenConfig(host: "127.0.0.1", port: 9464))
    }

    @Test func exampleWithoutSecretsNamesEachMissingCredential() throws {
        let error = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(path: Fixtures.examplePath, environment: ConfigEnvironment(variables: [:]))
        }
        #expect(error.problems.count == Fixtures.exampleCredentials.count + 1)
        #expect(error.problems.allSatisfy { $0.message.contains("$CREDENTIALS_DIRECTORY is not set") })
        #expect(error.problems.contains { $0.path == "subscribers[0].secrets[0]" })
    }
}

@Suite struct ValidationTests {
    static let minimal = """
        {"connections": [{"id": "gh", "provider": "github", "auth": {"type": "token", "token": {"env": "T"}},
                          "objects": [{"name": "issues", "repository": "o/r"}]}]}
        """
    let env = ConfigEnvironment(variables: ["T": "token-value-123"])

    @Test func minimalConfigGetsDefaults() throws {
        let config = try ConfigLoader.load(data: Data(Self.minimal.utf8), environment: env)
        #expect(config.stateDirectory == "/var/lib/deltahook")
        #expect(config.logLevel == .info)
        #expect(config.shutdownTimeout == .seconds(10))
        #expect(config.http == nil)
        let object = config.connections[0].objects[0]
        #expect(object.interval == .seconds(60) && object.lookback == .seconds(1))
        #expect(object.reconcileEvery == .seconds(6 * 3600) && object.initialSync == .silent && object.model == .record)
        #expect(config.delivery.jitter == 0.2 && config.delivery.pauseAfter == .seconds(5 * 86_400))
    }

    @Test func stateDirectoryComesFromSystemdWhenNotConfigured() throws {
        let config = try ConfigLoader.load(
            data: Data(Self.minimal.utf8),
            environment: ConfigEnvironment(variables: ["T": "token-value-123", "STATE_DIRECTORY": "/var/lib/private/deltahook"]))
        #expect(config.stateDirectory == "/var/lib/private/deltahook")
    }

    @Test func fiveMistakesGiveFivePathQualifiedProblems() {
        let text = """
            {"log_level": "verbose",
             "connections": [
               {"id": "gh", "provider": "github", "auth": {"type": "token", "token": {"env": "T"}},
                "objects": [{"name": "issues", "repository": "o/r", "interval": "5 minutes"}]},
               {"id": "snow", "provider": "servicenow", "base_url": "ftp://acme.service-now.com",
                "auth": {"type": "basic", "username": "u", "password": "hunter2"},
                "objects": [{"name": "incident", "model": "ticket"}]}],
             "subscribers": [{"id": "crm", "url": "https://hooks.example.com/x", "secrets": [{"env": "W"}],
                              "connections": ["gh", "snoww"]}]}
            """
        let found = problems(text, environment: ConfigEnvironment(variables: ["T": "token-value-123", "W": Fixtures.webhookSecret]))
        let paths = found.map(\.path)
        #expect(paths == ["log_level", "connections[0].objects[0].interval", "connections[1].base_url",
                          "connections[1].auth.password", "subscribers[0].connections[1]"], "\(found)")
        #expect(found.count == 5)
        #expect(found[1].description == #"connections[0].objects[0].interval: "5 minutes" is not a duration; use e.g. "500ms", "30s", "5m", "2h" or "5d""#)
        #expect(found[0].message.contains("\"info\""))
        #expect(found[2].message.contains("expected https"))
        #expect(found[3].message.contains("plain string is not accepted"))
        #expect(!found[3].message.contains("hunter2"))
        #expect(found[4].message.contains("did you mean \"snow\"?"))
    }

    @Test func unknownKeysAreErrorsWithSuggestions() {
        let text = """
            {"connections": [{"id": "gh", "provider": "github", "auth": {"type": "token", "token": {"env": "T"}},
                              "objects": [{"name": "issues", "repository": "o/r", "intervall": "1m"}]}],
             "delivry": {}, "// note": "comments are fine"}
            """
        let found = problems(text, environment: env)
        #expect(found.map(\.description) == [
            #"connections[0].objects[0].intervall: unknown key; did you mean "interval"?"#,
            #"delivry: unknown key; did you mean "delivery"?"#,
        ])
    }

    @Test("rules 12, 14, 17, 18: limits and the delete guard have defaults and are range-checked")
    func untrustedInputLimits() throws {
        let config = try ConfigLoader.load(data: Data(Self.minimal.utf8), environment: env)
        #expect(config.connections[0].limits == .defaults)
        #expect(config.connections[0].limits.maxProviderWait == .seconds(3600))
        #expect(config.connections[0].limits.maxClockSkew == .seconds(300))
        #expect(config.connections[0].limits.maxResponseBytes == 32 << 20)
        #expect(config.connections[0].objects[0].deleteGuard == DeleteGuardPolicy(maxFraction: 0.2, minRecords: 10))
        #expect(config.connections[0].objects[0].maxPagesPerScan == 10_000)

        let tuned = """
            {"connections": [{"id": "gh", "provider": "github", "auth": {"type": "token", "token": {"env": "T"}},
                              "max_provider_wait": "10m", "max_clock_skew": "0s", "max_response_bytes": 1048576,
                              "objects": [{"name": "a", "repository": "o/r", "delete_guard": false, "max_pages_per_scan": 5},
                                          {"name": "b", "repository": "o/r", "delete_guard": {"max_fraction": 0.5}}]}]}
            """
        let custom = try ConfigLoader.load(data: Data(tuned.utf8), environment: env)
        let connection = custom.connections[0]
        #expect(connection.limits == ConnectionLimits(maxProviderWait: .seconds(600), maxClockSkew: .zero,
                                                      maxResponseBytes: 1 << 20))
        #expect(connection.objects[0].deleteGuard == nil && connection.objects[0].maxPagesPerScan == 5)
        #expect(connection.objects[1].deleteGuard == DeleteGuardPolicy(maxFraction: 0.5, minRecords: 10))

        let bad = """
            {"connections": [{"id": "gh", "provider": "gitlab", "max_provider_wait": "30d", "max_clock_skew": 5,
                              "max_response_bytes": 9223372036854775807, "objects": []},
                             {"id": "g2", "provider": "github", "auth": {"type": "token", "token": {"env": "T"}},
                              "objects": [{"name": "a", "repository": "o/r", "max_pages_per_scan": 0,
                                           "delete_guard": {"max_fraction": 1.5, "min_records": -1, "typo": 1}},
                                          {"name": "b", "repository": "o/r", "delete_guard": "off"}]}]}
            """
        let found = problems(bad, environment: env).map(\.path)
        for path in ["connections[0].max_provider_wait", "connections[0].max_clock_skew",
                     "connections[0].max_response_bytes", "connections[1].objects[0].max_pages_per_scan",
                     "connections[1].objects[0].delete_guard.max_fraction",
                     "connections[1].objects[0].delete_guard.min_records", "connections[1].objects[0].delete_guard.typo",
                     "connections[1].objects[1].delete_guard"] {
            #expect(found.contains(path), "missing problem at \(path): \(found)")
        }
    }

    @Test("rule 22: budget is optional; per_day is required in it; bad values are listed with their JSON paths")
    func budgetKey() throws {
        let env = ConfigEnvironment(variables: ["T": "t"])
        func connection(_ budget: String) -> String {
            """
            {"connections": [{"id": "gh", "provider": "github", "auth": {"type": "token", "token": {"env": "T"}},
                              \(budget) "objects": [{"name": "a", "repository": "o/r"}]}]}
            """
        }
        #expect(try ConfigLoader.load(data: Data(connection("").utf8), environment: env).connections[0].budget == nil)
        let plain = try ConfigLoader.load(data: Data(connection(#""budget": {"per_day": 1000},"#).utf8), environment: env)
        #expect(plain.connections[0].budget == RequestBudgetLimits(perDay: 1000, perMinute: nil, reserve: 0.1))
        let full = try ConfigLoader.load(
            data: Data(connection(#""budget": {"per_day": 1000, "per_minute": 100, "reserve": 0.25},"#).utf8),
            environment: env)
        #expect(full.connections[0].budget == RequestBudgetLimits(perDay: 1000, perMinute: 100, reserve: 0.25))

        let cases: [(String, String)] = [
            (#""budget": {"per_minute": 10},"#, "connections[0].budget.per_day"),
            (#""budget": {"per_day": 0},"#, "connections[0].budget.per_day"),
            (#""budget": {"per_day": 10000001},"#, "connections[0].budget.per_day"),
            (#""budget": {"per_day": 100, "per_minute": 200},"#, "connections[0].budget.per_minute"),
            (#""budget": {"per_day": 100, "reserve": 0.95},"#, "connections[0].budget.reserve"),
            (#""budget": {"per_day": 100, "per_hour": 5},"#, "connections[0].budget.per_hour"),
            (#""budget": 1000,"#, "connections[0].budget"),
        ]
        for (budget, path) in cases {
            let found = problems(connection(budget), environment: env).map(\.path)
            #expect(found.contains(path), "\(budget): \(found)")
        }
    }

    @Test("URLs with a port outside 1–65535 are refused, wherever they appear")
    func portsOutOfRange() {
        for port in ["99999", "0", "65536"] {
            let text = """
                {"connections": [{"id": "gh", "provider": "github", "base_url": "https://example.com:\(port)/",
                                  "auth": {"type": "token", "token": {"env": "T"}},
                                  "objects": [{"name": "issues", "repository": "o/r"}]}]}
                """
            let found = problems(text, environment: env)
            #expect(found.contains { $0.path == "connections[0].base_url" }, "port \(port): \(found)")
        }
        let ok = """
            {"connections": [{"id": "gh", "provider": "github", "base_url": "https://example.com:65535",
                              "auth": {"type": "token", "token": {"env": "T"}},
                              "objects": [{"name": "issues", "repository": "o/r"}]}]}
            """
        #expect(problems(ok, environment: env).isEmpty)
    }

    @Test("an unknown provider still gets its common connection and object keys checked")
    func unknownProviderStillChecksCommonKeys() {
        let text = """
            {"connections": [{"id": "j", "provider": "jira", "base_url": "https://x.example:99999",
                              "auth": {"type": "whatever"}, "account_id": "1",
                              "objects": [{"name": "issues", "interval": "soon", "page_size": 0, "emit": "all",
                                           "repository": "o/r", "intervall": "1m"}]}]}
            """
        let found = problems(text, environment: env).map(\.path)
        for path in ["connections[0].provider", "connections[0].base_url", "connections[0].objects[0].interval",
                     "connections[0].objects[0].page_size", "connections[0].objects[0].emit",
                     "connections[0].objects[0].intervall"] {
            #expect(found.contains(path), "missing \(path) in \(found)")
        }
        #expect(!found.contains("connections[0].objects[0].repository"))   // provider keys: not judged
        #expect(!found.contains("connections[0].account_id"))
    }

    @Test func providerSpecificKeysAreOnlyAcceptedForTheirProvider() {
        let text = """
            {"connections": [{"id": "gh", "provider": "github", "account_id": "123", "auth": {"type": "tba"},
                              "objects": [{"name": "issues", "repository": "o/r", "delete_feed": "audit"}]}]}
            """
        let found = problems(text, environment: env).map(\.path)
        #expect(found.contains("connections[0].account_id"))
        #expect(found.contains("connections[0].auth.type"))
        #expect(found.contains("connections[0].objects[0].delete_feed"))
    }

    @Test func duplicatesUnknownProvidersModelsAndBadURLs() {
        let text = """
            {"connections": [
               {"id": "a", "provider": "jira", "objects": []},
               {"id": "a", "provider": "servicenow", "base_url": "https://user:pw@x.service-now.com",
                "auth": {"type": "basic", "username": "u", "password": {"env": "T"}},
                "objects": [{"name": "incident", "model": "tickets"}, {"name": "incident", "model": "customer"}]},
               {"id": "ns", "provider": "netsuite", "account_id": "123", "time_zone": "PST",
                "auth": {"type": "tba", "consumer_key": {"env": "T"}, "consumer_secret": {"env": "T"},
                         "token_id": {"env": "T"}, "token_secret": {"credential": "../x"}},
                "objects": [{"name": "customer"}]}],
             "subscribers": [{"id": "s", "url": "http://hooks.example.com", "secrets": [{"env": "T"}]},
                             {"id": "s", "url": "https://", "secrets": [], "events": ["tickets.*", "*.removed", "ticket"]}]}
            """
        let found = problems(text, environment: env)
        let text2 = found.map(\.description).joined(separator: "\n")
        for expected in [
            #"connections[0].provider: "jira" is not allowed here"#,
            #"connections[1].id: duplicate connection id "a""#,
            "connections[1].base_url: credentials inside the URL are not allowed",
            #"connections[1].objects[0].model: "tickets" is not allowed here"#,
            #"did you mean "ticket"?"#,
            #"connections[1].objects[1].model: "customer" is not allowed here"#,
            #"connections[1].objects[1].name: duplicate object name "incident""#,
            #"connections[2].time_zone: "PST" is not an IANA time zone name"#,
            #"connections[2].auth.token_secret.credential: "../x" is not a credential name"#,
            "subscribers[0].url: \"http://hooks.example.com\" uses http",
            "subscribers[0].secrets[0]: environment variable \"T\" does not start with \"whsec_\"",
            #"subscribers[1].id: duplicate subscriber id "s""#,
            #"subscribers[1].url: "https://" has no host"#,
            "subscribers[1].secrets: is empty",
            #"subscribers[1].events[0]: "tickets.*" names no model"#,
            #"subscribers[1].events[1]: "*.removed" names no event kind"#,
            #"subscribers[1].events[2]: "ticket" is not an event pattern"#,
        ] {
            #expect(text2.contains(expected), "missing \(expected) in\n\(text2)")
        }
        #expect(!text2.contains("pw@"), "the URL's password must not be echoed")
    }

    @Test func restRequestIsChecked() {
        let text = """
            {"connections": [{"id": "r", "provider": "rest", "base_url": "https://api.example.com", "auth": {"type": "none"},
              "objects": [{"name": "orders", "request": {"path": "v1/orders?since={since}&page={page}", "id_field": "id",
                           "cursor_field": "a..b", "pagination": {"style": "next_token", "field": "meta.next"}}}]}]}
            """
        let found = problems(text, environment: env).map(\.description)
        #expect(found.contains { $0.hasPrefix("connections[0].objects[0].request.path: \"v1/orders") && $0.contains("must start with \"/\"") })
        #expect(found.contains { $0.contains("unknown placeholder {since}") })
        #expect(found.contains { $0.contains("must contain {cursor}") })
        #expect(found.contains { $0.contains("needs the {next} placeholder") })
        #expect(found.contains { $0.contains("{page} is only filled by the matching pagination style") })
        #expect(found.contains { $0.hasPrefix("connections[0].objects[0].request.cursor_field") })
    }

    @Test func typeMismatchesSayWhatWasExpected() {
        let text = """
            {"shutdown_timeout": 10, "http": {"listen": "localhost"},
             "connections": [{"id": "gh", "provider": "github", "auth": {"type": "token", "token": {"env": "T"}},
                              "objects": [{"name": "issues", "repository": "o/r", "page_size": 500,
                                           "include_pull_requests": "yes"}]}],
             "delivery": {"jitter": 1.5, "retry_schedule": []}}
            """
        let found = problems(text, environment: env).map(\.description)
        #expect(found.contains(#"shutdown_timeout: 10 is a bare number; durations are strings with a unit, e.g. "10s""#))
        #expect(found.contains { $0.hasPrefix("http.listen: \"localhost\" has no port") })
        #expect(found.contains("connections[0].objects[0].page_size: 500 is out of range; expected an integer from 1 to 100"))
        #expect(found.contains("connections[0].objects[0].include_pull_requests: expected true or false, found a string"))
        #expect(found.contains { $0.hasPrefix("delivery.jitter: 1.5 is out of range") })
        #expect(found.contains { $0.hasPrefix("delivery.retry_schedule: expected 1 to 100 durations") })
    }

    @Test func malformedJSONNamesLineAndColumn() {
        let text = "{\n  \"connections\": [\n    {\"id\": \"x\",}\n  ]\n}\n"
        let found = problems(text, environment: env)
        #expect(found.count == 1)
        #expect(found[0].message.contains("line 3, column"), "\(found)")
    }

    @Test func missingFileSaysSo() throws {
        let error = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(path: "/nonexistent/deltahook/config.json", environment: env)
        }
        #expect(error.problems.count == 1)
        #expect(error.description.contains("config file /nonexistent/deltahook/config.json does not exist"))
    }

    @Test func topLevelMustBeAnObject() {
        #expect(problems("[1, 2]", environment: env).map(\.description) == ["(top level): expected an object, found an array"])
    }
}

@Suite struct SecretTests {
    @Test func credentialFileAndEnvironmentResolve() throws {
        let dir = try TemporaryDirectory()
        try dir.write("api", "from-credential\r\n")
        let file = try dir.write("other", "from-file\n\n")
        let env = ConfigEnvironment(variables: ["API": "from-env\n"], credentialsDirectory: dir.path)
        #expect(try env.resolve(.credential("api")).get().unredactedValue == "from-credential")
        #expect(try env.resolve(.file(file)).get().unredactedValue == "from-file")
        // Environment values are taken as they are.
        #expect(try env.resolve(.environment("API")).get().unredactedValue == "from-env\n")
    }

    @Test func credentialsDirectoryComesFromTheEnvironment() throws {
        let dir = try TemporaryDirectory()
        try dir.write("api", "v4lue")
        let env = ConfigEnvironment(variables: ["CREDENTIALS_DIRECTORY": dir.path])
        #expect(try env.resolve(.credential("api")).get().unredactedValue == "v4lue")
    }

    @Test func resolutionErrorsNameTheReference() throws {
        let dir = try TemporaryDirectory()
        try dir.write("empty", "\n")
        let env = ConfigEnvironment(variables: [:], credentialsDirectory: dir.path)
        func message(_ r: SecretReference) -> String {
            switch env.resolve(r) {
            case .success: return "resolved"
            case .failure(let e): return e.description
            }
        }
        #expect(message(.credential("snow-client-secret")) == "credential \"snow-client-secret\" not found in $CREDENTIALS_DIRECTORY (\(dir.path))")
        #expect(message(.credential("empty")).hasPrefix("credential \"empty\" is empty"))
        #expect(message(.file("/nonexistent/secret")) == "file \"/nonexistent/secret\" not found (/nonexistent/secret)")
        #expect(message(.file(dir.path)).contains("is a directory"))
        #expect(message(.environment("NOPE")) == "environment variable \"NOPE\" is not set")
    }

    @Test func webhookSecretShapes() {
        func check(_ value: String) -> String {
            switch WebhookSecret.parse(Secret(unredactedValue: value, reference: .environment("W"))) {
            case .success(let w): return "ok \(w.unredactedKey.count)"
            case .failure(let e): return e.problem
            }
        }
        #expect(check(Fixtures.webhookSecret) == "ok 32")
        #expect(check("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").hasPrefix("does not start with \"whsec_\""))
        #expect(check("whsec_not*base64").hasPrefix("has a \"whsec_\" prefix but"))
        #expect(check("whsec_" + Data(repeating: 1, count: 16).base64EncodedString()) == "decodes to 16 bytes; a webhook key must be 24–64 bytes")
        #expect(check("whsec_" + Data(repeating: 1, count: 65).base64EncodedString()).hasPrefix("decodes to 65 bytes"))
    }

    @Test func secretsNeverAppearInMessagesOrDescriptions() throws {
        let marker = Fixtures.distinctive
        let dir = try TemporaryDirectory()
        try dir.write("hook", "whsec_\(marker)\n")  // wrong shape: base64 fails, value contains the marker
        try dir.write("key", "\(marker) is not a PEM key")
        try dir.write("good", "\(marker)-good")
        let text = """
            {"connections": [
               {"id": "gh", "provider": "github",
                "auth": {"type": "github_app", "app_id": 1, "installation_id": 2, "private_key": {"credential": "key"}},
                "objects": [{"name": "issues", "repository": "o/r"}]},
               {"id": "snow", "provider": "servicenow", "base_url": "https://x:\(marker)@acme.service-now.com",
                "auth": {"type": "basic", "username": "u", "password": "\(marker)"},
                "objects": [{"name": "incident"}]},
               {"id": "snow2", "provider": "servicenow", "base_url": "https://acme.service-now.com",
                "auth": {"type": "basic", "username": "u", "password": {"credential": "good"}},
                "objects": [{"name": "incident"}]}],
             "subscribers": [{"id": "crm", "url": "https://hooks.example.com", "secrets": [{"credential": "hook"}, "\(marker)"]}]}
            """
        let env = ConfigEnvironment(variables: ["X": marker], credentialsDirectory: dir.path)
        let error = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(data: Data(text.utf8), environment: env)
        }
        #expect(error.problems.count == 5, "\(error)")
        var texts = [error.description, String(reflecting: error)] + error.problems.map(\.description)
        var dumped = ""
        dump(error, to: &dumped)
        texts.append(dumped)

        // A resolved secret: every way of printing it is redacted.
        let secret = try env.resolve(.credential("good")).get()
        var dumpedSecret = ""
        dump(secret, to: &dumpedSecret)
        texts += [String(describing: secret), String(reflecting: secret), "\(secret)", dumpedSecret]
        #expect(String(describing: secret) == "<redacted>")
        #expect(dumpedSecret.contains("<redacted>"), "\(dumpedSecret)")
        let hook = try #require(try? WebhookSecret.parse(Secret(unredactedValue: Fixtures.webhookSecret, reference: .environment("W"))).get())
        var dumpedHook = ""
        dump(hook, to: &dumpedHook)
        texts += [String(describing: hook), String(reflecting: hook), dumpedHook]

        // A whole valid config dumped or described shows no secret either.
        let valid = try ConfigLoader.load(data: Data(ValidationTests.minimal.utf8), environment: ConfigEnvironment(variables: ["T": marker]))
        var dumpedConfig = ""
        dump(valid, to: &dumpedConfig)
        texts += [dumpedConfig, String(reflecting: valid)]

        for t in texts {
            #expect(!t.contains(marker), "secret leaked in: \(t)")
            #expect(!t.contains(String(Fixtures.webhookSecret.dropFirst(6))), "webhook key leaked in: \(t)")
        }
    }
}

@Suite struct EventTypeGlobTests {
    @Test(arguments: [
        ("*", "ticket.created", true), ("ticket.*", "ticket.updated", true), ("ticket.*", "user.updated", false),
        ("*.deleted", "customer.deleted", true), ("*.deleted", "customer.created", false),
        ("ticket.created", "ticket.created", true), ("ticket.created", "ticket.createdx", false),
        ("t*t.*d", "ticket.created", true), ("**", "", true), ("*.*", "ticket", false),
    ])
    func matching(pattern: String, type: String, expected: Bool) {
        #expect(EventTypeGlob(pattern).matches(type) == expected)
    }

    @Test func anyMatches() {
        let globs = [EventTypeGlob("ticket.*"), EventTypeGlob("*.deleted")]
        #expect(EventTypeGlob.anyMatches(globs, "user.deleted"))
        #expect(!EventTypeGlob.anyMatches(globs, "user.created"))
        #expect(!EventTypeGlob.anyMatches([], "user.created"))
    }
}
