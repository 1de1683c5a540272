// The generic REST provider against a small fake API on loopback: cursor walking instead of offset drift
// (docs/DESIGN.md §2 rule 3), paging inside a run of identical timestamps, end markers (rule 4), errors with paths.
import Config
import Core
import Foundation
import HTTPClient
import HTTPServer
import Providers
import Synchronization
import Testing

/// A fake "orders" API: `GET /v1/orders?updated_since=…&limit=…&page=…` (or `&offset=…`, or `&next=…`) returns
/// records with `updated_at >= updated_since`, ordered by (updated_at, id), one page at a time. `maxLimit` caps the
/// page size silently, as many APIs do when asked for more than their maximum.
final class FakeOrdersAPI: Sendable {
    struct Order: Sendable { var id: Int; var updatedAt: Int64; var status: String }
    private let orders = Mutex<[Order]>([])
    /// Called after each served page (lets a test change data mid-scan).
    private let afterPage = Mutex<(@Sendable (Int) -> Void)?>(nil)
    private let served = Mutex(0)
    private let failNext = Mutex<HTTPServerResponse?>(nil)
    private let log = Mutex<[[String: String]]>([])
    let maxLimit: Int
    let server: HTTPServer

    init(style: String = "page", maxLimit: Int = 1000) throws {
        self.maxLimit = maxLimit
        let box = Mutex<FakeOrdersAPI?>(nil)
        server = try HTTPServer(handling: .sync { request in
            guard let api = box.withLock({ $0 }) else { return .text("starting", status: 503) }
            return api.handle(request, style: style)
        })
        box.withLock { $0 = self }
    }

    func set(_ list: [Order]) { orders.withLock { $0 = list } }
    func update(id: Int, at: Int64, status: String) {
        orders.withLock { all in
            if let i = all.firstIndex(where: { $0.id == id }) { all[i].updatedAt = at; all[i].status = status }
        }
    }
    func onPageServed(_ hook: @escaping @Sendable (Int) -> Void) { afterPage.withLock { $0 = hook } }
    func failOnce(_ response: HTTPServerResponse) { failNext.withLock { $0 = response } }
    var pagesServed: Int { served.withLock { $0 } }
    /// The query parameters of every request, in order.
    var queries: [[String: String]] { log.withLock { $0 } }

    func handle(_ request: HTTPServerRequest, style: String) -> HTTPServerResponse {
        if let failure = failNext.withLock({ f -> HTTPServerResponse? in defer { f = nil }; return f }) { return failure }
        var query: [String: String] = [:]
        for name in ["updated_since", "limit", "page", "offset", "next"] { query[name] = request.queryValue(name) }
        log.withLock { $0.append(query) }
        let since = Timestamps.parseRFC3339(request.queryValue("updated_since") ?? "") ?? Date(timeIntervalSince1970: 0)
        let limit = min(Int(request.queryValue("limit") ?? "") ?? 2, maxLimit)
        let start: Int
        if style == "token" {
            start = Int(request.queryValue("next") ?? "") ?? 0
        } else if style == "offset" {
            start = Int(request.queryValue("offset") ?? "") ?? 0
        } else {
            start = ((Int(request.queryValue("page") ?? "") ?? 1) - 1) * limit
        }
        let matching = orders.withLock { $0 }
            .filter { Double($0.updatedAt) >= since.timeIntervalSince1970 }
            .sorted { ($0.updatedAt, $0.id) < ($1.updatedAt, $1.id) }
        let slice = Array(matching.dropFirst(start).prefix(limit))
        let items: [JSONValue] = slice.map { order in
            ["id": .integer(Int64(order.id)), "status": .string(order.status),
             "updated_at": .string(Timestamps.rfc3339(Date(timeIntervalSince1970: Double(order.updatedAt))))]
        }
        var body = JSONObject([("data", .array(items))])
        if style == "token", start + limit < matching.count { body["next"] = .string(String(start + limit)) }
        let page = served.withLock { n -> Int in n += 1; return n }
        afterPage.withLock { $0 }?(page)
        return .json(JSONValue.object(body).serializedBytes())
    }
}

