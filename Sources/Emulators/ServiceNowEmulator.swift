// A ServiceNow instance in miniature, faithful to provider-wire-facts.md §1 where deltahook depends on it:
// the Table API (`/api/now/table`, v1 and v2 paths), `/oauth_token.do` with three grants and expiring tokens,
// `sys_audit_delete`, ACL-filtered short pages, and the failure modes (429 with and without headers, the
// error envelope, HTML from a hibernating instance). Tests drive it through a mutation API with explicit
// `sys_updated_on` values and fault hooks; anything it does not model is answered 400 and recorded.
// Not modelled: display values (with sysparm_display_value=true|all the raw value stands in for the display
// text, in the documented shapes), dot-walked fields, HEAD/POST/PATCH/DELETE on the Table API, users' time zones.
public import Foundation
import HTTPServer
import Core
import Crypto
import Synchronization

public final class ServiceNowEmulator: Sendable {
    struct Table {
        var name: String
        var columns: [String]
        var references: [String: String]
        var dateTimeColumns: Set<String>
        var auditDeletes: Bool
        var rows: [String: [String: String]] = [:]
        var insertionOrder: [String] = []
        var hidden: Set<String> = []
        /// Rows a before-query business rule filters out of every query (see `setHiddenByQueryRule`).
        var queryRuleHidden: Set<String> = []
        var forbidden = false
    }

    struct State {
        var tables: [String: Table] = [:]
        var tokens: [String: Date] = [:]
        var refreshTokens: Set<String>
        var clientCredentialsEnabled: Bool
        var faults: [Fault] = []
        var hook: (@Sendable (TableRequest) -> Void)?
        var tableRequests = 0
        var log: [LoggedRequest] = []
        var rejected: [String] = []
        var tokenGrants: [String] = []
        var issuedTokens: [String] = []
        var idCounter = 0
    }

    let state: Mutex<State>
    let options: Options
    private let server: Mutex<HTTPServer?> = Mutex(nil)

    public init(options: Options = Options()) throws {
        self.options = options
        state = Mutex(State(refreshTokens: options.refreshTokens, clientCredentialsEnabled: options.clientCredentialsEnabled))
        state.withLock { s in
            for table in Self.standardTables { s.tables[table.name] = table }
        }
        let created = try HTTPServer(handling: .sync { [weak self] request in
            guard let self else { return .text("emulator gone", status: 503) }
            return self.handle(request)
        })
        server.withLock { $0 = created }
    }

    /// `http://127.0.0.1:<port>`: the instance URL to configure as `base_url`.
    public var baseURL: String { server.withLock { $0?.baseURL ?? "" } }

    /// Stops the server. Always call it (tests: in a `defer`).
    public func stop() {
        let current = server.withLock { $0 }
        current?.stop()
    }

    // MARK: - Schema

    private static let systemColumns = ["sys_id", "sys_created_on", "sys_created_by", "sys_updated_on", "sys_updated_by",
                                        "sys_mod_count"]
    private static let systemDateTimes: Set<String> = ["sys_created_on", "sys_updated_on"]

    private static var standardTables: [Table] {
        [
            Table(name: "incident",
                  columns: systemColumns + ["number", "short_description", "description", "state", "priority", "impact",
                                            "urgency", "category", "active", "assigned_to", "assignment_group", "caller_id",
                                            "opened_at", "resolved_at", "closed_at"],
                  references: ["assigned_to": "sys_user", "assignment_group": "sys_user_group", "caller_id": "sys_user"],
                  dateTimeColumns: systemDateTimes.union(["opened_at", "resolved_at", "closed_at"]), auditDeletes: true),
            Table(name: "sys_user",
                  columns: systemColumns + ["user_name", "name", "first_name", "last_name", "email", "title", "phone",
                                            "mobile_phone", "active", "department", "manager"],
                  references: ["department": "cmn_department", "manager": "sys_user"],
                  dateTimeColumns: systemDateTimes, auditDeletes: true),
            Table(name: "sys_user_group",
                  columns: systemColumns + ["name", "description", "email", "active", "manager", "parent"],
                  references: ["manager": "sys_user", "parent": "sys_user_group"],
                  dateTimeColumns: systemDateTimes, auditDeletes: true),
            Table(name: "sys_audit_delete",
                  columns: systemColumns + ["tablename", "documentkey", "display_value"],
                  references: [:], dateTimeColumns: systemDateTimes, auditDeletes: false),
        ]
    }

