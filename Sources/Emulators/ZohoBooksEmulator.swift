// A loopback Zoho Books API v3 emulator, faithful to docs/providers.md "Zoho Books": the accounts server's
// refresh-token grant at `/oauth/v2/token` (one-hour tokens on an injectable `EmulatorClock`, refusals as
// `{"error": "invalid_code"}`), `Authorization: Zoho-oauthtoken …` with 401 and a `{code, message}` body for an
// expired or unknown token, `organization_id` required on every request, list endpoints under `/books/v3/{module}`
// with `page`, `per_page` (≤ 200), `sort_column` (`last_modified_time`, `created_time`), `sort_order` (`A`/`D`) and
// `page_context.has_more_page`, times in the organization's offset form (`2026-11-29T10:15:30+0530`), and the
// 100-a-minute and per-day limits answered with 429 and a `{code, message}` body. The numeric error codes are the
// emulator's own: Zoho documents the body's form and the HTTP statuses, not a code per limit.
//
// One instance plays one data center (serving both its accounts server and its API); two instances are two data
// centers, and a refresh token works only at the one that issued it. Tests drive it through a Swift mutation API
// (create/update/delete invoices and contacts, many in one second), a queue of per-request faults (a hook that
// changes records between two page requests, token expiry, statuses, broken connections) and a request log.
public import Core
import Crypto
public import Foundation
import HTTPServer
import Synchronization

public final class ZohoBooksEmulator: Sendable {
    struct State {
        var modules: [String: [String: Record]] = [:]
        var nextID: Int64 = 460_000_000_000_001
        var nextNumber = 1
        var tokens: [String: Date] = [:]
        var refreshTokens: Set<String> = []
        var grants = 0
        var minuteStart: Date
        var minuteCount = 0
        var dayStart: Date
        var dayCount = 0
        var faults: [Fault] = []
        var log: [LoggedRequest] = []
        var poison: [String: String] = [:]
    }

    /// The modules served, with their records member and id field (as in the Zoho Books API reference).
    public static let modules: [String: String] = [
        "invoices": "invoice_id", "contacts": "contact_id", "bills": "bill_id", "items": "item_id",
        "salesorders": "salesorder_id", "estimates": "estimate_id",
    ]

    public let options: Options
    public let clock: EmulatorClock
    let state: Mutex<State>
    private let server: Mutex<HTTPServer?>
    /// `http://127.0.0.1:PORT`: the accounts server (`accounts_url`) of this data center.
    public let accountsURL: String
    /// `http://127.0.0.1:PORT/books/v3`: the connection's `base_url`.
    public var baseURL: String { accountsURL + "/books/v3" }

    public init(options: Options = Options(), clock: EmulatorClock = EmulatorClock()) throws {
        self.options = options
        self.clock = clock
        let now = clock.now()
        var initial = State(minuteStart: now, dayStart: now)
        initial.refreshTokens = [options.refreshToken]
        state = Mutex(initial)
        server = Mutex(nil)
        let box = ZohoWeakBox()
        let http = try HTTPServer(handler: { request in
            guard let emulator = box.get() else { return .text("gone", status: 503) }
            return await emulator.handle(request)
        })
        accountsURL = http.baseURL
        server.withLock { $0 = http }
        box.set(self)
    }

    /// Stops the server. Always call it (tests use defer).
    public func stop() {
        let http = server.withLock { s -> HTTPServer? in
            let current = s
            s = nil
            return current
        }
        http?.stop()
    }

    // MARK: Mutation API

    /// Creates a record of `module` with `fields`, created and modified at `at` (default: the clock, whole seconds).
    @discardableResult
    public func create(_ module: String, _ fields: JSONObject, at: Date? = nil) -> Record {
        let when = Self.second(at ?? clock.now())
        return state.withLock { s in
            let id = String(s.nextID)
            s.nextID += 1
            let record = Record(id: id, fields: fields, createdAt: when, modifiedAt: when)
            s.modules[module, default: [:]][id] = record
            return record
        }
    }

    /// Changes a record and stamps its `last_modified_time` (default: the clock). nil when there is no such record.
    @discardableResult
    public func update(_ module: String, _ id: String, at: Date? = nil, _ change: (inout JSONObject) -> Void) -> Record? {
        let when = Self.second(at ?? clock.now())
        return state.withLock { s in
            guard var record = s.modules[module]?[id] else { return nil }
            change(&record.fields)
            record.modifiedAt = when
            s.modules[module]?[id] = record
            return record
        }
    }

