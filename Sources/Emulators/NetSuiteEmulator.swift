// A local NetSuite SuiteQL REST endpoint for tests and `deltahook demo` (provider-wire-facts §2).
//
// What it reproduces, because an adapter tested against it must behave the same against NetSuite:
// - Token-Based Authentication verified the way NetSuite does it (OAuth 1.0a HMAC-SHA256 recomputed from the
//   consumer and token secrets it knows; realm in the header but not the base string; query parameters signed,
//   body not); any failure is 401 with `INVALID_LOGIN` in `o:errorDetails`.
// - `POST /services/rest/query/v1/suiteql?limit&offset` with `Prefer: transient`; limit ≤ 1000, offset a
//   multiple of limit, at most `rowCap` (100,000) rows per query: rows past the cap are not returned and
//   `offset + limit > rowCap` is an error.
// - Response `{links, count, hasMore, items, offset, totalResults}`, every value a string, keys lower-case,
//   each item starting with `"links":[]`; date-time columns in the user's preference format
//   (`M/D/YYYY h:mm am`, minutes only, account zone) unless TO_CHAR is used.
// - TO_TIMESTAMP literals read in the account's time zone; a spring-forward gap is a 400, an ambiguous
//   fall-back reading resolves to the earlier instant (or the later one, configurable: NetSuite's choice is
//   undocumented).
// - The per-account concurrency limit: more than `concurrencyLimit` requests in flight get NetSuite's 429
//   (`"title":"Bad Request"`, `CONCURRENCY_LIMIT_EXCEEDED`). `responseDelay` makes requests slow enough to
//   provoke it; `maxObservedConcurrency` reports the peak.
public import Foundation
import Crypto
import HTTPServer
import Core
import Synchronization

public final class NetSuiteEmulator: Sendable {
    struct Row {
        var id: Int64
        var columns: [(name: String, value: NetSuiteValue)]

        func value(_ name: String) -> NetSuiteValue? {
            for column in columns where column.name == name { return column.value }
            return nil
        }

        mutating func set(_ name: String, _ value: NetSuiteValue?) {
            if let index = columns.firstIndex(where: { $0.name == name }) {
                if let value { columns[index].value = value } else { columns.remove(at: index) }
            } else if let value {
                columns.append((name, value))
            }
        }
    }

    struct Table {
        var rows: [Int64: Row] = [:]
        var sorted: [String: [Row]] = [:]
    }

    struct State {
        var options: Options
        var tables: [String: Table] = [:]
        var nextDeletedID: Int64 = 1
        var inFlight = 0
        var stats = Stats()
        /// `Retry-After` texts of queued 429 answers (nil: no header), one per request.
        var rateLimits: [String?] = []
        var nonces: Set<String> = []
    }

    private let state: Mutex<State>
    private let listener: EmulatorListener<NetSuiteEmulator>
    /// `http://127.0.0.1:<port>`: pass as the connection's `base_url`.
    public let baseURL: String

    public init(options: Options) throws {
        state = Mutex(State(options: options))
        listener = try EmulatorListener { emulator, request in await emulator.handle(request) }
        baseURL = listener.baseURL
        listener.attach(self)
    }

    /// Stops the HTTP server. Safe to call twice.
    public func stop() { listener.stop() }

    public var stats: Stats { state.withLock { $0.stats } }

    /// The next `count` requests get NetSuite's 429 with `Retry-After: retryAfter` exactly as given (nil: no header),
    /// for hostile values such as `99999999999999999999` (docs/DESIGN.md §2 rule 12).
    public func rateLimitNext(retryAfter: String?, times count: Int = 1) {
        state.withLock { $0.rateLimits += Array(repeating: retryAfter, count: count) }
    }

    /// Changes the options at run time (concurrency limit, delay, secrets, …).
    public func configure(_ change: @Sendable (inout Options) -> Void) { state.withLock { change(&$0.options) } }

    // MARK: mutation API