    /// Adds a table. `references` maps reference columns to the table they point at; `dateTimes` lists the
    /// datetime columns besides sys_created_on/sys_updated_on; `auditDeletes` false models a table whose
    /// deletes leave no `sys_audit_delete` row (dictionary attribute no_audit_delete).
    public func createTable(_ name: String, columns: [String], references: [String: String] = [:],
                            dateTimes: Set<String> = [], auditDeletes: Bool = true) {
        state.withLock { s in
            var all = Self.systemColumns
            for column in columns where !all.contains(column) { all.append(column) }
            s.tables[name] = Table(name: name, columns: all, references: references,
                                   dateTimeColumns: Self.systemDateTimes.union(dateTimes), auditDeletes: auditDeletes)
        }
    }

    /// Whether deletes on `table` are written to `sys_audit_delete`.
    public func setAuditDeletes(_ table: String, _ audited: Bool) {
        state.withLock { $0.tables[table]?.auditDeletes = audited }
    }

    // MARK: - Mutations (tests)

    /// Inserts a record with `sys_created_on = sys_updated_on = at`. Unset columns are "" (never null).
    /// Returns its sys_id (random-looking 32 hex, so id order differs from insertion order). `sysID` may be any
    /// text — a hostile `abc^ORsys_id>0` included — and `at` any instant (a record dated 2099), to test that the
    /// adapter never puts an unchecked id into a query (docs/DESIGN.md §2 rules 14, 15).
    @discardableResult
    public func insert(_ table: String, _ fields: [String: String], at: Date, sysID: String? = nil,
                       by user: String = "admin") throws -> String {
        try state.withLock { s throws(EmulatorError) -> String in
            guard var t = s.tables[table] else { throw EmulatorError(description: "no table \(table)") }
            let id: String
            if let sysID { id = sysID } else {
                s.idCounter += 1
                id = String(Digest.sha256Hex("sys_id \(s.idCounter) \(table)").prefix(32))
            }
            guard t.rows[id] == nil else { throw EmulatorError(description: "\(table) already has \(id)") }
            for column in fields.keys where !t.columns.contains(column) { t.columns.append(column) }
            var row: [String: String] = [:]
            for column in t.columns { row[column] = fields[column] ?? "" }
            let stamp = Self.stamp(at)
            row["sys_id"] = id
            row["sys_created_on"] = stamp
            row["sys_updated_on"] = stamp
            row["sys_created_by"] = user
            row["sys_updated_by"] = user
            row["sys_mod_count"] = "0"
            t.rows[id] = row
            t.insertionOrder.append(id)
            s.tables[table] = t
            return id
        }
    }

    /// Updates fields and sets `sys_updated_on = at`, bumping `sys_mod_count` (every value stays a string).
    public func update(_ table: String, _ sysID: String, _ fields: [String: String], at: Date,
                       by user: String = "admin") throws {
        try state.withLock { s throws(EmulatorError) in
            guard var t = s.tables[table], var row = t.rows[sysID] else {
                throw EmulatorError(description: "no \(table) record \(sysID)")
            }
            for (column, value) in fields {
                if !t.columns.contains(column) { t.columns.append(column) }
                row[column] = value
            }
            row["sys_updated_on"] = Self.stamp(at)
            row["sys_updated_by"] = user
            row["sys_mod_count"] = String((Int(row["sys_mod_count"] ?? "0") ?? 0) + 1)
            t.rows[sysID] = row
            s.tables[table] = t
        }
    }

    /// Deletes a record; an audited table gets a `sys_audit_delete` row (tablename, documentkey,
    /// sys_created_on = at).
    public func delete(_ table: String, _ sysID: String, at: Date, by user: String = "admin") throws {
        let audited = try state.withLock { s throws(EmulatorError) -> Bool in
            guard var t = s.tables[table], let row = t.rows.removeValue(forKey: sysID) else {
                throw EmulatorError(description: "no \(table) record \(sysID)")
            }
            t.insertionOrder.removeAll { $0 == sysID }
            t.hidden.remove(sysID)
            t.queryRuleHidden.remove(sysID)
            s.tables[table] = t
            _ = row
            return t.auditDeletes
        }
        if audited {
            try insert("sys_audit_delete", ["tablename": table, "documentkey": sysID, "display_value": sysID],
                       at: at, by: user)
        }
    }

    /// ACL simulation: hidden rows still count in `X-Total-Count` and use up `sysparm_limit`, but are cut
    /// from the page after the limit is applied (wire facts §1.2).
    public func setHidden(_ table: String, _ sysIDs: [String], _ hidden: Bool = true) {
        state.withLock { s in
            for id in sysIDs {
                if hidden { s.tables[table]?.hidden.insert(id) } else { s.tables[table]?.hidden.remove(id) }
            }
        }
    }