    public func delete(_ module: String, _ id: String) {
        state.withLock { s in _ = s.modules[module]?.removeValue(forKey: id) }
    }

    public func records(_ module: String) -> [Record] {
        state.withLock { s in (s.modules[module].map { Array($0.values) } ?? []).sorted { $0.id < $1.id } }
    }

    /// An invoice as Zoho lists it (`status` draft, amounts as numbers).
    @discardableResult
    public func createInvoice(customerID: String = "460000000000900", customerName: String = "Zylker Traders",
                              total: Double = 100, status: String = "draft", at: Date? = nil) -> Record {
        let number = state.withLock { s -> Int in
            defer { s.nextNumber += 1 }
            return s.nextNumber
        }
        let day = String(Timestamps.rfc3339(Self.second(at ?? clock.now())).prefix(10))
        return create("invoices", JSONObject([
            ("invoice_number", .string(String(format: "INV-%06d", number))), ("customer_id", .string(customerID)),
            ("customer_name", .string(customerName)), ("status", .string(status)), ("date", .string(day)),
            ("due_date", .string(day)), ("currency_code", "INR"), ("total", .double(total)),
            ("balance", .double(total)), ("reference_number", ""),
        ]), at: at)
    }

    @discardableResult
    public func updateInvoice(_ id: String, at: Date? = nil, _ change: (inout JSONObject) -> Void) -> Record? {
        update("invoices", id, at: at, change)
    }

    public func deleteInvoice(_ id: String) { delete("invoices", id) }

    /// `count` invoices all created in the same second `at` (a bulk import).
    @discardableResult
    public func createInvoices(count: Int, at: Date? = nil) -> [Record] {
        let when = Self.second(at ?? clock.now())
        return (0..<count).map { i in createInvoice(total: Double(100 + i), at: when) }
    }

    /// A contact; `type` is `customer` or `vendor` (`contact_type`).
    @discardableResult
    public func createContact(name: String, type: String = "customer", email: String? = nil, at: Date? = nil) -> Record {
        create("contacts", JSONObject([
            ("contact_name", .string(name)), ("company_name", .string(name)), ("contact_type", .string(type)),
            ("status", "active"), ("email", .string(email ?? "")), ("phone", ""), ("currency_code", "INR"),
            ("outstanding_receivable_amount", .double(0)),
        ]), at: at)
    }

    @discardableResult
    public func updateContact(_ id: String, at: Date? = nil, _ change: (inout JSONObject) -> Void) -> Record? {
        update("contacts", id, at: at, change)
    }

    public func deleteContact(_ id: String) { delete("contacts", id) }

    // MARK: Faults and observation

    /// Queues faults for the next list requests, one per request, in order.
    public func queueFaults(_ faults: [Fault]) { state.withLock { $0.faults += faults } }

    /// Serves record `id` of `module` as `rawJSON` verbatim (still sorted by its real times): a poison row.
    public func poison(_ module: String, _ id: String, rawJSON: String) {
        state.withLock { $0.poison[module + "/" + id] = rawJSON }
    }

    /// Expires every access token now (the next API request answers 401).
    public func expireTokens() { state.withLock { $0.tokens = [:] } }

    /// Uses up this minute's (or today's) request allowance.
    public func exhaustMinute() { state.withLock { $0.minuteCount = options.perMinuteLimit } }
    public func exhaustDay() { state.withLock { $0.dayCount = options.perDayLimit } }

    public var requests: [LoggedRequest] { state.withLock { $0.log } }
    public var listRequests: [LoggedRequest] { requests.filter { $0.path.hasPrefix("/books/v3/") } }
    /// Refresh-token grants answered with a token.
    public var grants: Int { state.withLock { $0.grants } }
    public func clearLog() { state.withLock { $0.log = [] } }

    // MARK: Serving

