// The ServiceNow adapter against the emulator, one engine rule (docs/DESIGN.md §2) per test where one applies.
import Config
import Core
import Emulators
import Foundation
import Logging
import HTTPClient
import Providers
import Synchronization
import Testing

@Suite("ServiceNow adapter")
struct ServiceNowAdapterTests {
    // MARK: paging (rules 2, 3, 4)

    @Test("rule 3: a same-second burst larger than a page advances by sys_id and is read exactly once, no offsets")
    func sameSecondBurst() async throws {
        try await withServiceNow { h in
            var ids = Set<String>()
            for i in 0..<57 { ids.insert(try h.emulator.insert("incident", ["number": "INC\(i)"], at: at())) }
            let (records, pages) = try await scanAll(h.source("incident"), pageSize: 10)
            #expect(records.map(\.id).count == 57)
            #expect(Set(records.map(\.id)) == ids)
            #expect(records.map(\.id) == records.map(\.id).sorted(), "ordered by (sys_updated_on, sys_id)")
            #expect(pages.count == 7, "6 full pages, then an empty page ends the scan")
            #expect(h.emulator.tableRequestLog.allSatisfy { $0.query["sysparm_offset"] == nil })
            let later = try #require(h.emulator.tableRequestLog.dropFirst().first?.query["sysparm_query"])
            #expect(later.hasPrefix("sys_updated_on>=2026-11-29 06:00:00^sys_updated_on>2026-11-29 06:00:00^ORsys_id>"))
            #expect(later.hasSuffix("^ORDERBYsys_updated_on^ORDERBYsys_id"))
            let first = h.emulator.tableRequestLog.first?.query
            #expect(first?["sysparm_display_value"] == "false" && first?["sysparm_exclude_reference_link"] == "true")
        }
    }

