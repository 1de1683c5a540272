// The GitHub adapter against the GitHub emulator over real HTTP (libcurl ↔ loopback server).
// Each test names the docs/DESIGN.md §2 rule it proves.
import Core
import Crypto
import Emulators
import Foundation
import HTTPClient
@testable import Providers
import Testing

/// An emulator, a curl client and a source; always torn down.
struct GitHubFixture {
    let emulator: GitHubEmulator
    let transport: CurlHTTPClient
    let client: GitHubClient

    init(options: GitHubEmulator.Options = .init(), clock: EmulatorClock = EmulatorClock(),
         credentials: GitHubCredentials = .token("ghp_emulatortoken")) throws {
        emulator = try GitHubEmulator(options: options, clock: clock)
        transport = try CurlHTTPClient()
        client = GitHubClient(connection: "octo", baseURL: emulator.baseURL, credentials: credentials,
                              transport: transport, clock: { clock.now() })
    }

    func source(pullRequests: Bool = false, model: String = "ticket") throws -> GitHubIssuesSource {
        try GitHubIssuesSource(client: client, object: "issues", owner: emulator.options.owner,
                               repository: emulator.options.repository, model: model,
                               includePullRequests: pullRequests)
    }

    func stop() {
        emulator.stop()
        transport.shutdown()
    }

    /// Reads a whole scan from `lowerBound`, page by page, as the engine does.
    static func scan(_ source: GitHubIssuesSource, from lowerBound: Date?, pageSize: Int, maxPages: Int = 50)
        async throws -> (records: [SourceRecord], pages: Int)
    {
        var records: [SourceRecord] = []
        var after: ScanPosition?
        var pages = 0
        var positions = Set<ScanPosition>()
        repeat {
            let page = try await source.fetchDelta(DeltaRequest(lowerBound: lowerBound, after: after, pageSize: pageSize))
            records += page.records
            pages += 1
            after = page.next
            if let next = page.next {
                #expect(positions.insert(next).inserted, "a scan position repeated: the scan would stall")
            }
        } while after != nil && pages < maxPages
        return (records, pages)
    }
}

let t0 = Date(timeIntervalSince1970: 1_790_000_000)

@Suite("GitHub adapter against the emulator")
struct GitHubSourceTests {
    @Test("Rule 4: a page with a Link next continues, the last page (no next) ends the scan; PRs are flagged")
    func linkPaginationAndPullRequests() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        for i in 0..<4 { f.emulator.createIssue(title: "issue \(i)", labels: ["bug"], assignees: ["mona"], at: t0 + Double(i)) }
        let pr = f.emulator.createIssue(title: "a PR", pullRequest: true, at: t0 + 10)

