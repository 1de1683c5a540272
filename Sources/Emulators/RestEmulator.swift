// A generic JSON REST API of the kind the `rest` provider is configured for: `GET /v1/orders` lists orders with
// `updated_at >= updated_since`, oldest first (ties by id), `limit` per page, paged by `page`, `offset`, a body
// `links.next` URL or a `Link: <…>; rel="next"` header. Faithful to what such APIs do — and to how they misbehave
// (docs/DESIGN.md §2 rules 12–18): a `page` parameter silently ignored, a next link to another origin, a record
// the client cannot accept, a page larger than any sane cap, absurd rate-limit headers.
public import Core
public import Foundation
public import HTTPServer
import Synchronization

public final class RestEmulator: Sendable {
    public struct Order: Sendable, Hashable {
        public var id: Int64
        public var status: String
        public var updatedAt: Date
        /// Filler text, to make a page as large as a test needs.
        public var note: String

        public init(id: Int64, status: String, updatedAt: Date, note: String = "") {
            self.id = id
            self.status = status
            self.updatedAt = updatedAt
            self.note = note
        }
    }

    public enum Pagination: Sendable, Equatable {
        /// `page=N` (1-based).
        case page
        /// `offset=N`.
        case offset
        /// `{"links": {"next": "<absolute URL>"}}` in the body.
        case nextURL
        /// `Link: <…>; rel="next"`.
        case linkHeader
    }

    /// Misbehaviour, applied to every list request while set.
    public struct Hostility: Sendable {
        /// Answer page 1 whatever `page`/`offset` asks (an API that does not support paging).
        public var ignoresPaging = false
        /// Next links point here instead of at this server (another origin: a redirect to steal the token).
        public var nextLinkBase: String?
        /// Raw JSON texts listed after the newest real order (on the last page of every listing): records the client
        /// must reject, as the object's newest.
        public var poisonRecords: [String] = []
        /// Answer 429 with these headers (e.g. `Retry-After: 99999999999999999999`) to this many list requests.
        public var rateLimitHeaders: [(name: String, value: String)] = []
        public var rateLimitedRequests = 0

        public init() {}
    }

    /// Runs once, right after the first list request `matches` accepts was answered and before the next one is
    /// read: "rows became visible between two page requests" (a bulk job, a replica catching up).
    public struct BetweenPages: Sendable {
        public var matches: @Sendable (HTTPServerRequest) -> Bool
        public var run: @Sendable (RestEmulator) -> Void

        public init(matches: @escaping @Sendable (HTTPServerRequest) -> Bool,
                    run: @escaping @Sendable (RestEmulator) -> Void) {
            self.matches = matches
            self.run = run
        }
    }

    private struct State {
        var orders: [Int64: Order] = [:]
        var hostility = Hostility()
        var requests: [(target: String, authorization: String?)] = []
        var betweenPages: BetweenPages?
    }

    private let state = Mutex(State())
    private let server: HTTPServer
    public let pagination: Pagination
    /// Every request must carry this `Authorization` value, else 401.
    public let token: String
    public var baseURL: String { server.baseURL }

    /// - Parameter host: a loopback address; `127.0.0.2` makes a second origin (a canary) on the same machine.
    public init(pagination: Pagination = .page, token: String = "Bearer rest-emulator-token",
                host: String = "127.0.0.1") throws {
        self.pagination = pagination
        self.token = token
        let box = Mutex<RestEmulator?>(nil)
        server = try HTTPServer(host: host, handling: .sync { request in
            guard let emulator = box.withLock({ $0 }) else { return .text("starting", status: 503) }
            return emulator.handle(request)
        })
        box.withLock { $0 = self }
    }

    public func stop() { server.stop() }

    // MARK: Data and faults

    public func upsert(_ order: Order) { state.withLock { $0.orders[order.id] = order } }
    public func remove(id: Int64) { _ = state.withLock { $0.orders.removeValue(forKey: id) } }
    public var orders: [Order] { state.withLock { $0.orders.values.sorted { $0.id < $1.id } } }
    public func setHostility(_ hostility: Hostility) { state.withLock { $0.hostility = hostility } }
    public func updateHostility(_ change: (inout Hostility) -> Void) { state.withLock { change(&$0.hostility) } }
    /// Arms a one-shot change of the data between two page requests (replacing one not yet fired).
    public func betweenPages(_ hook: BetweenPages) { state.withLock { $0.betweenPages = hook } }