    @Test("rule 2: the lower bound is inclusive to the second, as a bare UTC literal")
    func inclusiveLowerBound() async throws {
        try await withServiceNow { h in
            try h.emulator.insert("incident", ["number": "before"], at: at(9))
            try h.emulator.insert("incident", ["number": "on"], at: at(10))
            try h.emulator.insert("incident", ["number": "after"], at: at(11))
            // A bound with a fraction of a second still includes the whole second it falls in.
            let records = try await scanAll(h.source("incident"), lowerBound: at(10).addingTimeInterval(0.4), pageSize: 100).records
            #expect(records.map { $0.raw["number"] } == ["on", "after"])
            #expect(h.emulator.tableRequestLog.first?.query["sysparm_query"]
                    == "sys_updated_on>=2026-11-29 06:00:10^ORDERBYsys_updated_on^ORDERBYsys_id")
        }
    }

    @Test("rule 4: a page shortened by ACLs is not the end of the scan")
    func shortPagesDoNotEndTheScan() async throws {
        try await withServiceNow { h in
            var visible: [String] = []
            for i in 0..<30 {
                let id = try h.emulator.insert("incident", ["number": "INC\(i)"], at: at(i / 3))
                if i % 3 == 0 { h.emulator.setHidden("incident", [id]) } else { visible.append(id) }
            }
            let (records, pages) = try await scanAll(h.source("incident"), pageSize: 10)
            #expect(Set(records.map(\.id)) == Set(visible))
            #expect(records.count == visible.count)
            #expect(pages.dropLast().allSatisfy { $0.records.count < 10 && $0.next != nil })
            #expect(pages.last?.records.isEmpty == true && pages.last?.next == nil)
        }
    }

    @Test("rule 4: a page emptied entirely by ACLs while more rows are announced is stepped over, with a warning")
    func pageEmptiedByACLsIsSteppedOver() async throws {
        try await withServiceNow { h in
            var all: [String] = []
            for i in 0..<35 { all.append(try h.emulator.insert("incident", ["number": "INC\(i)"], at: at(i))) }
            h.emulator.setHidden("incident", Array(all[0..<22]))
            let (records, pages) = try await scanAll(h.source("incident"), pageSize: 10)
            #expect(records.map(\.id) == Array(all[22...]))
            #expect(pages.first?.warnings.first?.contains("hidden by ACLs") == true)
            // Offsets appear only while stepping over the emptied pages, inside the same keyset query.
            let stepping = h.emulator.tableRequestLog.filter { $0.query["sysparm_offset"] != nil }
            #expect(!stepping.isEmpty)
            #expect(Set(stepping.map { $0.query["sysparm_query"] ?? "" }).count == 1)
        }
    }

    @Test("rule 4: when every matching row is hidden the scan ends, saying so")
    func everythingHidden() async throws {
        try await withServiceNow { h in
            var all: [String] = []
            for i in 0..<25 { all.append(try h.emulator.insert("incident", [:], at: at(i))) }
            h.emulator.setHidden("incident", all)
            let (records, pages) = try await scanAll(h.source("incident"), pageSize: 10)
            #expect(records.isEmpty && pages.count == 1)
            #expect(pages[0].warnings.contains { $0.contains("none is visible") })
        }
    }

    @Test("rule 4: v1-style 404 No Record found means an empty page, not an error")
    func v1NotFoundIsEmpty() async throws {
        try await withServiceNow { h in
            h.emulator.failNext(.error(status: 404, message: "No Record found",
                                       detail: "Records matching query not found. Check query parameter or offset parameter"))
            let page = try await h.source("incident").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10))
            #expect(page.records.isEmpty && page.next == nil)
        }
    }

    @Test("sysparm_fields always carries sys_id and sys_updated_on when the object lists fields")
    func fieldsIncludeKeysetColumns() async throws {
        try await withServiceNow { h in
            try h.emulator.insert("incident", ["number": "INC1", "state": "2"], at: at())
            let page = try await h.source("incident", fields: ["number", "state"])
                .fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10))
            #expect(h.emulator.tableRequestLog.first?.query["sysparm_fields"] == "sys_id,sys_updated_on,number,state")
            #expect(page.records.first?.raw.objectValue?.keys.sorted() == ["number", "state", "sys_id", "sys_updated_on"])
        }
    }

    @Test("rule 3: an update landing mid-scan moves the record behind the cursor and is read in the same scan")
    func updateMidScan() async throws {
        try await withServiceNow { h in
            var ids: [String] = []
            for i in 0..<20 { ids.append(try h.emulator.insert("incident", ["state": "1"], at: at(i))) }
            let (records, _) = try await scanAll(h.source("incident"), pageSize: 5) { index in
                if index == 0 { try h.emulator.update("incident", ids[2], ["state": "2"], at: at(100)) }
            }
            let reads = records.filter { $0.id == ids[2] }
            #expect(reads.count == 2, "once before and once after the update")
            #expect(reads.last?.raw["state"] == "2")
            #expect(Set(records.map(\.id)) == Set(ids))
        }
    }

    // MARK: auth (rule 11)

    @Test("rule 11: Basic auth works; wrong credentials are an authentication error naming no secret")
    func basicAuthentication() async throws {
        try await withServiceNow { h in
            _ = try await h.source("incident").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
        }
        try await withServiceNow(auth: .basic(username: "admin", password: secret("wrong-password"))) { h in
            let error = await expectProviderError {
                try await h.source("incident").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
            }
            guard case .authentication(let message, let hint)? = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(message.contains("User Not Authenticated"))
            #expect(hint.contains("username and password"))
            #expect(!"\(message) \(hint)".contains("wrong-password"))
        }
    }

    @Test("rule 11: an OAuth token is fetched once and reused until shortly before expires_in", arguments: [
        OAuth2Grant.password, .refreshToken, .clientCredentials,
    ])
    func tokenCachedAndRefreshedBeforeExpiry(grant: OAuth2Grant) async throws {
        let clock = TestClock()
        try await withServiceNow(auth: oauth(grant), options: .init(tokenLifetime: 600), clock: clock) { h in
            for i in 0..<5 { try h.emulator.insert("incident", [:], at: at(i)) }
            _ = try await scanAll(h.source("incident"), pageSize: 2)
            #expect(h.emulator.issuedGrants == [grant.rawValue])
            clock.advance(541) // 600 s lifetime minus the 60 s margin, plus one
            _ = try await scanAll(h.source("incident"), pageSize: 10)
            #expect(h.emulator.issuedGrants == [grant.rawValue, grant.rawValue])
            #expect(h.emulator.tableRequestLog.allSatisfy { $0.status == 200 }, "refreshed before the instance refused it")
        }
    }

    @Test("rule 11: a token expiring mid-scan is refreshed once on the 401; nothing lost or doubled")
    func tokenExpiryMidScan() async throws {
        try await withServiceNow(auth: oauth(.password)) { h in
            var ids = Set<String>()
            for i in 0..<30 { ids.insert(try h.emulator.insert("incident", [:], at: at(i / 10))) }
            let (records, _) = try await scanAll(h.source("incident"), pageSize: 7) { index in
                if index == 1 { h.emulator.expireAllTokens() }
            }
            #expect(records.count == 30 && Set(records.map(\.id)) == ids)
            #expect(h.emulator.issuedGrants.count == 2)
            #expect(h.emulator.tableRequestLog.filter { $0.status == 401 }.count == 1)
        }
    }

    @Test("rule 11: ServiceNow's access_denied from the token endpoint is an auth error with a grant-specific hint")
    func tokenEndpointAccessDenied() async throws {
        try await withServiceNow(auth: oauth(.clientCredentials, clientSecret: "not-the-secret")) { h in
            let error = await expectProviderError {
                try await h.source("incident").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
            }
            guard case .authentication(let message, let hint)? = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(message.contains("server_error: access_denied"))
            #expect(hint.contains("glide.oauth.inbound.client.credential.grant_type.enabled"))
            #expect(!"\(message) \(hint)".contains("not-the-secret"))
            #expect(h.emulator.tableRequestLog.isEmpty, "no API request without a token")
        }
        try await withServiceNow(auth: oauth(.clientCredentials), options: .init(clientCredentialsEnabled: false)) { h in
            let error = await expectProviderError {
                try await h.source("incident").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
            }
            guard case .authentication? = error else { Issue.record("got \(String(describing: error))"); return }
        }
    }

    @Test("rule 11: a 401 right after a refresh is reported, not retried forever")
    func unauthorizedAfterRefresh() async throws {
        try await withServiceNow(auth: oauth(.refreshToken)) { h in
            h.emulator.setRequestHook { _ in h.emulator.expireAllTokens() }
            let error = await expectProviderError {
                try await h.source("incident").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
            }
            guard case .authentication(_, let hint)? = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(hint.contains("freshly issued"))
            #expect(h.emulator.tableRequestLog.count == 2)
            #expect(h.emulator.issuedGrants.count == 2)
        }
    }

    @Test("concurrent objects share one token request")
    func singleFlightRefresh() async throws {
        try await withServiceNow(auth: oauth(.password)) { h in
            try h.emulator.insert("incident", [:], at: at())
            try await withThrowingTaskGroup(of: Void.self) { group in
                for table in ["incident", "sys_user", "sys_user_group", "incident"] {
                    group.addTask {
                        _ = try await h.source(table).fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
                    }
                }
                try await group.waitForAll()
            }
            #expect(h.emulator.issuedGrants.count == 1)
        }
    }

    // MARK: rate limits and errors (rule 9)

    @Test("rule 9: 429 with Retry-After asks for exactly that wait")
    func retryAfterExact() async throws {
        try await withServiceNow { h in
            h.emulator.failNext(.rateLimited(retryAfter: 7))
            let error = await expectProviderError {
                try await h.source("incident").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
            }
            guard case .rateLimited(let wait, let message)? = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(wait == .seconds(7))
            #expect(message.contains("Rate limit of 100 requests per hour"))
        }
    }

    @Test("rule 9: 429 without headers backs off exponentially with jitter, and success resets it")
    func headerlessBackoff() async throws {
        try await withServiceNow { h in
            let source = h.source("incident")
            var waits: [Duration] = []
            h.emulator.failNext(.rateLimited(retryAfter: nil), times: 3)
            for _ in 0..<3 {
                let error = await expectProviderError {
                    try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
                }
                guard case .rateLimited(let wait, _)? = error else { Issue.record("got \(String(describing: error))"); return }
                waits.append(wait)
            }
            #expect(waits[0] >= .milliseconds(1600) && waits[0] <= .milliseconds(2400))
            #expect(waits[1] >= .milliseconds(3200) && waits[1] <= .milliseconds(4800))
            #expect(waits[2] >= .milliseconds(6400) && waits[2] <= .milliseconds(9600))
            _ = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
            h.emulator.failNext(.rateLimited(retryAfter: nil))
            let again = await expectProviderError {
                try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
            }
            guard case .rateLimited(let wait, _)? = again else { Issue.record("got \(String(describing: again))"); return }
            #expect(wait <= .milliseconds(2400), "reset after a success")
        }
    }

    @Test("403 Insufficient rights is a permission error for that object; 400 Invalid table is a configuration error")
    func permissionAndConfiguration() async throws {
        try await withServiceNow { h in
            h.emulator.setForbidden("sys_user")
            let denied = await expectProviderError {
                try await h.source("sys_user").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
            }
            guard case .permission(let message)? = denied else { Issue.record("got \(String(describing: denied))"); return }
            #expect(message.contains("acme-snow sys_user: Insufficient rights to query records"))
            _ = try await h.source("incident").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))

            let unknown = await expectProviderError {
                try await h.source("u_missing").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
            }
            guard case .configuration(let text)? = unknown else { Issue.record("got \(String(describing: unknown))"); return }
            #expect(text.contains("Invalid table u_missing"))
        }
    }

    @Test("error envelopes with a null detail and HTML from a hibernating instance give clear errors")
    func envelopesAndHibernation() async throws {
        try await withServiceNow { h in
            h.emulator.failNext(.error(status: 500, message: "Internal server error", detail: nil))
            let failure = await expectProviderError {
                try await h.source("incident").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
            }
            guard case .http(500, let message)? = failure else { Issue.record("got \(String(describing: failure))"); return }
            #expect(message == "acme-snow incident: Internal server error")

            h.emulator.failNext(.hibernating)
            let html = await expectProviderError {
                try await h.source("incident").fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
            }
            guard case .http(200, let text)? = html else { Issue.record("got \(String(describing: html))"); return }
            #expect(text.contains("hibernating"))

        }
    }

    // MARK: deletes (rule 6)

    @Test("rule 6: sys_audit_delete is read per table with a keyset on (sys_created_on, sys_id)")
    func auditDeleteFeed() async throws {
        try await withServiceNow { h in
            var doomed: [String] = []
            for i in 0..<7 { doomed.append(try h.emulator.insert("incident", [:], at: at(i))) }
            let user = try h.emulator.insert("sys_user", [:], at: at())
            for id in doomed { try h.emulator.delete("incident", id, at: at(50)) }
            try h.emulator.delete("sys_user", user, at: at(50))
            let source = h.source("incident")
            var notices: [DeletedRecordNotice] = []
            var after: ScanPosition?
            for _ in 0..<20 {
                guard let page = try await source.fetchDeletions(since: at(40), after: after, pageSize: 3) else {
                    Issue.record("audited object returned no feed"); return
                }
                notices += page.deletions
                guard let next = page.next else { break }
                after = next
            }
            #expect(Set(notices.map(\.id)) == Set(doomed) && notices.count == 7)
            #expect(notices.allSatisfy { $0.deletedAt == at(50) })
            let query = h.emulator.tableRequestLog.first { $0.path.hasSuffix("sys_audit_delete") }?.query
            #expect(query?["sysparm_query"] == "tablename=incident^sys_created_on>=2026-11-29 06:00:40^ORDERBYsys_created_on^ORDERBYsys_id")
            #expect(query?["sysparm_fields"] == "sys_id,tablename,documentkey,sys_created_on")

            let later = try await source.fetchDeletions(since: at(51), after: nil, pageSize: 3)
            #expect(later?.deletions.isEmpty == true && later?.next == nil)
            #expect(try await h.source("incident", auditDeletes: false).fetchDeletions(since: nil, after: nil, pageSize: 3) == nil)
        }
    }

    @Test("rule 6: the id sweep lists every sys_id ascending, through short pages, ending only on an empty page")
    func idSweep() async throws {
        try await withServiceNow { h in
            var ids: [String] = []
            for i in 0..<23 { ids.append(try h.emulator.insert("incident", [:], at: at(i))) }
            var listed: [String] = []
            var token: String?
            var calls = 0
            repeat {
                let page = try await h.source("incident").fetchIDs(after: token, pageSize: 5)
                listed += page.ids
                token = page.next
                calls += 1
            } while token != nil && calls < 50
            #expect(listed == ids.sorted())
            #expect(calls == 6)
            #expect(h.emulator.tableRequestLog.allSatisfy { $0.query["sysparm_fields"] == "sys_id" })
            #expect(h.emulator.tableRequestLog.last?.query["sysparm_query"] == "sys_id>\(ids.sorted().last ?? "")^ORDERBYsys_id")
        }
    }
}