    /// Before-query business rule simulation: a rule adds a condition to every GlideRecord query of the table, so the
    /// rows vanish from list queries entirely (not counted in `X-Total-Count`, unlike ACL-hidden rows, and without a
    /// `sys_audit_delete` row) and a single-record GET answers 404 "No Record found" — the record is not deleted.
    /// Used to prove that a sweep run while the rule hides a record, which deletes it, is repaired by the next sweep
    /// once the rule is lifted (docs/DESIGN.md §2 rule 6a).
    public func setHiddenByQueryRule(_ table: String, _ sysIDs: [String], _ hidden: Bool = true) {
        state.withLock { s in
            for id in sysIDs {
                if hidden {
                    s.tables[table]?.queryRuleHidden.insert(id)
                } else {
                    s.tables[table]?.queryRuleHidden.remove(id)
                }
            }
        }
    }

    /// Every query on `table` answers 403 "Insufficient rights" while set.
    public func setForbidden(_ table: String, _ forbidden: Bool = true) {
        state.withLock { $0.tables[table]?.forbidden = forbidden }
    }

    /// The stored row (raw strings), or nil.
    public func row(_ table: String, _ sysID: String) -> [String: String]? {
        state.withLock { $0.tables[table]?.rows[sysID] }
    }

    /// sys_ids of `table` in insertion order.
    public func ids(_ table: String) -> [String] {
        state.withLock { $0.tables[table]?.insertionOrder ?? [] }
    }

    // MARK: - Faults and observation

    /// The next `count` Table API requests fail with `fault` (queued after earlier faults).
    public func failNext(_ fault: Fault, times count: Int = 1) {
        state.withLock { s in s.faults.append(contentsOf: Array(repeating: fault, count: count)) }
    }

    /// Called for every Table API request before it is answered, outside the emulator's lock, so the hook
    /// may mutate the emulator (an update landing between two pages of a scan).
    public func setRequestHook(_ hook: (@Sendable (TableRequest) -> Void)?) {
        state.withLock { $0.hook = hook }
    }

    /// Invalidates every access token issued so far (an expiry mid-scan without waiting for the clock).
    public func expireAllTokens() {
        state.withLock { $0.tokens.removeAll() }
    }

    public func setClientCredentialsEnabled(_ enabled: Bool) {
        state.withLock { $0.clientCredentialsEnabled = enabled }
    }

    /// Queries, paths and parameters the emulator refused because it does not model them. Tests assert
    /// this stays empty.
    public var rejectedRequests: [String] { state.withLock { $0.rejected } }
    public var requestLog: [LoggedRequest] { state.withLock { $0.log } }
    /// Table API requests only.
    public var tableRequestLog: [LoggedRequest] { state.withLock { $0.log.filter { $0.path.hasPrefix("/api/") } } }
    /// Every access and refresh token handed out so far (secrets tests grep every output for them).
    public var issuedTokens: [String] { state.withLock { $0.issuedTokens } }
    /// `grant_type` of every token request answered 200.
    public var issuedGrants: [String] { state.withLock { $0.tokenGrants } }

    // MARK: - HTTP

    private func handle(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let response: HTTPServerResponse
        if request.path == "/oauth_token.do" {
            response = request.method == "POST" ? token(request)
                : envelope(405, "Method not Supported", "only POST is allowed on /oauth_token.do")
        } else if request.path.hasPrefix("/api/now/") {
            response = table(request)
        } else {
            response = reject(request, "Requested URI does not represent any resource", status: 400)
        }
        var query: [String: String] = [:]
        for item in request.query where query[item.name] == nil { query[item.name] = item.value }
        let entry = LoggedRequest(method: request.method, path: request.path, query: query, status: response.status)
        state.withLock { $0.log.append(entry) }
        return response
    }

    func reject(_ request: HTTPServerRequest, _ message: String, status: Int = 400) -> HTTPServerResponse {
        state.withLock { $0.rejected.append("\(request.method) \(request.target): \(message)") }
        return envelope(status, message, nil)
    }

    func envelope(_ status: Int, _ message: String, _ detail: String?, headers: [(name: String, value: String)] = [])
        -> HTTPServerResponse
    {
        let detailJSON = detail.map { Self.jsonString($0) } ?? "null"
        let body = "{\"error\":{\"message\":\(Self.jsonString(message)),\"detail\":\(detailJSON)},\"status\":\"failure\"}"
        return HTTPServerResponse(status: status, headers: [("Content-Type", "application/json;charset=UTF-8")] + headers,
                                  body: Array(body.utf8))
    }

