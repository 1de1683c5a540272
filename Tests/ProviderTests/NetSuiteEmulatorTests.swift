// The NetSuite adapter against the NetSuite emulator over real HTTP (libcurl ↔ loopback server), and the
// emulator's own wire behaviour. Each test names the docs/DESIGN.md §2 rule it proves.
import Core
import Emulators
import Foundation
import HTTPClient
@testable import Providers
import Testing

/// An emulator, a curl client and a NetSuite client; always torn down.
struct NetSuiteFixture {
    let emulator: NetSuiteEmulator
    let transport: CurlHTTPClient
    let client: NetSuiteClient

    static func fastOptions(maxConcurrency: Int = 5, rowCap: Int = 100_000) -> NetSuiteClient.Options {
        NetSuiteClient.Options(maxConcurrency: maxConcurrency, rateLimitRetries: 50, maxInlineWait: .seconds(5),
                               backoff: RateLimitBackoff(base: .milliseconds(10), cap: .milliseconds(100)),
                               rowCap: rowCap, timeout: .seconds(30))
    }

    init(emulator options: NetSuiteEmulator.Options = .init(timeZone: losAngeles),
         client clientOptions: NetSuiteClient.Options? = nil, tokenSecret: String? = nil) throws {
        emulator = try NetSuiteEmulator(options: options)
        transport = try CurlHTTPClient()
        client = NetSuiteClient(connection: "acme-ns", accountID: options.accountID, baseURL: emulator.baseURL,
                                timeZone: options.timeZone,
                                tokens: NetSuiteTokens(consumerKey: options.consumerKey,
                                                       consumerSecret: options.consumerSecret, tokenID: options.tokenID,
                                                       tokenSecret: tokenSecret ?? options.tokenSecret),
                                transport: transport,
                                options: clientOptions ?? Self.fastOptions(rowCap: options.rowCap))
    }

    func source(_ object: String = "customer", model: String = "record", recordType: String? = nil,
                deleteFeed: Bool = true) -> NetSuiteSource {
        NetSuiteSource(client: client, object: object, model: model, recordType: recordType, fields: nil,
                       usesDeleteFeed: deleteFeed)
    }

    func stop() {
        emulator.stop()
        transport.shutdown()
    }

    /// A signed SuiteQL request, for probing the emulator's wire behaviour directly.
    func post(_ sql: String, limit: Int = 1000, offset: Int = 0, prefer: Bool = true) async throws -> HTTPResponse {
        let url = client.suiteQLURL(limit: limit, offset: offset)
        var headers = [(name: "Authorization", value: try client.authorization(method: "POST", url: url)),
                       (name: "Content-Type", value: "application/json")]
        if prefer { headers.append((name: "Prefer", value: "transient")) }
        let body = JSONValue.object(JSONObject([("q", .string(sql))])).serializedBytes()
        return try await transport.send(HTTPRequest(method: "POST", url: url, headers: headers, body: body))
    }

    /// Reads a whole scan from `lowerBound`, page by page, as the engine does (positions must never repeat).
    static func scan(_ source: NetSuiteSource, from lowerBound: Date?, pageSize: Int, maxPages: Int = 500)
        async throws -> (records: [SourceRecord], pages: Int, warnings: [String])
    {
        var records: [SourceRecord] = []
        var warnings: [String] = []
        var after: ScanPosition?
        var pages = 0
        var positions = Set<ScanPosition>()
        repeat {
            let page = try await source.fetchDelta(DeltaRequest(lowerBound: lowerBound, after: after, pageSize: pageSize))
            records += page.records
            warnings += page.warnings
            pages += 1
            after = page.next
            if let next = page.next {
                #expect(positions.insert(next).inserted, "a scan position repeated: the scan would stall")
            }
        } while after != nil && pages < maxPages
        #expect(after == nil, "the scan ended")
        return (records, pages, warnings)
    }
}