    /// Request targets (path and query) in arrival order, with the Authorization header each carried.
    public var requests: [(target: String, authorization: String?)] { state.withLock { $0.requests } }

    // MARK: Serving

    /// The `path` template a deltahook `rest` object uses for this emulator's pagination style.
    public var pathTemplate: String {
        switch pagination {
        case .page: "/v1/orders?updated_since={cursor}&limit={limit}&page={page}"
        case .offset: "/v1/orders?updated_since={cursor}&limit={limit}&offset={offset}"
        case .nextURL, .linkHeader: "/v1/orders?updated_since={cursor}&limit={limit}"
        }
    }

    /// The `pagination` value of that object, as config JSON text.
    public var paginationConfig: String {
        switch pagination {
        case .page: #"{"style": "page", "start": 1}"#
        case .offset: #""offset""#
        case .nextURL: #"{"style": "next_url", "field": "links.next"}"#
        case .linkHeader: #""link_header""#
        }
    }

    func handle(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let response = answer(request)
        // The page is computed: a data change now lands between this request and the next one.
        let hook = state.withLock { s -> BetweenPages? in
            guard let hook = s.betweenPages, response.status == 200, hook.matches(request) else { return nil }
            s.betweenPages = nil
            return hook
        }
        hook?.run(self)
        return response
    }

    private func answer(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let (snapshot, hostility, limited) = state.withLock { s -> ([Order], Hostility, Bool) in
            s.requests.append((request.target, request.headers["authorization"]))
            let limited = s.hostility.rateLimitedRequests > 0
            if limited { s.hostility.rateLimitedRequests -= 1 }
            return (Array(s.orders.values), s.hostility, limited)
        }
        guard request.headers["authorization"] == token else {
            return .json(Array(#"{"error": "unauthorized"}"#.utf8), status: 401)
        }
        guard request.method == "GET", request.path == "/v1/orders" else {
            return .json(Array(#"{"error": "not found"}"#.utf8), status: 404)
        }
        if limited {
            var response = HTTPServerResponse.json(Array(#"{"error": "rate limited"}"#.utf8), status: 429)
            response.headers += hostility.rateLimitHeaders
            return response
        }
        let since = request.queryValue("updated_since").flatMap(Timestamps.parseRFC3339) ?? Date(timeIntervalSince1970: 0)
        let limit = max(1, min(Int(request.queryValue("limit") ?? "") ?? 100, 1000))
        var start = 0
        switch pagination {
        case .page: start = ((Int(request.queryValue("page") ?? "") ?? 1) - 1) * limit
        case .offset, .nextURL, .linkHeader: start = Int(request.queryValue("offset") ?? "") ?? 0
        }
        if hostility.ignoresPaging { start = 0 }
        let matching = snapshot.filter { $0.updatedAt >= since }
            .sorted { ($0.updatedAt, $0.id) < ($1.updatedAt, $1.id) }
        let slice = Array(matching.dropFirst(max(0, start)).prefix(limit))
        var items = slice.map { order -> String in
            JSONValue.object(JSONObject([
                ("id", .integer(order.id)), ("status", .string(order.status)),
                ("updated_at", .string(Timestamps.rfc3339(order.updatedAt))), ("note", .string(order.note)),
            ])).serialized()
        }
        let more = start + slice.count < matching.count
        if !more && (!slice.isEmpty || start == 0) { items += hostility.poisonRecords }
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        var links = ""
        if more, pagination == .nextURL || pagination == .linkHeader {
            let base = hostility.nextLinkBase ?? server.baseURL
            let next = "\(base)/v1/orders?updated_since=\(Timestamps.rfc3339(since))&limit=\(limit)&offset=\(start + limit)"
            if pagination == .nextURL { links = #", "links": {"next": "\#(next)"}"# }
            else { headers.append(("Link", "<\(next)>; rel=\"next\"")) }
        }
        let body = #"{"data": ["# + items.joined(separator: ", ") + "]" + links + "}"
        var response = HTTPServerResponse.json(Array(body.utf8))
        response.headers = headers
        return response
    }
}