        let first = try await f.source().fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 2))
        #expect(first.records.count == 2)
        #expect(first.next != nil)
        #expect(first.validator == nil, "a full first page's ETag must not be used as a validator")
        #expect(first.records[0].record["labels"] == .array(["bug"]))
        #expect(first.records[0].record["assignees"] == .array(["mona"]))
        #expect(first.records[0].record["status"] == "open")
        #expect(first.records[0].record["closed_at"] == .null)
        #expect(first.records[0].record["url"] == .string("https://github.com/octo-org/hello/issues/1"))

        let (records, pages) = try await GitHubFixture.scan(f.source(), from: nil, pageSize: 2)
        #expect(Set(records.map(\.id)).count == 5)
        #expect(pages >= 3)
        let prRecord = try #require(records.first { $0.id == String(pr.id) })
        #expect(prRecord.emits == false)
        #expect(prRecord.record["is_pull_request"] == true)
        #expect(records.filter { $0.id != String(pr.id) }.allSatisfy { $0.emits && $0.record["is_pull_request"] == false })

        let withPRs = try await GitHubFixture.scan(f.source(pullRequests: true), from: nil, pageSize: 100)
        #expect(withPRs.records.allSatisfy { $0.emits })
        #expect(withPRs.pages == 1)
    }

    @Test("The emulator's Link header has GitHub's form: /repositories/{id}, next+last on page 1, prev+first later")
    func emulatorLinkHeaderForm() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        for i in 0..<5 { f.emulator.createIssue(title: "i\(i)", at: t0 + Double(i)) }
        let base = f.emulator.baseURL + "/repos/octo-org/hello/issues?state=all&sort=updated&direction=asc&per_page=2"
        let headers = [(name: "User-Agent", value: "t"), (name: "Authorization", value: "Bearer ghp_emulatortoken")]
        let page1 = try await f.transport.send(HTTPRequest(url: base, headers: headers))
        let link1 = try #require(page1.headers["link"])
        let rels1 = LinkHeader.parse(link1)
        #expect(Set(rels1.keys) == ["next", "last"])
        #expect(rels1["next"]?.contains("/repositories/1296269/issues?") == true)
        #expect(rels1["next"]?.hasSuffix("&page=2") == true)
        #expect(link1.contains(">; rel=\"next\", <"))
        #expect(page1.headers["etag"]?.hasPrefix("W/\"") == true)
        let page3 = try await f.transport.send(HTTPRequest(url: base + "&page=3", headers: headers))
        #expect(Set(LinkHeader.parse(page3.headers["link"] ?? "").keys) == ["prev", "first"])
        let all = try await f.transport.send(HTTPRequest(url: base.replacingOccurrences(of: "per_page=2", with: "per_page=100"),
                                                         headers: headers))
        #expect(all.headers["link"] == nil)
        let rows = try JSONValue.parse(all.body).arrayValue ?? []
        #expect(rows.first?["pull_request"] == nil, "issue rows have no pull_request key at all")
        #expect(rows.first?["updated_at"]?.stringValue?.count == 20)
    }

    @Test("Rule 3: 250 issues in one second over 3 pages are walked with page=N inside the run, each exactly once")
    func sameTimestampRun() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        f.emulator.createIssue(title: "earlier", at: t0 - 5)
        for i in 0..<250 { f.emulator.createIssue(title: "run \(i)", at: t0) }
        f.emulator.createIssue(title: "later", at: t0 + 7)
        let (records, _) = try await GitHubFixture.scan(f.source(), from: nil, pageSize: 100)
        let ids = records.map(\.id)
        #expect(ids.count == 252, "every record exactly once (re-read rows are filtered by the seen hint)")
        #expect(Set(ids).count == 252)
        let pagesUsed = f.emulator.listRequests.compactMap { $0.query["page"] }
        #expect(pagesUsed.contains("2") && pagesUsed.contains("3"))
        // page=N only with since equal to the run's timestamp.
        for request in f.emulator.listRequests where request.query["page"] != nil {
            #expect(request.query["since"] == Timestamps.rfc3339(t0))
        }
    }

    @Test("Rule 3: rows leaving a same-second run between page requests do not make the walk skip a row of the run")
    func runShiftIsCaught() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        for i in 0..<250 { f.emulator.createIssue(title: "run \(i)", at: t0) }
        // After the second request (page 1 from since=t0), three rows already read leave the run: every later
        // row moves back three places. Fixed 100-row pages would now skip rows 101–103 of the run.
        f.emulator.queueFaults([.none, .none, .hook { emulator in
            for number: Int64 in [5, 6, 7] { emulator.updateIssue(number, at: t0 + 100) { $0.title = "moved" } }
        }])
        let (records, _) = try await GitHubFixture.scan(f.source(), from: nil, pageSize: 100)
        let all = Set(f.emulator.issues.map { String($0.id) })
        #expect(all.subtracting(records.map(\.id)).sorted() == [], "no row of the run is skipped")
        #expect(records.filter { $0.record["title"] == "moved" }.count == 3)
        // Windows inside the run overlap: the page after the first full run page starts before row 100.
        let windows = f.emulator.listRequests.compactMap { r -> (Int, Int)? in
            guard let page = r.query["page"].flatMap({ Int($0) }), let size = r.query["per_page"].flatMap({ Int($0) })
            else { return nil }
            return ((page - 1) * size, page * size)
        }
        #expect(windows.first.map { $0.0 < 100 && $0.1 > 100 } == true)
    }

    @Test("Rule 3: a window past the end of a shrunken run restarts after the run's second, not from its newest row")
    func windowPastTheRunRestartsAfterTheRun() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        // A run of exactly one full page at t0, then 30 issues one second apart.
        for i in 0..<100 { f.emulator.createIssue(title: "run \(i)", at: t0) }
        for i in 1...30 { f.emulator.createIssue(title: "after \(i)", at: t0 + Double(i)) }
        // Page 1 from since=t0 read the whole run. Before the next window ([90, 180) with per_page 90), 20 issues of
        // the run are updated: the run now ends at row 80, so the window begins at t0+11 and t0+1…t0+10 sit
        // before it. Restarting from the window's newest row would skip those ten.
        f.emulator.queueFaults([.none, .none, .hook { emulator in
            for number: Int64 in 1...20 { emulator.updateIssue(number, at: t0 + 100) { $0.title = "moved" } }
        }])
        let (records, _) = try await GitHubFixture.scan(f.source(), from: nil, pageSize: 100)
        let all = Set(f.emulator.issues.map { String($0.id) })
        let missing = all.subtracting(records.map(\.id))
        #expect(missing.isEmpty, "never read: \(f.emulator.issues.filter { missing.contains(String($0.id)) }.map(\.title))")
        // The moved rows were in the window and are read again from t0+1 (the engine's content hash drops re-reads).
        #expect(Set(records.filter { $0.record["title"] == "moved" }.map(\.id)).count == 20)
        // After the window, page 1 again from the second after the run.
        let windowIndex = f.emulator.listRequests.firstIndex { $0.query["page"] != nil }
        let afterWindow = windowIndex.map { f.emulator.listRequests.dropFirst($0 + 1).first }
        #expect(afterWindow??.query["since"] == Timestamps.rfc3339(t0 + 1))
        #expect(afterWindow??.query["page"] == nil)
    }

    @Test("The next window inside a run overlaps the rows read and always moves forward")
    func windowArithmetic() {
        for maximum in [1, 2, 3, 10, 50, 99, 100] {
            for end in 1...450 {
                let (page, size) = GitHubIssuesSource.nextWindow(after: end, maximum: maximum)
                let start = (page - 1) * size
                #expect(size >= 1 && size <= maximum)
                #expect(page * size > end, "progress past row \(end) with maximum \(maximum)")
                if maximum >= 10 { #expect(end - start >= min(end, maximum / 10), "overlap at \(end), maximum \(maximum)") }
            }
        }
    }

    @Test("Rule 3: after a mixed page the walk asks page 1 again from the newest updated_at seen")
    func sinceWalk() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        for i in 0..<7 { f.emulator.createIssue(title: "i\(i)", at: t0 + Double(i / 2)) }
        let (records, _) = try await GitHubFixture.scan(f.source(), from: t0, pageSize: 3)
        #expect(records.count == 7)
        #expect(Set(records.map(\.id)).count == 7)
        let requests = f.emulator.listRequests
        #expect(requests.allSatisfy { $0.query["page"] == nil }, "no page numbers outside a same-second run")
        #expect(requests.first?.query["since"] == Timestamps.rfc3339(t0))
        #expect(requests.dropFirst().first?.query["since"] == Timestamps.rfc3339(t0 + 1))
    }

    @Test("Rule 3: an update landing between two pages is read later in the same scan")
    func updateBetweenPages() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        for i in 0..<6 { f.emulator.createIssue(title: "i\(i)", at: t0 + Double(i)) }
        f.emulator.queueFaults([.none, .hook { emulator in
            emulator.updateIssue(1, at: t0 + 100) { $0.title = "changed mid-scan" }
        }])
        let (records, _) = try await GitHubFixture.scan(f.source(), from: nil, pageSize: 2)
        let changed = records.filter { $0.record["title"] == "changed mid-scan" }
        #expect(changed.count == 1)
        #expect(changed.first?.updatedAt == t0 + 100)
        #expect(Set(records.map(\.id)).count == 6)
    }

    @Test("Rule 9: an idle poll's first page with If-None-Match gets 304 and costs no quota")
    func conditionalRequest() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        f.emulator.createIssue(title: "one", at: t0)
        let source = try f.source()
        let first = try await source.fetchDelta(DeltaRequest(lowerBound: t0, after: nil, pageSize: 100))
        let validator = try #require(first.validator)
        #expect(validator.hasPrefix("W/\""))
        let before = f.emulator.rateLimitRemaining
        let idle = try await source.fetchDelta(DeltaRequest(lowerBound: t0, after: nil, pageSize: 100,
                                                            ifNoneMatch: validator))
        #expect(idle.notModified)
        #expect(idle.records.isEmpty && idle.next == nil)
        #expect(f.emulator.rateLimitRemaining == before, "a 304 is not charged")
        #expect(f.emulator.listRequests.last?.ifNoneMatch == validator)
        #expect(f.emulator.listRequests.last?.status == 304)

        f.emulator.updateIssue(1, at: t0 + 1) { $0.title = "two" }
        let changed = try await source.fetchDelta(DeltaRequest(lowerBound: t0, after: nil, pageSize: 100,
                                                               ifNoneMatch: validator))
        #expect(!changed.notModified)
        #expect(changed.records.first?.record["title"] == "two")
        #expect(f.emulator.rateLimitRemaining == before - 1)
    }

    @Test("Rule 9: primary limit at remaining 0 → wait until x-ratelimit-reset (403 and 429)")
    func primaryRateLimit() async throws {
        for status in [403, 429] {
            let clock = EmulatorClock(frozenAt: Date())
            let f = try GitHubFixture(options: .init(rateLimitStatus: status), clock: clock)
            defer { f.stop() }
            f.emulator.exhaustRateLimit(until: clock.now() + 120)
            await #expect {
                try await f.source().fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10))
            } throws: { error in
                guard case .rateLimited(let wait, let message)? = error as? ProviderError else { return false }
                return wait >= .seconds(119) && wait <= .seconds(123) && message.contains("primary")
            }
        }
    }

    @Test("Rule 9: secondary limits honour retry-after exactly, else wait ≥ 60 s growing; other 403s are permission errors")
    func secondaryRateLimitAndPermission() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        let source = try f.source()
        let request = DeltaRequest(lowerBound: nil, after: nil, pageSize: 10)
        f.emulator.queueFaults([.secondaryRateLimit(status: 403, retryAfter: 30), .secondaryRateLimit(status: 429, retryAfter: nil),
                                .secondaryRateLimit(status: 403, retryAfter: nil), .status(403)])
        var waits: [Duration] = []
        for _ in 0..<3 {
            do {
                _ = try await source.fetchDelta(request)
                Issue.record("expected a rate limit")
            } catch ProviderError.rateLimited(let wait, _) {
                waits.append(wait)
            }
        }
        #expect(waits.first == .seconds(30))
        #expect(waits[1] >= .seconds(60))
        #expect(waits[2] > waits[1], "consecutive header-less secondary limits back off exponentially")
        await #expect {
            try await source.fetchDelta(request)
        } throws: { error in
            if case .permission? = error as? ProviderError { return true }
            return false
        }
    }

    @Test("Rule 11: a PAT refused with 401 is an authentication error with a hint")
    func patUnauthorized() async throws {
        let f = try GitHubFixture(credentials: .token("ghp_wrong"))
        defer { f.stop() }
        await #expect {
            try await f.source().fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10))
        } throws: { error in
            guard case .authentication(let message, let hint)? = error as? ProviderError else { return false }
            return message.contains("Bad credentials") && hint.contains("auth.token") && !message.contains("ghp_wrong")
        }
        #expect(f.emulator.listRequests.count == 1, "no retry with a PAT")
    }

    @Test("Rule 11: App auth mints a token from a JWT the emulator verifies, caches it and refreshes it before expiry")
    func appTokenMintAndRefresh() async throws {
        let key = try RSAKey.generate()
        let clock = EmulatorClock(frozenAt: Date())
        let options = GitHubEmulator.Options(app: .init(appID: "12345", installationID: "777",
                                                        appPublicKey: try RSAKey.publicKey(pem: key.publicKeyPEM())),
                                             tokenLifetime: 600)
        let f = try GitHubFixture(options: options, clock: clock,
                                  credentials: .app(appID: "12345", installationID: "777", privateKey: key))
        defer { f.stop() }
        f.emulator.createIssue(title: "x", at: clock.now())
        let source = try f.source()
        let request = DeltaRequest(lowerBound: nil, after: nil, pageSize: 10)
        _ = try await source.fetchDelta(request)
        _ = try await source.fetchDelta(request)
        #expect(f.emulator.mintedTokens == 1, "the installation token is cached")
        #expect(f.emulator.listRequests.allSatisfy { $0.authorization?.hasPrefix("Bearer ghs_") == true })
        clock.advance(by: 200)
        _ = try await source.fetchDelta(request)
        #expect(f.emulator.mintedTokens == 1)
        clock.advance(by: 150) // 350 s: within the refresh margin (min(5 min, half the lifetime)) of expiry
        _ = try await source.fetchDelta(request)
        #expect(f.emulator.mintedTokens == 2, "refreshed before expires_at")
        #expect(f.emulator.listRequests.allSatisfy { $0.status == 200 })
    }

    @Test("Rule 11: a 401 with App auth re-mints once; a second 401 is an authentication error")
    func appRefreshOnceThenFail() async throws {
        let key = try RSAKey.generate()
        let options = GitHubEmulator.Options(app: .init(appID: "12345", installationID: "777",
                                                        appPublicKey: try RSAKey.publicKey(pem: key.publicKeyPEM())))
        let f = try GitHubFixture(options: options,
                                  credentials: .app(appID: "12345", installationID: "777", privateKey: key))
        defer { f.stop() }
        let source = try f.source()
        let request = DeltaRequest(lowerBound: nil, after: nil, pageSize: 10)
        _ = try await source.fetchDelta(request)
        f.emulator.revokeInstallationTokens()
        _ = try await source.fetchDelta(request) // 401 → re-mint → success
        #expect(f.emulator.mintedTokens == 2)

        f.emulator.queueFaults([.status(401), .status(401)])
        await #expect {
            try await source.fetchDelta(request)
        } throws: { error in
            if case .authentication? = error as? ProviderError { return true }
            return false
        }
        #expect(f.emulator.mintedTokens == 3, "exactly one refresh per request")

        // A JWT signed with the wrong key is refused at the token endpoint.
        let wrong = GitHubClient(connection: "octo", baseURL: f.emulator.baseURL,
                                 credentials: .app(appID: "12345", installationID: "777", privateKey: try RSAKey.generate()),
                                 transport: f.transport)
        await #expect {
            try await GitHubIssuesSource(client: wrong, object: "issues", owner: "octo-org", repository: "hello")
                .fetchDelta(request)
        } throws: { error in
            guard case .authentication(let message, _)? = error as? ProviderError else { return false }
            return message.contains("JWT")
        }
    }

    @Test("500 and malformed pages fail with the status or the JSON path")
    func serverErrorsAndMalformed() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        f.emulator.createIssue(title: "x", at: t0)
        let source = try f.source()
        let request = DeltaRequest(lowerBound: nil, after: nil, pageSize: 10)
        f.emulator.queueFaults([.status(500), .malformedJSON, .missingField])
        await #expect {
            try await source.fetchDelta(request)
        } throws: { error in
            guard case .http(500, _)? = error as? ProviderError else { return false }
            return true
        }
        await #expect {
            try await source.fetchDelta(request)
        } throws: { error in
            guard case .malformed(let path, _)? = error as? ProviderError else { return false }
            return path == "$"
        }
        // Rule 16: a row without updated_at is rejected on its own (naming the field), not the whole page.
        let rejected = try await source.fetchDelta(request)
        #expect(rejected.records.isEmpty && rejected.rejected.first?.reason.hasPrefix("$[0].updated_at") == true)
        let ok = try await source.fetchDelta(request)
        #expect(ok.records.count == 1)
    }

    /// Lists every id through the source, as the reconciler does.
    static func listIDs(_ source: GitHubIssuesSource, pageSize: Int) async throws -> (ids: [String], pages: Int) {
        var ids: [String] = []
        var token: String?
        var pages = 0
        repeat {
            let page = try await source.fetchIDs(after: token, pageSize: pageSize)
            ids += page.ids
            token = page.next
            pages += 1
        } while token != nil && pages < 50
        return (ids, pages)
    }

    @Test("Rule 6: the id listing reaches the end (no next link), lists pull requests, each id once, even in a same-second run")
    func idListing() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        var expected = Set<String>()
        for i in 0..<5 { expected.insert(String(f.emulator.createIssue(title: "i\(i)", pullRequest: i == 2, at: t0).id)) }
        for i in 0..<3 { expected.insert(String(f.emulator.createIssue(title: "j\(i)", at: t0 + Double(i + 1)).id)) }
        let source = try f.source()
        let (ids, pages) = try await Self.listIDs(source, pageSize: 2)
        #expect(Set(ids) == expected)
        #expect(ids.count == 8)
        #expect(pages >= 4)
        #expect(try await source.fetchDeletions(since: nil, after: nil, pageSize: 10) == nil)
        await #expect(throws: ProviderError.self) {
            try await source.fetchIDs(after: "not a token", pageSize: 2)
        }
    }

    @Test("Rule 6: an issue deleted during the sweep does not hide a live id (which would become a false delete)")
    func idListingWithDeleteDuringSweep() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        for i in 0..<6 { f.emulator.createIssue(title: "i\(i)", at: t0 + Double(i)) }
        let live = Set(f.emulator.issues.filter { $0.number != 1 }.map { String($0.id) })
        // Issue #1 was on the first page; it disappears before the second request.
        f.emulator.queueFaults([.none, .hook { $0.delete(1) }])
        let (ids, _) = try await Self.listIDs(try f.source(), pageSize: 2)
        #expect(live.isSubset(of: Set(ids)), "page offsets would have skipped issue #3 here")
    }

    @Test("Rule 5: the ticket model maps GitHub fields; updated_at and bookkeeping counters are volatile")
    func ticketModel() async throws {
        let f = try GitHubFixture()
        defer { f.stop() }
        f.emulator.createIssue(title: "t", body: "b", labels: ["a", "b"], assignees: ["x", "y"], at: t0)
        f.emulator.close(1, at: t0 + 5)
        let page = try await f.source().fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10))
        let record = try #require(page.records.first)
        #expect(record.record == [
            "id": .string(record.id), "number": 1, "title": "t", "status": "closed", "body": "b",
            "assignees": ["x", "y"], "labels": ["a", "b"], "url": "https://github.com/octo-org/hello/issues/1",
            "created_at": .string(Timestamps.rfc3339(t0)), "updated_at": .string(Timestamps.rfc3339(t0 + 5)),
            "closed_at": .string(Timestamps.rfc3339(t0 + 5)), "is_pull_request": false,
        ])
        #expect(record.updatedAt == t0 + 5)
        let descriptor = try f.source().descriptor
        #expect(descriptor.volatileFields.isSuperset(of: ["updated_at", "reactions", "comments"]))
        #expect(descriptor.partition == "octo-org/hello")
        let raw = try f.source(model: "record")
        let rawPage = try await raw.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10))
        #expect(rawPage.records.first?.record == rawPage.records.first?.raw)
        #expect(throws: ProviderError.self) {
            try GitHubIssuesSource(client: f.client, object: "issues", owner: "o", repository: "r", model: "invoice")
        }
    }
}