func restConfig(baseURL: String, path: String, pagination: JSONValue) throws -> ConnectionConfig {
    let json: JSONValue = [
        "state_directory": "/tmp/unused",
        "connections": [[
            "id": "orders-api", "provider": "rest", "base_url": .string(baseURL), "auth": ["type": "none"],
            "objects": [["name": "orders", "interval": "1m", "page_size": 2,
                         "request": ["path": .string(path), "records": "data", "id_field": "id",
                                     "cursor_field": "updated_at", "cursor_format": "rfc3339",
                                     "pagination": pagination]]],
        ]],
    ]
    let config = try ConfigLoader.validate(json: json, environment: ConfigEnvironment(variables: [:]))
    return try #require(config.connections.first)
}

/// Runs a whole scan the way the engine does: follow `next` until nil, bounded.
func scanAll(_ source: RestSource, from lowerBound: Date? = nil, pageSize: Int = 2) async throws -> [SourceRecord] {
    var all = [SourceRecord]()
    var after: ScanPosition? = nil
    for _ in 0..<100 {
        let page = try await source.fetchDelta(DeltaRequest(lowerBound: lowerBound, after: after, pageSize: pageSize))
        all += page.records
        guard let next = page.next else { return all }
        #expect(next != after, "a scan must make progress")
        after = next
    }
    Issue.record("scan did not end within 100 pages")
    return all
}

func uniqueInOrder(_ ids: [String]) -> [String] {
    var seen = Set<String>()
    return ids.filter { seen.insert($0).inserted }
}

@Suite("Generic REST provider")
struct RestSourceTests {
    static let path = "/v1/orders?updated_since={cursor}&limit={limit}&page={page}"