    private func handle(_ request: HTTPServerRequest) async -> HTTPServerResponse {
        let query = Dictionary(request.query.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        var logged = LoggedRequest(method: request.method, path: request.path, query: query,
                                   authorization: request.headers["authorization"], status: 0)
        let response = await route(request, query: query)
        logged.status = response.status
        state.withLock { $0.log.append(logged) }
        return response
    }

    private func route(_ request: HTTPServerRequest, query: [String: String]) async -> HTTPServerResponse {
        if request.path == "/oauth/v2/token" {
            guard request.method == "POST" else { return Self.error(405, 5, "Method Not Allowed") }
            return grant(request, query: query)
        }
        guard request.path.hasPrefix("/books/v3/") else { return Self.error(404, 5, "Invalid URL Passed") }
        let module = String(request.path.dropFirst("/books/v3/".count))
        guard request.method == "GET", let idField = Self.modules[module] else {
            return Self.error(404, 5, "Invalid URL Passed")
        }
        var fault: Fault = state.withLock { s in s.faults.isEmpty ? .none : s.faults.removeFirst() }
        if case .hook(let hook) = fault {
            hook(self)
            fault = .none
        }
        if case .expireTokens = fault {
            expireTokens()
            fault = .none
        }
        if let denied = authenticate(request) { return denied }
        if let limited = charge() { return limited }
        switch fault {
        case .status(let code): return Self.error(code, code >= 500 ? 1000 : 2, code >= 500 ? "Internal error" : "Error")
        case .connection(let broken): return .fault(broken)
        default: break
        }
        guard let organization = query["organization_id"], !organization.isEmpty else {
            return Self.error(400, 6041, "organization_id is required; pass it with every request")
        }
        guard organization == options.organizationID else {
            return Self.error(401, 57, "You are not authorized to perform this operation")
        }
        return list(module: module, idField: idField, query: query)
    }

    /// The refresh-token grant (form body or query parameters, as Zoho's examples send them).
    private func grant(_ request: HTTPServerRequest, query: [String: String]) -> HTTPServerResponse {
        var params = query
        for pair in request.bodyText.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            if parts.count == 2 { params[parts[0]] = parts[1] }
        }
        func refusal(_ error: String) -> HTTPServerResponse {
            .json(JSONValue.object(JSONObject([("error", .string(error))])).serializedBytes(), status: 200)
        }
        guard params["grant_type"] == "refresh_token" else { return refusal("unsupported_grant_type") }
        guard params["client_id"] == options.clientID, params["client_secret"] == options.clientSecret else {
            return refusal("invalid_client")
        }
        let now = clock.now()
        let issued: (token: String, refresh: String?)? = state.withLock { s in
            guard let presented = params["refresh_token"], s.refreshTokens.contains(presented) else { return nil }
            let token = "1000." + ((try? SecureRandom.bytes(16))?.hexString ?? UUID().uuidString)
            s.tokens[token] = now.addingTimeInterval(options.tokenLifetime)
            s.grants += 1
            var rotated: String?
            if options.rotateRefreshTokens {
                let fresh = "1000." + ((try? SecureRandom.bytes(16))?.hexString ?? UUID().uuidString)
                s.refreshTokens = [fresh]
                rotated = fresh
            }
            return (token, rotated)
        }
        guard let issued else { return refusal("invalid_code") }
        var body = JSONObject([
            ("access_token", .string(issued.token)), ("api_domain", .string(accountsURL)),
            ("token_type", "Bearer"), ("expires_in", .integer(Int64(options.tokenLifetime))),
        ])
        if let refresh = issued.refresh { body["refresh_token"] = .string(refresh) }
        return .json(JSONValue.object(body).serializedBytes())
    }

    private func authenticate(_ request: HTTPServerRequest) -> HTTPServerResponse? {
        guard let header = request.headers["authorization"], header.hasPrefix("Zoho-oauthtoken ") else {
            return Self.error(401, 57, "You are not authorized to perform this operation")
        }
        let token = String(header.dropFirst("Zoho-oauthtoken ".count))
        let now = clock.now()
        let valid = state.withLock { s in s.tokens[token].map { now < $0 } ?? false }
        return valid ? nil : Self.error(401, 57, "You are not authorized to perform this operation")
    }