    /// Inserts or updates a row; `fields` are merged over the existing columns. Keys are lower-cased.
    public func upsert(_ table: String, id: Int64, modifiedAt: Date, fields: [(String, NetSuiteValue)] = []) {
        state.withLock { s in Self.upsert(&s, table: table.lowercased(), id: id, modifiedAt: modifiedAt, fields: fields) }
    }

    /// Inserts or updates many rows at once (one lock, one cache invalidation).
    public func upsertMany(_ table: String, rows: [(id: Int64, modifiedAt: Date, fields: [(String, NetSuiteValue)])]) {
        state.withLock { s in
            for row in rows { Self.upsert(&s, table: table.lowercased(), id: row.id, modifiedAt: row.modifiedAt, fields: row.fields) }
        }
    }

    /// Like `upsert(_:id:modifiedAt:fields:)` with the modification time given as an account-local reading
    /// (`YYYY-MM-DD HH:MM:SS`); `reading` picks the instant inside a repeated hour. Throws for a skipped time.
    @discardableResult
    public func upsert(_ table: String, id: Int64, modifiedLocal: String, reading: AmbiguousReading = .earlier,
                       fields: [(String, NetSuiteValue)] = []) throws -> Date {
        let zone = state.withLock { $0.options.timeZone }
        guard let naive = Timestamps.parseSQLStyle(modifiedLocal) else {
            throw SuiteQLError(message: "\(modifiedLocal) is not YYYY-MM-DD HH:MM:SS")
        }
        let all = Self.readings(naive, zone: zone)
        guard let instant = reading == .earlier ? all.first : all.last else {
            throw SuiteQLError(message: "\(modifiedLocal) does not exist in \(zone.identifier) (DST gap)")
        }
        upsert(table, id: id, modifiedAt: instant, fields: fields)
        return instant
    }

    /// Deletes a row and records it in `DeletedRecord` with `type` = `recordType` (default: the table name).
    public func delete(_ table: String, id: Int64, at deletedAt: Date, recordType: String? = nil) {
        state.withLock { s in
            let name = table.lowercased()
            guard s.tables[name]?.rows.removeValue(forKey: id) != nil else { return }
            s.tables[name]?.sorted = [:]
            let deletedID = s.nextDeletedID
            s.nextDeletedID += 1
            if s.tables["deletedrecord"] == nil { s.tables["deletedrecord"] = Table() }
            s.tables["deletedrecord"]?.rows[deletedID] = Row(id: deletedID, columns: [
                ("id", .number(deletedID)), ("recordid", .number(id)), ("type", .text(recordType ?? name)),
                ("deleteddate", .instant(deletedAt)), ("deletedby", .text("-4")), ("context", .text("UI")),
            ])
            s.tables["deletedrecord"]?.sorted = [:]
        }
    }

    /// Removes a row WITHOUT a DeletedRecord entry (a delete only reconciliation can find).
    public func purge(_ table: String, id: Int64) {
        state.withLock { s in
            s.tables[table.lowercased()]?.rows[id] = nil
            s.tables[table.lowercased()]?.sorted = [:]
        }
    }

    public func rowCount(_ table: String) -> Int { state.withLock { $0.tables[table.lowercased()]?.rows.count ?? 0 } }

    static func upsert(_ s: inout State, table: String, id: Int64, modifiedAt: Date, fields: [(String, NetSuiteValue)]) {
        // Mutated in place (no copy of the table per row: 120,000 upserts must stay linear).
        if s.tables[table] == nil { s.tables[table] = Table() }
        var row = s.tables[table]?.rows[id] ?? Row(id: id, columns: [("id", .number(id))])
        for (name, value) in fields where name.lowercased() != "id" { row.set(name.lowercased(), value) }
        row.set("lastmodifieddate", .instant(Date(timeIntervalSince1970: modifiedAt.timeIntervalSince1970.rounded(.down))))
        s.tables[table]?.rows[id] = row
        if s.tables[table]?.sorted.isEmpty == false { s.tables[table]?.sorted = [:] }
    }

