// The generic REST provider against a small fake API on loopback: cursor walking instead of offset drift
// (DESIGN §2 rule 3), paging inside a run of identical timestamps, end markers (rule 4), errors with paths.
import Config
import Core
import Foundation
import HTTPClient
import HTTPServer
import Providers
import Synchronization
import Testing

/// A fake "orders" API: `GET /v1/orders?updated_since=…&limit=…&page=…` returns records with
/// `updated_at >= updated_since`, ordered by (updated_at, id), one page at a time.
final class FakeOrdersAPI: Sendable {
    struct Order: Sendable { var id: Int; var updatedAt: Int64; var status: String }
    private let orders = Mutex<[Order]>([])
    /// Called after each served page (lets a test change data mid-scan).
    private let afterPage = Mutex<(@Sendable (Int) -> Void)?>(nil)
    private let served = Mutex(0)
    private let failNext = Mutex<HTTPServerResponse?>(nil)
    let server: HTTPServer

    init(style: String = "page") throws {
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

    func handle(_ request: HTTPServerRequest, style: String) -> HTTPServerResponse {
        if let failure = failNext.withLock({ f -> HTTPServerResponse? in defer { f = nil }; return f }) { return failure }
        let since = Timestamps.parseRFC3339(request.queryValue("updated_since") ?? "") ?? Date(timeIntervalSince1970: 0)
        let limit = Int(request.queryValue("limit") ?? "") ?? 2
        let start: Int
        if style == "token" {
            start = Int(request.queryValue("next") ?? "") ?? 0
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
func scanAll(_ source: RestSource, from lowerBound: Date? = nil) async throws -> [SourceRecord] {
    var all = [SourceRecord]()
    var after: ScanPosition? = nil
    for _ in 0..<100 {
        let page = try await source.fetchDelta(DeltaRequest(lowerBound: lowerBound, after: after, pageSize: 2))
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