@Suite("ServiceNow provider factory")
struct ServiceNowFactoryTests {
    @Test("a servicenow connection from the config builds one source per table, sharing one client")
    func buildsFromConfig() async throws {
        let emulator = try ServiceNowEmulator()
        defer { emulator.stop() }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        try emulator.insert("incident", ["number": "INC1", "state": "2"], at: at())
        let json = """
        {"connections": [{"id": "acme-snow", "provider": "servicenow", "base_url": "\(emulator.baseURL)",
          "auth": {"type": "oauth2", "grant": "password", "client_id": "deltahook",
                   "client_secret": {"env": "SNOW_CLIENT_SECRET"}, "username": "admin",
                   "password": {"env": "SNOW_PASSWORD"}},
          "objects": [{"name": "incident", "model": "ticket", "ignore_fields": ["impact"], "fields": ["number", "state"]},
                      {"name": "u_asset", "delete_feed": "none"}]}]}
        """
        let config = try ConfigLoader.load(data: Data(json.utf8), environment: ConfigEnvironment(
            variables: ["SNOW_CLIENT_SECRET": "client-secret", "SNOW_PASSWORD": "admin-password"]))
        let connection = try #require(config.connection(id: "acme-snow"))
        let sources = try ProviderFactory.makeSources(for: connection, transport: transport,
                                                      logger: Logger(sink: ServiceNowLogSink()))
        #expect(sources.map(\.descriptor.object) == ["incident", "u_asset"])
        #expect(sources.map(\.descriptor.model) == ["ticket", "record"])
        #expect(sources[0].descriptor.volatileFields.isSuperset(of: ["impact", "sys_mod_count", "sys_updated_on"]))
        #expect(sources[0].descriptor.provider == "servicenow")
        let page = try await sources[0].fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10))
        #expect(page.records.first?.record["status"] == "in_progress")
        #expect(try await sources[1].fetchDeletions(since: nil, after: nil, pageSize: 10) == nil)
        #expect(emulator.issuedGrants == ["password"])
        #expect(emulator.rejectedRequests.isEmpty)
    }
}

