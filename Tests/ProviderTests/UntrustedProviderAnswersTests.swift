// Provider answers are untrusted input (issue 10; docs/DESIGN.md §2 rules 11, 12, 13, 15, 16, 18), per provider:
// ServiceNow, GitHub and NetSuite adapters against hostile answers. Shared helpers and the parser and generic
// adapter suites are in UntrustedAnswersTests.swift.
import Config
import Core
import Crypto
import Emulators
import Foundation
import HTTPClient
import HTTPServer
import Logging
@testable import Providers
import Store
import Synchronization
import Testing
import TestSupport


@Suite("Untrusted provider answers: ServiceNow")
struct UntrustedServiceNowTests {
    static func sysID(_ digit: Character) -> String { String(repeating: digit, count: 32) }

    @Test("rule 15: a sys_id with ^OR at a sweep page end never reaches a query; every valid id is listed")
    func hostileSysIDInSweep() async throws {
        try await withServiceNow { h in
            for digit in ["1", "2", "4", "5"] as [Character] {
                try h.emulator.insert("incident", ["number": "INC\(digit)"], at: at(), sysID: Self.sysID(digit))
            }
            try h.emulator.insert("incident", ["number": "evil"], at: at(), sysID: "3^ORsys_id>0")
            try h.emulator.insert("incident", ["number": "evil2"], at: at(), sysID: "6^NQsys_id>0")
            let source = h.source("incident")
            var ids: [String] = []
            var token: String?
            for _ in 0..<20 {
                let page = try await source.fetchIDs(after: token, pageSize: 3)
                ids += page.ids
                guard let next = page.next else { break }
                token = next
            }
            #expect(ids == ["1", "2", "4", "5"].map { Self.sysID(Character($0)) })
            let queries = h.emulator.tableRequestLog.compactMap { $0.query["sysparm_query"] }
            #expect(queries.allSatisfy { !$0.contains("3^OR") && !$0.contains("6^NQ") && !$0.contains("^ORsys_id") },
                    "\(queries)")
            // A token that is not a sys_id is refused before any request.
            let before = h.emulator.tableRequestLog.count
            await #expect(throws: ProviderError.self) { try await source.fetchIDs(after: "3^ORsys_id>0", pageSize: 3) }
            #expect(h.emulator.tableRequestLog.count == before)
        }
    }

    @Test("rule 16: hostile or undated rows are rejected per record; the scan ends even when the newest row is bad")
    func hostileRowsInDelta() async throws {
        try await withServiceNow { h in
            for (i, digit) in (["1", "2", "4"] as [Character]).enumerated() {
                try h.emulator.insert("incident", ["number": "INC\(digit)"], at: at(i), sysID: Self.sysID(digit))
            }
            try h.emulator.insert("incident", ["number": "future"], at: at(5), sysID: Self.sysID("7"))
            try h.emulator.insert("incident", ["number": "evil"], at: at(1), sysID: "abc^ORsys_id>0")
            try h.emulator.insert("incident", ["number": "newest-evil"], at: at(9), sysID: "zz^NQactive=true")
            let (records, pages) = try await scanAll(h.source("incident"), pageSize: 2)
            #expect(records.map(\.id) == ["1", "2", "4", "7"].map { Self.sysID(Character($0)) })
            let rejected = pages.flatMap(\.rejected)
            #expect(Set(rejected.compactMap(\.id)) == ["abc^ORsys_id>0", "zz^NQactive=true"])
            #expect(rejected.allSatisfy { $0.reason.contains(".sys_id") })
            let queries = h.emulator.tableRequestLog.compactMap { $0.query["sysparm_query"] }
            #expect(queries.allSatisfy { !$0.contains("abc^") && !$0.contains("zz^") })
            // A stored position with an unchecked id degrades to the inclusive bound on its second.
            let query = ServiceNowQuery.delta(field: "sys_updated_on", lowerBound: nil,
                                              after: ScanPosition(timestamp: at(1), recordID: "x^NQactive=true"))
            #expect(query == "sys_updated_on>=2026-11-29 06:00:01^ORDERBYsys_updated_on^ORDERBYsys_id")
        }
    }

    @Test("rule 12: a 429 with Retry-After 99999999999999999999 or X-RateLimit-Reset Int64.max waits max_provider_wait")
    func hostileRateLimitHeaders() async throws {
        try await withServiceNow { h in
            try h.emulator.insert("incident", ["number": "INC1"], at: at())
            let source = h.source("incident")
            let request = DeltaRequest(lowerBound: nil, after: nil, pageSize: 10)
            for fault in [ServiceNowEmulator.Fault.rateLimitedWith(retryAfter: "99999999999999999999", reset: nil),
                          .rateLimitedWith(retryAfter: nil, reset: "9223372036854775807")] {
                h.emulator.failNext(fault)
                let error = await expectProviderError { try await source.fetchDelta(request) }
                guard case .rateLimited(let wait, _)? = error else { Issue.record("got \(String(describing: error))"); continue }
                #expect(wait == .seconds(3600))
            }
            for fault in [ServiceNowEmulator.Fault.rateLimitedWith(retryAfter: "-5", reset: "1000"),
                          .rateLimitedWith(retryAfter: "soon", reset: "1e999")] {
                h.emulator.failNext(fault)
                let error = await expectProviderError { try await source.fetchDelta(request) }
                guard case .rateLimited(let wait, _)? = error else { Issue.record("got \(String(describing: error))"); continue }
                #expect(wait > .zero && wait < .seconds(60), "absent: the normal backoff")
            }
            #expect(try await source.fetchDelta(request).records.count == 1)
        }
    }

    @Test("rule 11: a rotated refresh token is persisted, used after a restart, and never logged")
    func rotatedRefreshTokenSurvivesRestart() async throws {
        var options = ServiceNowEmulator.Options()
        options.rotateRefreshTokens = true
        let emulator = try ServiceNowEmulator(options: options)
        defer { emulator.stop() }
        try emulator.insert("incident", ["number": "INC1"], at: at())
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore(path: directory.file("state.db"))
        let sink = MemoryLogSink()
        let logger = Logger(level: .debug, sink: sink)
        let auth = AuthConfig.oauth2(grant: .refreshToken, clientID: "deltahook", clientSecret: secret("client-secret"),
                                     username: nil, password: nil, refreshToken: secret("configured-refresh-token"))
        func source(_ state: (any AuthStateStore)?) throws -> ServiceNowSource {
            let http = ProviderHTTP(transport: transport, connection: "acme-snow", logger: logger)
            let authenticator = try ServiceNowAuthenticator(auth: auth, baseURL: emulator.baseURL, http: http,
                                                            authState: state)
            return ServiceNowSource(client: ServiceNowClient(http: http, baseURL: emulator.baseURL,
                                                             authenticator: authenticator), table: "incident", model: .record)
        }
        let request = DeltaRequest(lowerBound: nil, after: nil, pageSize: 10)
        // First process: the configured token is exchanged; the instance rotates it (and revokes the old one).
        #expect(try await source(store).fetchDelta(request).records.count == 1)
        let stored = try #require(try await store.loadAuthState(connection: "acme-snow",
                                                                key: ServiceNowAuthenticator.refreshTokenKey))
        // Issue 12 item 1: kept sealed, so the store file alone does not reveal it.
        let rotated = try #require(emulator.issuedTokens.last)
        #expect(rotated != "configured-refresh-token")
        #expect(!stored.contains(rotated) && stored.contains("\"sealed\""))
        // "Restart": a new authenticator on the same store uses the rotated token and works.
        #expect(try await source(store).fetchDelta(request).records.count == 1)
        // Without the store, the configured (revoked) token fails: the persistence is what made it work.
        await #expect(throws: ProviderError.self) { try await source(nil).fetchDelta(request) }
        let logged = sink.records.map { "\($0.message) \($0.fields)" }.joined(separator: "\n")
        #expect(!logged.contains(rotated) && !stored.isEmpty)
    }

    @Test("rule 11: expires_in 0, negative or missing means refresh in 25 minutes, not before every request")
    func oddExpiresIn() async throws {
        for advertised in ["0", "-5", "", "\"soon\""] {
            var options = ServiceNowEmulator.Options()
            options.advertisedExpiresIn = advertised
            let auth = AuthConfig.oauth2(grant: .refreshToken, clientID: "deltahook", clientSecret: secret("client-secret"),
                                         username: nil, password: nil, refreshToken: secret("configured-refresh-token"))
            let clock = TestClock(Date(timeIntervalSince1970: 1_795_932_000))
            try await withServiceNow(auth: auth, options: options, clock: clock) { h in
                try h.emulator.insert("incident", ["number": "INC1"], at: at())
                let source = h.source("incident")
                for _ in 0..<3 { _ = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 5)) }
                #expect(await h.client.authenticator.tokenRequests == 1, "expires_in \(advertised)")
                clock.advance(23 * 60) // refreshed a minute early (ServiceNowAuthenticator's margin)
                _ = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 5))
                #expect(await h.client.authenticator.tokenRequests == 1)
                clock.advance(2 * 60)
                _ = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 5))
                #expect(await h.client.authenticator.tokenRequests == 2, "refreshed after 25 minutes")
            }
        }
    }
}

