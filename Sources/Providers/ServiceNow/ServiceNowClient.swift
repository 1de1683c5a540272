// One ServiceNow instance as seen by deltahook: Table API reads with auth, error classification and
// rate-limit handling shared by every object of the connection (limits are per user, docs/DESIGN.md §2 rule 10).
import Foundation
public import Core
import HTTPClient

/// One Table API page as returned: the rows the caller may see (after ACLs), and what the instance
/// announced about the rows matching the query (before ACLs).
public struct ServiceNowTablePage: Sendable {
    /// Each row of `result`, parsed on its own when the page as a whole is not valid JSON (a `1e999`, invalid
    /// UTF-8 in one row), so one bad row is rejected instead of failing the page (docs/DESIGN.md §2 rule 16).
    public var records: [RecordElement]
    /// `X-Total-Count`: rows matching the query, counted before ACLs filter the page.
    public var totalCount: Int?
    /// The `Link` header has `rel="next"`.
    public var hasNextLink: Bool

    public init(records: [RecordElement], totalCount: Int?, hasNextLink: Bool) {
        self.records = records
        self.totalCount = totalCount
        self.hasNextLink = hasNextLink
    }

    /// More rows exist past this page (`offset + limit`), per the instance's own count or `next` link.
    public func announcesMore(offset: Int, limit: Int) -> Bool {
        if let totalCount { return totalCount > offset + limit }
        return hasNextLink
    }
}

/// What a single-record read (`GET /api/now/table/{table}/{sys_id}`) answered.
public enum ServiceNowRecordAnswer: Sendable {
    case record(JSONValue)
    /// 404 "No Record found": deleted (or hidden from the integration user).
    case notFound
    /// The record came back but is not valid JSON on its own (docs/DESIGN.md §2 rule 16).
    case unparseable(RejectedRecord)
}

public final class ServiceNowClient: Sendable {
    public let http: ProviderHTTP
    /// Instance URL without a trailing slash.
    public let baseURL: String
    public let authenticator: ServiceNowAuthenticator
    /// Shared by all objects of the connection: consecutive header-less 429s grow the wait.
    public let backoff: RateLimitBackoff

    static let hibernationAdvice = "a hibernating ServiceNow developer instance does this — wake it from "
        + "developer.servicenow.com — otherwise check that base_url is the instance URL (https://<name>.service-now.com)"

    public init(http: ProviderHTTP, baseURL: String, authenticator: ServiceNowAuthenticator,
                backoff: RateLimitBackoff = RateLimitBackoff()) {
        self.http = http
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.authenticator = authenticator
        self.backoff = backoff
    }

    /// `GET /api/now/table/{table}?…` with raw values. `params` are the sysparm_* parameters (not encoded).
    /// A 401 with OAuth invalidates the token and retries once with a fresh one; every other failure is
    /// classified into a `ProviderError` naming the connection and table.
    public func getTable(_ table: String, params: [(String, String)]) async throws -> ServiceNowTablePage {
        let url = "\(baseURL)/api/now/table/\(table)?\(ServiceNowQuery.queryString(params))"
        let context = "\(http.connection) \(table)"
        let (response, refreshed) = try await send(url)
        return try interpret(response, context: context, afterRefresh: refreshed)
    }

    /// `GET /api/now/table/{table}/{sys_id}?…` (wire facts §1.1: the body is `{"result": {...}}`, an object). The
    /// caller has checked `sysID` against the sys_id grammar (docs/DESIGN.md §2 rule 15). A 404 with ServiceNow's
    /// "No Record found" envelope ("Record doesn't exist or ACL restricts the record retrieval") means gone;
    /// every other failure is classified as for `getTable`.
    public func getRecord(_ table: String, sysID: String, params: [(String, String)]) async throws
        -> ServiceNowRecordAnswer
    {
        let url = "\(baseURL)/api/now/table/\(table)/\(sysID)?\(ServiceNowQuery.queryString(params))"
        let context = "\(http.connection) \(table)/\(sysID)"
        let (response, refreshed) = try await send(url)
        switch response.status {
        case 200:
            backoff.reset()
            guard !Self.looksLikeHTML(response) else {
                throw ProviderError.http(status: 200, message: "\(context): the instance answered with an HTML page "
                                         + "instead of JSON; " + Self.hibernationAdvice)
            }
            if let body = try? JSONValue.parse(response.body) {
                guard let result = body["result"], case .object = result else {
                    throw ProviderError.malformed(path: "$.result", message: "\(context): expected a record object, found "
                                                  + (body["result"]?.typeName ?? "nothing"))
                }
                return .record(result)
            }
            // Not strict JSON. A whole envelope whose record does not parse on its own (a `1e999`, invalid UTF-8) is
            // one poison record (rule 16); a truncated or non-JSON body stays an error and is retried.
            let scanner = StructureScanner(bytes: response.body)
            guard let range = try? scanner.locate(["result"]), response.body[range.lowerBound] == UInt8(ascii: "{") else {
                throw ProviderError.malformed(path: "$", message: "\(context): the response is not valid JSON")
            }
            return .unparseable(RejectedRecord(
                id: sysID, position: "$.result", reason: "$.result: the record is not valid JSON on its own",
                rawExcerpt: String(decoding: response.body[range], as: UTF8.self)))
        case 404 where Self.errorText(response).message == "No Record found":
            backoff.reset()
            return .notFound
        default:
            // Every other status is an error; interpret throws it with the same words as for a table read.
            _ = try interpret(response, context: context, afterRefresh: refreshed)
            throw ProviderError.http(status: response.status, message: "\(context): \(Self.errorText(response).text)")
        }
    }