    // MARK: time

    static func readings(_ naive: Date, zone: TimeZone) -> [Date] {
        let offsets = Set([-86_400.0, -10_800, 0, 10_800, 86_400].map { zone.secondsFromGMT(for: naive.addingTimeInterval($0)) })
        return offsets.map { naive.addingTimeInterval(-Double($0)) }
            .filter { Double(zone.secondsFromGMT(for: $0)) == naive.timeIntervalSince($0) }
            .sorted()
    }

    /// NetSuite's default-looking date-time preference: `11/1/2026 1:30 am` (no seconds), in the account zone.
    static func preferenceFormat(_ date: Date, zone: TimeZone) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
        let hour = c.hour ?? 0
        let h12 = hour % 12 == 0 ? 12 : hour % 12
        return "\(c.month ?? 0)/\(c.day ?? 0)/\(c.year ?? 0) \(h12):\(String(format: "%02d", c.minute ?? 0)) \(hour < 12 ? "am" : "pm")"
    }

    // MARK: HTTP

    static let suiteQLPath = "/services/rest/query/v1/suiteql"
    static let errorType = "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html"

    static func errorResponse(status: Int, title: String, code: String, detail: String,
                              topLevelCode: String? = nil) -> HTTPServerResponse {
        var members: [(String, JSONValue)] = [("type", .string(errorType)), ("title", .string(title)),
                                              ("status", .integer(Int64(status)))]
        if let topLevelCode { members.append(("o:errorCode", .string(topLevelCode))) }
        members.append(("o:errorDetails", .array([.object(JSONObject([("detail", .string(detail)),
                                                                     ("o:errorCode", .string(code))]))])))
        return .json(JSONValue.object(JSONObject(members)).serializedBytes(), status: status)
    }

    static func invalidLogin() -> HTTPServerResponse {
        errorResponse(status: 401, title: "Unauthorized", code: "INVALID_LOGIN",
                      detail: "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail.")
    }

    static func badQuery(_ message: String) -> HTTPServerResponse {
        errorResponse(status: 400, title: "Bad Request", code: "INVALID_PARAMETER",
                      detail: "Invalid search query. Detailed unprocessed description follows. Search error occurred: \(message)")
    }

    func handle(_ request: HTTPServerRequest) async -> HTTPServerResponse {
        // Optional of Optional: .none = nothing queued, .some(nil) = a 429 without Retry-After.
        let queued: String?? = state.withLock { s -> String?? in
            if s.rateLimits.isEmpty { return .none }
            return .some(s.rateLimits.removeFirst())
        }
        if case .some(let retryAfter) = queued {
            var response = Self.errorResponse(status: 429, title: "Bad Request", code: "CONCURRENCY_LIMIT_EXCEEDED",
                                              detail: "Concurrent request limit exceeded. Request blocked.",
                                              topLevelCode: "USER_ERROR")
            if let retryAfter { response.headers.append(("Retry-After", retryAfter)) }
            return response
        }
        let (admitted, delay) = state.withLock { s -> (Bool, Duration) in
            s.stats.requests += 1
            s.inFlight += 1
            s.stats.maxObservedConcurrency = max(s.stats.maxObservedConcurrency, s.inFlight)
            if s.inFlight > s.options.concurrencyLimit {
                s.stats.concurrencyRejections += 1
                return (false, s.options.responseDelay)
            }
            return (true, s.options.responseDelay)
        }
        defer { state.withLock { $0.inFlight -= 1 } }
        if delay > .zero { try? await Task.sleep(for: delay) }
        guard admitted else {
            return Self.errorResponse(status: 429, title: "Bad Request", code: "CONCURRENCY_LIMIT_EXCEEDED",
                                      detail: "Concurrent request limit exceeded. Request blocked.", topLevelCode: "USER_ERROR")
        }
        guard request.path == Self.suiteQLPath else {
            return Self.errorResponse(status: 404, title: "Not Found", code: "NONEXISTENT_ID",
                                      detail: "The emulator serves only \(Self.suiteQLPath).")
        }
        guard request.method == "POST" else {
            return Self.errorResponse(status: 405, title: "Method Not Allowed", code: "INVALID_REQUEST",
                                      detail: "SuiteQL queries are POSTed.")
        }
        guard authenticate(request) else {
            state.withLock { $0.stats.authenticationFailures += 1 }
            return Self.invalidLogin()
        }
        guard request.headers["prefer"]?.lowercased() == "transient" else {
            return Self.errorResponse(status: 400, title: "Bad Request", code: "INVALID_REQUEST",
                                      detail: "The 'Prefer: transient' header is required for SuiteQL queries.")
        }
        let limitText = request.queryValue("limit") ?? "1000"
        let offsetText = request.queryValue("offset") ?? "0"
        guard let limit = Int(limitText), (1...1000).contains(limit), let offset = Int(offsetText), offset >= 0 else {
            return Self.errorResponse(status: 400, title: "Bad Request", code: "INVALID_PARAMETER",
                                      detail: "Invalid limit or offset: limit must be 1-1000 (limit=\(limitText), offset=\(offsetText)).")
        }
        guard offset % limit == 0 else {
            return Self.errorResponse(status: 400, title: "Bad Request", code: "INVALID_PARAMETER",
                                      detail: "Invalid offset: the offset must be a multiple of the limit (Offset=\(offset), Limit=\(limit)).")
        }
        guard let body = try? JSONValue.parse(request.body), let sql = body["q"]?.stringValue else {
            return Self.errorResponse(status: 400, title: "Bad Request", code: "INVALID_CONTENT",
                                      detail: "The request body must be a JSON object with a \"q\" string.")
        }
        state.withLock { $0.stats.queries.append(sql) }
        let query: SuiteQLQuery
        do { query = try SuiteQLParser.parse(sql) } catch {
            return Self.badQuery("\(error)")
        }
        return state.withLock { s -> HTTPServerResponse in
            guard offset + limit <= s.options.rowCap else {
                return Self.errorResponse(status: 400, title: "Bad Request", code: "INVALID_PARAMETER",
                                          detail: "Invalid offset: a query returns at most \(s.options.rowCap) rows (offset \(offset) + limit \(limit)).")
            }
            do {
                let response = try Self.execute(query, in: &s, limit: limit, offset: offset, selfURL: baseURL + request.target)
                s.stats.succeeded += 1
                return response
            } catch {
                return Self.badQuery("\(error)")
            }
        }
    }

    /// NetSuite TBA: realm must be the account (upper-case, underscore); consumer key and token must be known;
    /// the signature is recomputed over the request URL the client used (this server's base URL + target).
    func authenticate(_ request: HTTPServerRequest) -> Bool {
        let options = state.withLock { $0.options }
        guard let header = request.headers["authorization"],
              let parsed = try? OAuth1.parseAuthorizationHeader(header),
              parsed.realm == options.accountID.uppercased().replacingOccurrences(of: "-", with: "_"),
              parsed.parameters["oauth_consumer_key"] == options.consumerKey,
              parsed.parameters["oauth_token"] == options.tokenID,
              let nonce = parsed.parameters["oauth_nonce"], nonce.count >= 6,
              let stamp = parsed.parameters["oauth_timestamp"].flatMap(Double.init),
              abs(stamp - Date().timeIntervalSince1970) <= options.timestampTolerance,
              let url = URL(string: baseURL + request.target) else { return false }
        do {
            try OAuth1.verify(method: request.method, url: url, header: parsed, consumerSecret: options.consumerSecret,
                              tokenSecret: options.tokenSecret)
        } catch {
            return false
        }
        // A nonce is accepted once (replay protection).
        return state.withLock { $0.nonces.insert("\(stamp)|\(nonce)").inserted }
    }
}

/// Breaks the emulator ↔ server reference cycle: the server's handler holds the emulator weakly.