@Suite("Untrusted provider answers: GitHub and NetSuite")
struct UntrustedGitHubNetSuiteTests {
    @Test("rule 12: GitHub 403/429 with x-ratelimit-reset Int64.max or Retry-After 20 digits waits max_provider_wait")
    func gitHubHostileRateLimits() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        f.emulator.createIssue(title: "x", at: Date(timeIntervalSince1970: 1_795_932_000))
        let source = try f.source()
        let request = DeltaRequest(lowerBound: nil, after: nil, pageSize: 10)
        f.emulator.queueFaults([
            .rateLimitHeaders(status: 403, remaining: "0", reset: "9223372036854775807", retryAfter: nil),
            .rateLimitHeaders(status: 429, remaining: "0", reset: "9223372036854775807", retryAfter: nil),
            .rateLimitHeaders(status: 429, remaining: nil, reset: nil, retryAfter: "99999999999999999999"),
        ])
        for _ in 0..<3 {
            let error = await expectProviderError { try await source.fetchDelta(request) }
            guard case .rateLimited(let wait, _)? = error else { Issue.record("got \(String(describing: error))"); continue }
            #expect(wait == .seconds(3600))
        }
        #expect(try await source.fetchDelta(request).records.count == 1)
    }

    @Test("rule 16: a GitHub poison issue (id null, id 1e999) is rejected alone, even as the newest row")
    func gitHubPoisonRows() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        let t0 = Date(timeIntervalSince1970: 1_795_932_000)
        var numbers: [Int64] = []
        for i in 0..<6 { numbers.append(f.emulator.createIssue(title: "i\(i)", at: t0.addingTimeInterval(Double(i))).number) }
        f.emulator.poisonIssue(numbers[2], rawJSON: GitHubEmulator.poisonRow(idText: "1e999", number: numbers[2],
                                                                              updatedAt: t0.addingTimeInterval(2)))
        f.emulator.poisonIssue(numbers[5], rawJSON: GitHubEmulator.poisonRow(idText: "null", number: numbers[5],
                                                                              updatedAt: t0.addingTimeInterval(5)))
        let later = f.emulator.createIssue(title: "2099", at: Date(timeIntervalSince1970: 4_070_908_800))
        let source = try f.source()
        var records: [SourceRecord] = []
        var rejected: [RejectedRecord] = []
        var after: ScanPosition?
        var pages = 0
        while pages < 30 {
            let page = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: after, pageSize: 2))
            pages += 1
            records += page.records
            rejected += page.rejected
            guard let next = page.next else { break }
            after = next
        }
        #expect(pages < 30, "the scan ends")
        #expect(Set(records.map { $0.record["number"]?.int64Value ?? 0 }) == Set([numbers[0], numbers[1], numbers[3],
                                                                                  numbers[4], later.number]))
        #expect(rejected.contains { $0.reason.contains("1e999") || $0.reason.contains("not valid JSON") })
        #expect(rejected.contains { $0.reason.contains("$[") && $0.reason.contains(".id") })
    }

    @Test("rule 12: NetSuite 429 with Retry-After 99999999999999999999 waits max_provider_wait")
    func netSuiteHostileRetryAfter() async throws {
        let f = try NetSuiteFixture()
        defer { f.stop() }
        f.emulator.upsert("customer", id: 1, modifiedAt: Date(timeIntervalSince1970: 1_795_932_000))
        f.emulator.rateLimitNext(retryAfter: "99999999999999999999")
        let error = await expectProviderError {
            try await f.source().fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10))
        }
        guard case .rateLimited(let wait, _)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(wait == .seconds(3600))
    }

    @Test("rule 16: NetSuite rows with a non-integer id, an unreadable time or a 1e999 are rejected per row")
    func netSuiteRejectsPerRow() async throws {
        let alias = NetSuiteSQL.cursorAlias
        let body = #"{"links":[],"count":4,"hasMore":false,"items":[{"links":[],"id":"1","\#(alias)":"2026-10-01 00:00:00"},"#
            + #"{"links":[],"id":"1 OR 1=1","\#(alias)":"2026-10-01 00:00:01"},{"links":[],"id":"3","\#(alias)":"10000-01-01 00:00:00"},"#
            + #"{"links":[],"id":"4","\#(alias)":"2026-10-01 00:00:02","amount":1e999},"#
            + #"{"links":[],"id":"5","\#(alias)":"2026-10-01 00:00:03"}],"offset":0,"totalResults":5}"#
        let transport = ScriptedTransport([HTTPResponse(status: 200, body: Array(body.utf8))])
        let client = NetSuiteClient(connection: "ns", accountID: "1234567_SB1", baseURL: "https://ns.example",
                                    timeZone: losAngeles,
                                    tokens: NetSuiteTokens(consumerKey: "ck", consumerSecret: "cs", tokenID: "tid",
                                                           tokenSecret: "ts"), transport: transport)
        let source = NetSuiteSource(client: client, object: "customer", model: "record", recordType: nil, fields: nil,
                                    usesDeleteFeed: false)
        let page = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10))
        #expect(page.records.map(\.id) == ["1", "5"])
        #expect(page.rejected.map(\.position) == ["$.items[1]", "$.items[2]", "$.items[3]"])
        #expect(page.rejected.map(\.id) == ["1 OR 1=1", "3", "4"])
        #expect(page.next == nil)
    }
}