    /// Sends a GET with the current authorization. A 401 with OAuth invalidates the token and retries once with a
    /// fresh one (docs/DESIGN.md §2 rule 11); `refreshed` says whether that happened, for the error hint.
    private func send(_ url: String) async throws -> (response: ProviderResponse, refreshed: Bool) {
        var refreshed = false
        while true {
            try Task.checkCancellation()
            let auth = try await authenticator.authorization()
            let response = try await http.send(url: url, headers: [("Accept", "application/json"),
                                                                   ("Authorization", auth.header)])
            if response.status == 401, await authenticator.usesOAuth, !refreshed {
                refreshed = true
                await authenticator.rejected(token: auth.token)
                continue
            }
            return (response, refreshed)
        }
    }

    private func interpret(_ response: ProviderResponse, context: String, afterRefresh: Bool) throws -> ServiceNowTablePage {
        let status = response.status
        if status == 200 {
            backoff.reset()
            guard !Self.looksLikeHTML(response) else {
                throw ProviderError.http(status: 200, message: "\(context): the instance answered with an HTML page "
                                         + "instead of JSON; " + Self.hibernationAdvice)
            }
            let (body, rows) = try RecordArrayParser.parse(response.body, recordsPath: ["result"], pathText: "$.result",
                                                           idPath: ["sys_id"], context: context)
            guard case .array? = body["result"] else {
                throw ProviderError.malformed(path: "$.result", message: "\(context): expected an array of records, found "
                                              + (body["result"]?.typeName ?? "nothing"))
            }
            let total = response.headers["x-total-count"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            let links = LinkHeader.parse(response.headers.values("link"))
            return ServiceNowTablePage(records: rows, totalCount: total, hasNextLink: links["next"] != nil)
        }
        let envelope = Self.errorText(response)
        switch status {
        case 404 where envelope.message == "No Record found":
            // v1 semantics for an empty result set (wire facts §1.4, KB0551763): not an error.
            backoff.reset()
            return ServiceNowTablePage(records: [], totalCount: 0, hasNextLink: false)
        case 401:
            let hint = afterRefresh
                ? "a freshly issued OAuth token was refused: check that the OAuth application's user is active and has "
                    + "the rest_service / web service access it needs"
                : "check username and password; the user must be active, not locked out, and allowed web service access "
                    + "(an MFA user gets X-MFA_TOKEN: invalid)"
            throw ProviderError.authentication(message: "\(context): HTTP 401 \(envelope.text)", hint: hint)
        case 403:
            throw ProviderError.permission(message: "\(context): \(envelope.text) — grant the integration user read "
                                           + "access (a role with table.read ACLs) or remove the object from the config")
        case 400 where envelope.message.hasPrefix("Invalid table"):
            throw ProviderError.configuration(message: "\(context): \(envelope.text) — the object name must be the "
                                              + "table's name (e.g. incident, sys_user), not its label")
        case 400 where envelope.message == "Requested URI does not represent any resource":
            throw ProviderError.configuration(message: "\(context): \(envelope.text) — base_url must be the instance "
                                              + "root (https://<name>.service-now.com), without a path")
        case 429:
            // Exact (docs/DESIGN.md §2 rule 9) but bounded by max_provider_wait (rule 12): ServiceNow rate-limit rules are
            // per hour (wire facts §1.7), so a longer value is a broken header, not a reason to stop for days.
            if let wait = http.retryAfter(response.headers) {
                throw ProviderError.rateLimited(retryAfter: wait, message: "\(context): \(envelope.text)")
            }
            if let wait = http.waits.untilEpoch(response.headers, header: "x-ratelimit-reset") {
                throw ProviderError.rateLimited(retryAfter: wait, message: "\(context): \(envelope.text)")
            }
            // No rate-limit rule headers (the usual case, wire facts §1.7): exponential backoff with jitter.
            throw ProviderError.rateLimited(retryAfter: http.waits.bounded(backoff.nextWait(), source: "429 backoff"),
                                            message: "\(context): \(envelope.text) (no Retry-After; backing off)")
        default:
            throw ProviderError.http(status: status, message: "\(context): \(envelope.text)")
        }
    }

    /// `{"error":{"message","detail"},"status":"failure"}` (detail may be null, wire facts §1.6), or an
    /// excerpt of whatever else came back.
    static func errorText(_ response: ProviderResponse) -> (message: String, text: String) {
        if let body = try? JSONValue.parse(response.body), let error = body["error"] {
            let message = error["message"]?.stringValue ?? ""
            let detail = error["detail"]?.stringValue ?? ""
            let text = [message, detail].filter { !$0.isEmpty }.joined(separator: ": ")
            if !text.isEmpty { return (message, text) }
        }
        let excerpt = ProviderHTTP.excerpt(response.body)
        return ("", excerpt.isEmpty ? "(empty body)" : excerpt)
    }

    /// ServiceNow serves JSON as `application/json;charset=UTF-8`; an HTML page (hibernation, SSO login,
    /// a proxy) is recognised by its content type or its first byte.
    static func looksLikeHTML(_ response: ProviderResponse) -> Bool {
        if let type = response.headers["content-type"]?.lowercased(), type.contains("html") { return true }
        let first = response.body.first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }
        return first == UInt8(ascii: "<")
    }
}