    /// Counts the request against the organization's minute and day; a spent allowance answers 429.
    private func charge() -> HTTPServerResponse? {
        let now = clock.now()
        return state.withLock { s -> HTTPServerResponse? in
            if now.timeIntervalSince(s.minuteStart) >= 60 { s.minuteStart = now; s.minuteCount = 0 }
            if now.timeIntervalSince(s.dayStart) >= 86_400 { s.dayStart = now; s.dayCount = 0 }
            if s.dayCount >= options.perDayLimit {
                return Self.error(429, 45, "You have reached the maximum number of API calls allowed for the day "
                    + "(\(options.perDayLimit)) for your organization.")
            }
            if s.minuteCount >= options.perMinuteLimit {
                return Self.error(429, 44, "You have made too many requests. The limit is \(options.perMinuteLimit) "
                    + "requests per minute per organization.")
            }
            s.minuteCount += 1
            s.dayCount += 1
            return nil
        }
    }

    private func list(module: String, idField: String, query: [String: String]) -> HTTPServerResponse {
        let column = query["sort_column"] ?? "created_time"
        guard column == "last_modified_time" || column == "created_time" else {
            return Self.error(400, 2, "Invalid value passed for sort_column")
        }
        let descending = (query["sort_order"] ?? "D") == "D"
        let page = max(1, Int(query["page"] ?? "1") ?? 1)
        let perPage = min(max(1, Int(query["per_page"] ?? "200") ?? 200), options.maxPerPage)
        let (records, poison) = state.withLock { s in (Array((s.modules[module] ?? [:]).values), s.poison) }
        let sorted = records.sorted { a, b in
            let ka = column == "created_time" ? a.createdAt : a.modifiedAt
            let kb = column == "created_time" ? b.createdAt : b.modifiedAt
            if ka != kb { return descending ? ka > kb : ka < kb }
            return descending ? a.id > b.id : a.id < b.id
        }
        let start = min((page - 1) * perPage, sorted.count)
        let end = min(start + perPage, sorted.count)
        var rows: [String] = []
        for record in sorted[start..<end] {
            if let raw = poison[module + "/" + record.id] { rows.append(raw); continue }
            rows.append(render(record, idField: idField).serialized())
        }
        let context = JSONValue.object(JSONObject([
            ("page", .integer(Int64(page))), ("per_page", .integer(Int64(perPage))),
            ("has_more_page", .bool(end < sorted.count)), ("report_name", .string(module.capitalized)),
            ("sort_column", .string(column)), ("sort_order", .string(descending ? "D" : "A")),
        ]))
        let body = "{\"code\":0,\"message\":\"success\",\"\(module)\":[" + rows.joined(separator: ",")
            + "],\"page_context\":" + context.serialized() + "}"
        return .json(Array(body.utf8))
    }

    func render(_ record: Record, idField: String) -> JSONValue {
        var object = JSONObject([(idField, .string(record.id))])
        for (key, value) in record.fields { object[key] = value }
        object["created_time"] = .string(ZohoTimeText.format(record.createdAt, offsetSeconds: options.utcOffsetSeconds))
        object["last_modified_time"] = .string(ZohoTimeText.format(record.modifiedAt, offsetSeconds: options.utcOffsetSeconds))
        return .object(object)
    }

    // MARK: Helpers

    static func error(_ status: Int, _ code: Int, _ message: String) -> HTTPServerResponse {
        .json(JSONValue.object(JSONObject([("code", .integer(Int64(code))), ("message", .string(message))])).serializedBytes(),
              status: status)
    }

    static func second(_ date: Date) -> Date { Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down)) }
}

/// Zoho's time form, `2026-11-29T10:15:30+0530`, written the emulator's own way (the adapter parses it).
enum ZohoTimeText {
    static func format(_ date: Date, offsetSeconds: Int) -> String {
        let local = Timestamps.rfc3339(date.addingTimeInterval(Double(offsetSeconds)))
        let minutes = abs(offsetSeconds) / 60
        return String(local.dropLast()) + (offsetSeconds < 0 ? "-" : "+") + String(format: "%02d%02d", minutes / 60, minutes % 60)
    }
}

/// Breaks the emulator ↔ server cycle: the server's handler holds the emulator weakly.
private final class ZohoWeakBox: Sendable {
    private let value = Mutex<WeakRef?>(nil)
    private struct WeakRef: @unchecked Sendable { weak var emulator: ZohoBooksEmulator? }
    func set(_ emulator: ZohoBooksEmulator) { value.withLock { $0 = WeakRef(emulator: emulator) } }
    func get() -> ZohoBooksEmulator? { value.withLock { $0?.emulator } }
}