    @Test("rule 3: a record updated mid-scan does not make the scan skip its neighbours (no offset drift)")
    func cursorWalkSurvivesMidScanUpdates() async throws {
        let api = try FakeOrdersAPI()
        defer { api.server.stop() }
        api.set((1...6).map { .init(id: $0, updatedAt: 1_000 + Int64($0), status: "new") })
        // After the first page, order 1 is updated: it moves to the end. A plain page walk would now skip
        // order 3 (everything shifts one place left).
        api.onPageServed { page in if page == 1 { api.update(id: 1, at: 2_000, status: "paid") } }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let connection = try restConfig(baseURL: api.server.baseURL, path: Self.path, pagination: ["style": "page", "start": 1])
        let source = try RestSource(connection: connection, object: try #require(connection.objects.first), transport: transport)
        let records = try await scanAll(source)
        #expect(Set(records.map(\.id)) == Set((1...6).map(String.init)))
        let last = try #require(records.last { $0.id == "1" })
        #expect(last.raw["status"] == "paid")
    }

    @Test("rule 3: a run of identical timestamps longer than a page is paged through and the scan ends")
    func identicalTimestampRunPagesThrough() async throws {
        let api = try FakeOrdersAPI()
        defer { api.server.stop() }
        api.set((1...7).map { .init(id: $0, updatedAt: 5_000, status: "x") })
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let connection = try restConfig(baseURL: api.server.baseURL, path: Self.path, pagination: ["style": "page", "start": 1])
        let source = try RestSource(connection: connection, object: try #require(connection.objects.first), transport: transport)
        let records = try await scanAll(source)
        // The first page reached a newer timestamp than the query's cursor, so the scan restarted from it
        // once (re-reading that page; the engine's content hash makes re-reads silent) and then paged inside
        // the run.
        #expect(uniqueInOrder(records.map(\.id)) == (1...7).map(String.init))
        #expect(records.count == 9)
    }

    static func numbered(_ style: String) -> (path: String, pagination: JSONValue) {
        style == "offset"
            ? ("/v1/orders?updated_since={cursor}&limit={limit}&offset={offset}", ["style": "offset"])
            : (Self.path, ["style": "page", "start": 1])
    }

    /// A source reading `api` over its own curl client, which the caller shuts down.
    static func source(_ api: FakeOrdersAPI, style: String = "page") throws -> (RestSource, CurlHTTPClient) {
        let transport = try CurlHTTPClient()
        let (path, pagination) = numbered(style)
        let connection = try restConfig(baseURL: api.server.baseURL, path: path, pagination: pagination)
        return (try RestSource(connection: connection, object: try #require(connection.objects.first), transport: transport),
                transport)
    }

    @Test("rule 3: 50 rows becoming visible between two page requests are all read, none skipped",
          arguments: ["page", "offset"])
    func rowsVisibleBetweenPageRequests(style: String) async throws {
        let api = try FakeOrdersAPI(style: style)
        defer { api.server.stop() }
        // The cursor's record: the newest row the last scan read, which every scan re-reads (rule 2).
        let cursor: Int64 = 10_000
        let kept = FakeOrdersAPI.Order(id: 1, updatedAt: cursor, status: "old")
        api.set([kept])
        // Right after the page that re-reads it from its own timestamp (request 2), a bulk job makes 50 rows
        // visible, dated over the next minutes. A page-2 request at the same lower bound would now return rows
        // 10–19 of the new set and the walk would go on from there: rows 2–10 never read.
        let bulk = (2...51).map { FakeOrdersAPI.Order(id: $0, updatedAt: cursor + Int64($0) * 3, status: "bulk") }
        api.onPageServed { page in if page == 2 { api.set([kept] + bulk) } }
        let (source, transport) = try Self.source(api, style: style)
        defer { transport.shutdown() }
        let records = try await scanAll(source, from: Date(timeIntervalSince1970: Double(cursor - 2)), pageSize: 10)
        let missing = Set((1...51).map(String.init)).subtracting(records.map(\.id))
        #expect(missing.isEmpty, "never read: \(missing.compactMap { Int($0) }.sorted())")
    }

    @Test("rule 3: a short page of one timestamp ends the run; the walk goes on at the next second, page 1")
    func shortPageEndsTheRun() async throws {
        let api = try FakeOrdersAPI()
        defer { api.server.stop() }
        api.set([.init(id: 1, updatedAt: 100, status: "a"), .init(id: 2, updatedAt: 200, status: "b"),
                 .init(id: 3, updatedAt: 300, status: "c")])
        let (source, transport) = try Self.source(api)
        defer { transport.shutdown() }
        let records = try await scanAll(source)
        #expect(uniqueInOrder(records.map(\.id)) == ["1", "2", "3"])
        // [1,2] → from 200: [2,3] → from 300: [3], one row where the API has shown two fit → from 301: [] (end).
        #expect(api.queries.allSatisfy { $0["page"] == "1" }, "no page 2: \(api.queries)")
        #expect(api.queries.last?["updated_since"] == Timestamps.rfc3339(Date(timeIntervalSince1970: 301)))
        #expect(api.queries.count == 4)
    }

    @Test("rule 3: an API that silently caps the page size below page_size is still paged through a long run")
    func cappedPageSizeIsNotShort() async throws {
        let api = try FakeOrdersAPI(maxLimit: 2)
        defer { api.server.stop() }
        api.set((1...5).map { .init(id: $0, updatedAt: 5_000, status: "x") })
        let (source, transport) = try Self.source(api)
        defer { transport.shutdown() }
        // Asked for 4, answered 2: a page as large as the largest this API returns is full, not short.
        let records = try await scanAll(source, pageSize: 4)
        #expect(uniqueInOrder(records.map(\.id)) == (1...5).map(String.init))
    }

    @Test("rule 3: a page after a run that starts past the run's end restarts after the run, not from its newest row",
          arguments: ["page", "offset"])
    func runShrinksBetweenPageRequests(style: String) async throws {
        let api = try FakeOrdersAPI(style: style)
        defer { api.server.stop() }
        // A full page of one timestamp (orders 1, 2 at 5000), then 3, 4, 5 one second apart.
        api.set([.init(id: 1, updatedAt: 5_000, status: "x"), .init(id: 2, updatedAt: 5_000, status: "x"),
                 .init(id: 3, updatedAt: 5_001, status: "x"), .init(id: 4, updatedAt: 5_002, status: "x"),
                 .init(id: 5, updatedAt: 5_003, status: "x")])
        // After page 1 from 5000 (request 2), order 1 is updated and leaves the run: the second page of the run
        // now starts at order 4, and order 3 sits before it.
        api.onPageServed { page in if page == 2 { api.update(id: 1, at: 6_000, status: "paid") } }
        let (source, transport) = try Self.source(api, style: style)
        defer { transport.shutdown() }
        let records = try await scanAll(source, from: Date(timeIntervalSince1970: 4_999))
        #expect(Set(records.map(\.id)) == Set((1...5).map(String.init)), "read: \(records.map(\.id))")
        #expect(records.last { $0.id == "1" }?.raw["status"] == "paid")
    }

    @Test("rule 4: an absent next token is the end marker; present tokens are followed")
    func nextTokenPagination() async throws {
        let api = try FakeOrdersAPI(style: "token")
        defer { api.server.stop() }
        api.set((1...5).map { .init(id: $0, updatedAt: 7_000, status: "x") })
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let connection = try restConfig(baseURL: api.server.baseURL,
                                        path: "/v1/orders?updated_since={cursor}&limit={limit}&next={next}",
                                        pagination: ["style": "next_token", "field": "next"])
        let source = try RestSource(connection: connection, object: try #require(connection.objects.first), transport: transport)
        let records = try await scanAll(source)
        #expect(uniqueInOrder(records.map(\.id)) == ["1", "2", "3", "4", "5"])
        #expect(api.pagesServed == 4, "one restart at the run's timestamp, then three token pages")
    }

    @Test("inclusive lower bound: records at exactly the cursor are re-read (rule 2)")
    func lowerBoundIsInclusive() async throws {
        let api = try FakeOrdersAPI()
        defer { api.server.stop() }
        api.set([.init(id: 1, updatedAt: 100, status: "a"), .init(id: 2, updatedAt: 200, status: "b")])
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let connection = try restConfig(baseURL: api.server.baseURL, path: Self.path, pagination: ["style": "page", "start": 1])
        let source = try RestSource(connection: connection, object: try #require(connection.objects.first), transport: transport)
        let records = try await scanAll(source, from: Date(timeIntervalSince1970: 200))
        #expect(records.map(\.id) == ["2"])
        #expect(source.descriptor.volatileFields.contains("updated_at"))
    }

    @Test("errors: Retry-After becomes a connection-wide wait; a bad record names its JSON path")
    func errorsAreClassified() async throws {
        let api = try FakeOrdersAPI()
        defer { api.server.stop() }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let connection = try restConfig(baseURL: api.server.baseURL, path: Self.path, pagination: ["style": "page", "start": 1])
        let source = try RestSource(connection: connection, object: try #require(connection.objects.first), transport: transport)

        api.failOnce(HTTPServerResponse(status: 429, headers: [("Retry-After", "7")]))
        do {
            _ = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 2))
            Issue.record("expected a rate limit")
        } catch ProviderError.rateLimited(let wait, _) {
            #expect(wait == .seconds(7))
        }

        // Rule 16: one bad record is rejected with its JSON path, the page is not failed.
        api.failOnce(.json(Array(#"{"data":[{"id":1,"updated_at":"yesterday"}]}"#.utf8)))
        let page = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 2))
        #expect(page.records.isEmpty && page.rejected.count == 1)
        #expect(page.rejected.first?.id == "1" && page.rejected.first?.position == "$.data[0]")
        #expect(page.rejected.first?.reason.hasPrefix("$.data[0].updated_at") == true)
    }
}