@Suite("NetSuite adapter against the emulator", .serialized)
struct NetSuiteEmulatorTests {
    @Test("Emulator wire shape: strings, lower-case keys, links first, preference dates unless TO_CHAR")
    func wireShape() async throws {
        let f = try NetSuiteFixture()
        defer { f.stop() }
        f.emulator.upsert("customer", id: 7, modifiedAt: utc("2026-11-29 08:05:30"),
                          fields: [("CompanyName", .text("Acme")), ("balance", .number(12))])
        let response = try await f.post("SELECT customer.*, TO_CHAR(customer.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS LastMod FROM customer")
        #expect(response.status == 200)
        let json = try JSONValue.parse(response.body)
        #expect(json.objectValue?.keys == ["links", "count", "hasMore", "items", "offset", "totalResults"])
        #expect(json["count"] == 1 && json["hasMore"] == false && json["totalResults"] == 1 && json["offset"] == 0)
        let item = try #require(json["items"]?.arrayValue?.first?.objectValue)
        #expect(item.keys.first == "links" && item["links"] == .array([]))
        #expect(item["id"] == "7" && item["companyname"] == "Acme" && item["balance"] == "12")
        #expect(item["lastmodifieddate"] == "11/29/2026 12:05 am", "preference format, account zone, no seconds")
        #expect(item["lastmod"] == "2026-11-29 00:05:30", "TO_CHAR in the account zone, alias lower-cased")
        // Mutation API with local readings: the chosen DST reading, and a skipped time refused.
        #expect(try f.emulator.upsert("customer", id: 8, modifiedLocal: "2026-11-01 01:30:00", reading: .later)
            == utc("2026-11-01 09:30:00"))
        #expect(throws: (any Error).self) { try f.emulator.upsert("customer", id: 9, modifiedLocal: "2026-03-08 02:30:00") }
    }

    @Test("Emulator enforces NetSuite's paging rules and rejects SQL outside the subset loudly")
    func emulatorRejections() async throws {
        let f = try NetSuiteFixture(emulator: .init(timeZone: losAngeles, rowCap: 20))
        defer { f.stop() }
        for i in 1...30 { f.emulator.upsert("customer", id: Int64(i), modifiedAt: utc("2026-10-01 00:00:00") + Double(i)) }
        func code(_ r: HTTPResponse) -> String? {
            (try? JSONValue.parse(r.body))?["o:errorDetails"]?.arrayValue?.first?["o:errorCode"]?.stringValue
        }
        let misaligned = try await f.post("SELECT id FROM customer", limit: 10, offset: 5)
        #expect(misaligned.status == 400 && code(misaligned) == "INVALID_PARAMETER")
        #expect(try await f.post("SELECT id FROM customer", limit: 1001).status == 400)
        #expect(try await f.post("SELECT id FROM customer", prefer: false).status == 400)
        let pastCap = try await f.post("SELECT id FROM customer ORDER BY id", limit: 10, offset: 20)
        #expect(pastCap.status == 400 && String(decoding: pastCap.body, as: UTF8.self).contains("at most 20 rows"))
        let capped = try JSONValue.parse(try await f.post("SELECT id FROM customer ORDER BY id", limit: 10, offset: 10).body)
        #expect(capped["totalResults"] == 20 && capped["hasMore"] == false, "rows past the cap are not returned")
        func detail(_ sql: String) async throws -> String {
            let r = try await f.post(sql, limit: 10)
            #expect(r.status == 400, "\(sql)")
            return (try? JSONValue.parse(r.body))?["o:errorDetails"]?.arrayValue?.first?["detail"]?.stringValue ?? ""
        }
        #expect(try await detail("SELECT id FROM customer WHERE lastmodifieddate >= '2026-10-01 00:00:00'").contains("wrap date literals in TO_TIMESTAMP"))
        #expect(try await detail("SELECT id FROM customer GROUP BY id").contains("unsupported syntax"))
        #expect(try await detail("SELECT id FROM nosuchtable").contains("was not found"))
        #expect(try await detail("SELECT id FROM customer WHERE lastmodifieddate >= TO_TIMESTAMP('2026-03-08 02:30:00', 'YYYY-MM-DD HH24:MI:SS')")
            .contains("does not exist in time zone America/Los_Angeles"), "a spring-forward local time does not exist")
        #expect(try await detail("SELECT TO_CHAR(lastmodifieddate, 'DD/MM/YYYY') FROM customer").contains("not supported"))
    }

    @Test("Rule 11: a wrong token secret is 401 INVALID_LOGIN → authentication error with the clock/secret hint")
    func wrongTokenSecret() async throws {
        let f = try NetSuiteFixture(tokenSecret: "not-the-secret")
        defer { f.stop() }
        f.emulator.upsert("customer", id: 1, modifiedAt: utc("2026-10-01 00:00:00"))
        do {
            _ = try await f.source().fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10))
            Issue.record("expected an authentication error")
        } catch ProviderError.authentication(let message, let hint) {
            #expect(message.contains("INVALID_LOGIN") && message.contains("acme-ns"))
            #expect(hint.contains("machine clock") && hint.contains("token/consumer secrets"))
            #expect(!message.contains("not-the-secret") && !hint.contains("not-the-secret"))
        }
        #expect(f.emulator.stats.authenticationFailures == 2, "one retry with a fresh nonce, then give up")
        #expect(f.emulator.stats.succeeded == 0)
    }

    @Test("Rule 3 + 100k cap: rows beyond the cap are read through adaptive time windows, each exactly once")
    func windowSplitting() async throws {
        // Scaled: cap 1,000 with 1,200 rows (the 120,000-row run is NETSUITE_FULL_SCALE, see the e2e suite).
        let f = try NetSuiteFixture(emulator: .init(timeZone: losAngeles, rowCap: 1000))
        defer { f.stop() }
        let start = utc("2026-10-01 07:00:00")
        f.emulator.upsertMany("customer", rows: (1...1200).map { (Int64($0), start + Double($0 / 2), [("name", .text("c\($0)"))]) })
        let (records, _, warnings) = try await NetSuiteFixture.scan(f.source(), from: nil, pageSize: 100)
        #expect(records.count == 1200 && Set(records.map(\.id)).count == 1200, "every row exactly once")
        #expect(warnings.contains { $0.contains("1000-row cap") })
        #expect(f.emulator.stats.queries.contains { $0.contains("customer.lastmodifieddate < TO_TIMESTAMP(") })
        // Order is (lastmodifieddate, id) throughout.
        let keys = records.map { ($0.updatedAt!, Int64($0.id)!) }
        #expect(zip(keys, keys.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test("Rules 1, 3: a scan interrupted inside a window resumes in the same window from the persisted position")
    func resumeInsideWindow() async throws {
        let f = try NetSuiteFixture(emulator: .init(timeZone: losAngeles, rowCap: 1000))
        defer { f.stop() }
        let start = utc("2026-10-01 07:00:00")
        f.emulator.upsertMany("customer", rows: (1...1200).map { (Int64($0), start + Double($0), []) })
        let first = try await f.source().fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 100))
        let position = try #require(first.next)
        let end = try #require(position.hints[NetSuiteSource.windowEndHint])
        // The engine persists the position (JSON) with the page; a restarted daemon decodes it.
        let restored = try JSONDecoder().decode(ScanPosition.self, from: JSONEncoder().encode(position))
        let queriesBefore = f.emulator.stats.queries.count
        var records = first.records
        var after: ScanPosition? = restored
        var pages = 0
        while let current = after, pages < 100 {
            let page = try await f.source().fetchDelta(DeltaRequest(lowerBound: nil, after: current, pageSize: 100))
            records += page.records
            after = page.next
            pages += 1
        }
        #expect(records.count == 1200 && Set(records.map(\.id)).count == 1200)
        let resumedQuery = f.emulator.stats.queries[queriesBefore]
        let endLocal = NetSuiteClock(zone: losAngeles).local(Date(timeIntervalSince1970: Double(end)!))
        #expect(resumedQuery.contains("customer.lastmodifieddate < TO_TIMESTAMP('\(endLocal)'"), "same window after the restart")
    }

    @Test("Rule 3 + cap: more rows than the cap in ONE second cannot be split by time; keyset by id reads them once")
    func denseSecondOverTheCap() async throws {
        let f = try NetSuiteFixture(emulator: .init(timeZone: losAngeles, rowCap: 1000))
        defer { f.stop() }
        let when = utc("2026-10-01 07:00:00")
        f.emulator.upsertMany("customer", rows: (1...1200).map { (Int64($0), when, []) })
        f.emulator.upsert("customer", id: 5000, modifiedAt: when + 1)
        let (records, pages, warnings) = try await NetSuiteFixture.scan(f.source(), from: when - 2, pageSize: 100)
        #expect(records.count == 1201 && Set(records.map(\.id)).count == 1201)
        #expect(warnings.contains { $0.contains("cannot be split further") })
        #expect(warnings.count == 1, "the dense second is remembered in the position hints, not searched again")
        #expect(f.emulator.stats.queries.count < pages + 30)
    }

    @Test("Rule 3: 250 rows in one second are walked by the id tiebreaker without stalling")
    func sameSecondRun() async throws {
        let f = try NetSuiteFixture()
        defer { f.stop() }
        let when = utc("2026-10-01 07:00:00")
        f.emulator.upsertMany("customer", rows: (1...250).map { (Int64($0), when, []) })
        f.emulator.upsert("customer", id: 999, modifiedAt: when - 5)
        let (records, pages, _) = try await NetSuiteFixture.scan(f.source(), from: nil, pageSize: 100)
        #expect(records.map(\.id) == ["999"] + (1...250).map(String.init))
        #expect(pages == 3)
    }

    @Test("Rules 2 and 7: records around local midnight and both DST changes, either ambiguity resolution: none lost")
    func daylightSavingScan() async throws {
        for reading in [NetSuiteEmulator.AmbiguousReading.earlier, .later] {
            let f = try NetSuiteFixture(emulator: .init(timeZone: losAngeles, ambiguousReading: reading))
            defer { f.stop() }
            // Fall-back 2026-11-01: 01:00–02:00 local happens twice (PDT 08:00–09:00Z, PST 09:00–10:00Z).
            var truth: [String: Date] = [:]
            var id: Int64 = 0
            func add(_ instant: Date) {
                id += 1
                f.emulator.upsert("customer", id: id, modifiedAt: instant, fields: [("name", .text("r\(id)"))])
                truth[String(id)] = instant
            }
            add(utc("2026-11-01 06:59:59"))  // 23:59:59 local, Oct 31
            add(utc("2026-11-01 07:00:00"))  // local midnight
            for minute in stride(from: 0, to: 120, by: 5) { add(utc("2026-11-01 08:00:00") + Double(minute * 60)) }
            add(utc("2026-11-01 10:00:00"))  // 02:00 PST
            // Spring-forward 2026-03-08: 02:00–03:00 local does not exist.
            add(utc("2026-03-08 09:59:59"))  // 01:59:59 PST
            add(utc("2026-03-08 10:00:00"))  // 03:00:00 PDT
            let source = f.source()
            let all = try await NetSuiteFixture.scan(source, from: nil, pageSize: 5)
            #expect(Set(all.records.map(\.id)) == Set(truth.keys), "nothing lost (\(reading))")
            for record in all.records {
                let real = try #require(truth[record.id])
                let stamp = try #require(record.updatedAt)
                #expect(stamp == real, "the TO_CHAR reading resolves to the true instant via the sort order (\(record.id))")
            }
            // A scan whose lower bound lies in the second (PST) reading of the repeated hour re-reads from before
            // the hour but loses nothing at or after it.
            let cursor = utc("2026-11-01 09:20:00")
            let resumed = try await NetSuiteFixture.scan(source, from: cursor, pageSize: 5)
            let expected = Set(truth.filter { $0.value >= cursor }.keys)
            #expect(expected.isSubset(of: Set(resumed.records.map(\.id))), "nothing at or after the cursor lost (\(reading))")
            #expect(resumed.records.allSatisfy { $0.updatedAt! >= utc("2026-11-01 07:59:59") })
            // A position (not just a lower bound) inside the repeated hour: later pages never repeat rows ≤ it.
            let mid = ScanPosition(timestamp: utc("2026-11-01 09:10:00"), recordID: String(truth.first { $0.value == utc("2026-11-01 09:10:00") }!.key))
            let page = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: mid, pageSize: 5))
            #expect(page.records.allSatisfy { $0.updatedAt! > mid.timestamp }, "rows at or before the position are stepped over")
            #expect(page.records.first?.updatedAt == utc("2026-11-01 09:15:00"))
        }
    }

    @Test("Rule 9: concurrency 429s back off and recover; requests never exceed the client's semaphore")
    func concurrencyLimit() async throws {
        let f = try NetSuiteFixture(emulator: .init(timeZone: losAngeles, concurrencyLimit: 2,
                                                    responseDelay: .milliseconds(80)),
                                    client: NetSuiteFixture.fastOptions(maxConcurrency: 4))
        defer { f.stop() }
        for i in 1...5 { f.emulator.upsert("customer", id: Int64(i), modifiedAt: utc("2026-10-01 00:00:00") + Double(i)) }
        let source = f.source()
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<12 {
                group.addTask { try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10)).records.count }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(counts == Array(repeating: 5, count: 12), "every query recovered")
        let stats = f.emulator.stats
        #expect(stats.concurrencyRejections > 0, "the limit was hit")
        #expect(stats.maxObservedConcurrency <= 4, "never more in flight than max_concurrency")
    }

    @Test("Rule 9: with max_concurrency at the account's limit, no 429 at all")
    func semaphoreMatchesLimit() async throws {
        let f = try NetSuiteFixture(emulator: .init(timeZone: losAngeles, concurrencyLimit: 2,
                                                    responseDelay: .milliseconds(20)),
                                    client: NetSuiteFixture.fastOptions(maxConcurrency: 2))
        defer { f.stop() }
        let source = f.source()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { _ = try await source.fetchIDs(after: nil, pageSize: 10) } }
            try await group.waitForAll()
        }
        #expect(f.emulator.stats.concurrencyRejections == 0 && f.emulator.stats.maxObservedConcurrency <= 2)
    }

    @Test("Rule 6: DeletedRecord feed per record type (keyset, zone-aware) and the paged id sweep")
    func deletesAndIDs() async throws {
        let f = try NetSuiteFixture()
        defer { f.stop() }
        for i in 1...5 { f.emulator.upsert("customer", id: Int64(i), modifiedAt: utc("2026-10-01 00:00:00")) }
        f.emulator.upsert("item", id: 2, modifiedAt: utc("2026-10-01 00:00:00"))
        f.emulator.delete("customer", id: 2, at: utc("2026-11-01 09:30:00"))  // 01:30 PST, the repeated hour
        f.emulator.delete("customer", id: 4, at: utc("2026-11-02 00:00:00"))
        f.emulator.delete("item", id: 2, at: utc("2026-11-01 09:30:00"), recordType: "inventoryitem")
        let source = f.source()
        let feed = try #require(try await source.fetchDeletions(since: nil, after: nil, pageSize: 1))
        // 01:30 local with no earlier row to disambiguate: the earlier reading (errs early, never late).
        #expect(feed.deletions == [DeletedRecordNotice(id: "2", deletedAt: utc("2026-11-01 08:30:00"))])
        let rest = try #require(try await source.fetchDeletions(since: nil, after: feed.next, pageSize: 1))
        #expect(rest.deletions.map(\.id) == ["4"])
        let since = try #require(try await source.fetchDeletions(since: utc("2026-11-01 12:00:00"), after: nil, pageSize: 10))
        #expect(since.deletions.map(\.id) == ["4"] && since.next == nil)
        let none = try await f.source(deleteFeed: false).fetchDeletions(since: nil, after: nil, pageSize: 10)
        #expect(none == nil, "delete_feed none: reconciliation only")
        let items = try #require(try await f.source("item").fetchDeletions(since: nil, after: nil, pageSize: 10))
        #expect(items.deletions.map(\.id) == ["2"])

        var ids: [String] = []
        var token: String?
        repeat {
            let page = try await source.fetchIDs(after: token, pageSize: 2)
            ids += page.ids
            token = page.next
        } while token != nil
        #expect(ids == ["1", "3", "5"])
    }
}