    // MARK: OAuth

    private func token(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let form = Self.parseForm(request.bodyText)
        var clientID = form["client_id"], clientSecret = form["client_secret"]
        if clientID == nil, let basic = Self.basicCredentials(request.headers["authorization"]) {
            clientID = basic.user
            clientSecret = basic.password
        }
        let denied = HTTPServerResponse(status: 401, headers: [("Content-Type", "application/json;charset=UTF-8")],
                                        body: Array("{\"error_description\":\"access_denied\",\"error\":\"server_error\"}".utf8))
        guard let clientID, let clientSecret, options.oauthClients[clientID] == clientSecret else { return denied }
        let grant = form["grant_type"] ?? ""
        var refresh: String?
        switch grant {
        case "password":
            guard let user = form["username"], let password = form["password"], options.users[user] == password else {
                return denied
            }
            refresh = Self.randomToken()
        case "refresh_token":
            guard let presented = form["refresh_token"], state.withLock({ $0.refreshTokens.contains(presented) }) else {
                return denied
            }
            if options.rotateRefreshTokens {
                state.withLock { _ = $0.refreshTokens.remove(presented) }
                refresh = Self.randomToken()
            } else {
                refresh = presented
            }
        case "client_credentials":
            guard state.withLock({ $0.clientCredentialsEnabled }) else { return denied }
        default:
            return denied
        }
        let access = Self.randomToken()
        let lifetime = options.tokenLifetime
        state.withLock { s in
            s.tokens[access] = Date().addingTimeInterval(Double(lifetime))
            s.issuedTokens.append(access)
            if let refresh { s.refreshTokens.insert(refresh); s.issuedTokens.append(refresh) }
            s.tokenGrants.append(grant)
        }
        var body = "{\"scope\":\"useraccount\",\"token_type\":\"Bearer\""
        switch options.advertisedExpiresIn {
        case nil: body += ",\"expires_in\":\(lifetime)"
        case ""?: break
        case let text?: body += ",\"expires_in\":\(text)"
        }
        if let refresh { body += ",\"refresh_token\":\(Self.jsonString(refresh))" }
        body += ",\"access_token\":\(Self.jsonString(access))}"
        return HTTPServerResponse(status: 200, headers: [("Content-Type", "application/json;charset=UTF-8")],
                                  body: Array(body.utf8))
    }

    func authorized(_ request: HTTPServerRequest) -> Bool {
        guard let header = request.headers["authorization"] else { return false }
        if header.hasPrefix("Bearer ") {
            let presented = String(header.dropFirst(7))
            return state.withLock { s in s.tokens[presented].map { Date() < $0 } ?? false }
        }
        if let basic = Self.basicCredentials(header) { return options.users[basic.user] == basic.password }
        return false
    }

    // MARK: helpers

    private static func stamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    static func stableSorted(_ rows: [[String: String]], by precedes: ([String: String], [String: String]) -> Bool?)
        -> [[String: String]]
    {
        rows.enumerated().sorted { a, b in precedes(a.element, b.element) ?? (a.offset < b.offset) }.map(\.element)
    }

    static func json(_ body: String, headers: [(name: String, value: String)] = []) -> HTTPServerResponse {
        HTTPServerResponse(status: 200, headers: [("Content-Type", "application/json;charset=UTF-8")] + headers,
                           body: Array(body.utf8))
    }

    static func jsonString(_ text: String) -> String {
        // Core's writer, so the emulator escapes strings as every other JSON deltahook renders.
        JSONValue.string(text).serialized()
    }

    private static func randomToken() -> String {
        let bytes = (try? SecureRandom.bytes(24)) ?? Array(UUID().uuidString.utf8)
        return bytes.hexString
    }

    private static func basicCredentials(_ header: String?) -> (user: String, password: String)? {
        guard let header, header.hasPrefix("Basic "),
              let data = Data(base64Encoded: String(header.dropFirst(6))),
              let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    /// `application/x-www-form-urlencoded` body → first value per name.
    static func parseForm(_ body: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = formDecode(parts[0])
            let value = parts.count > 1 ? formDecode(parts[1]) : ""
            if out[name] == nil { out[name] = value }
        }
        return out
    }

    private static func formDecode(_ text: Substring) -> String {
        let plus = text.replacingOccurrences(of: "+", with: " ")
        return plus.removingPercentEncoding ?? plus
    }
}