@Suite("ServiceNow adapter configuration errors")
struct ServiceNowConfigurationErrorTests {
    @Test("a base_url with a path is a configuration error naming base_url")
    func baseURLWithPath() async throws {
        let emulator = try ServiceNowEmulator()
        defer { emulator.stop() }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let http = ProviderHTTP(transport: transport, connection: "acme-snow")
        let base = emulator.baseURL + "/nav_to.do"
        let client = ServiceNowClient(http: http, baseURL: base,
                                      authenticator: try ServiceNowAuthenticator(auth: basicAuth, baseURL: base, http: http))
        let error = await expectProviderError {
            try await ServiceNowSource(client: client, table: "incident", model: .ticket)
                .fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 1))
        }
        guard case .configuration(let message)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(message.contains("base_url"))
    }

    @Test("auth types ServiceNow does not speak, and grants missing their credentials, fail at construction")
    func unsupportedAuth() throws {
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let http = ProviderHTTP(transport: transport, connection: "acme-snow")
        #expect(throws: ProviderError.self) {
            _ = try ServiceNowAuthenticator(auth: .token(secret("x")), baseURL: "https://acme.service-now.com", http: http)
        }
        #expect(throws: ProviderError.self) {
            _ = try ServiceNowAuthenticator(auth: .oauth2(grant: .refreshToken, clientID: "c", clientSecret: secret("s"),
                                                          username: nil, password: nil, refreshToken: nil),
                                            baseURL: "https://acme.service-now.com", http: http)
        }
    }
}
