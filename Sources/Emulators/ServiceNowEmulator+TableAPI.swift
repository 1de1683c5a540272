// The ServiceNow emulator's Table API handler (`/api/now/table`, v1 and v2 paths): paging, `Link` headers,
// row rendering and the injected faults. Split from ServiceNowEmulator.swift to keep each file readable.
import Foundation
import HTTPServer

extension ServiceNowEmulator {
    // MARK: Table API

    func table(_ request: HTTPServerRequest) -> HTTPServerResponse {
        // /api/now/table/{t}[/{sys_id}] or /api/now/{v1|v2}/table/{t}[/{sys_id}]
        var parts = request.path.split(separator: "/").map(String.init) // ["api","now",...]
        parts.removeFirst(min(2, parts.count))
        var version = "v2"
        if let first = parts.first, first == "v1" || first == "v2" { version = first; parts.removeFirst() }
        guard parts.count == 2 || parts.count == 3, parts[0] == "table" else {
            return reject(request, "Requested URI does not represent any resource")
        }
        guard request.method == "GET" else { return reject(request, "the emulator models GET on the Table API only") }
        let tableName = parts[1]
        var query: [String: String] = [:]
        for item in request.query {
            guard Self.knownParameters.contains(item.name) else {
                return reject(request, "parameter \(item.name) is not modelled by the emulator")
            }
            query[item.name] = item.value
        }

        let (hook, number, fault) = state.withLock { s -> ((@Sendable (TableRequest) -> Void)?, Int, Fault?) in
            s.tableRequests += 1
            let fault = s.faults.isEmpty ? nil : s.faults.removeFirst()
            return (s.hook, s.tableRequests, fault)
        }
        hook?(TableRequest(number: number, table: tableName, query: query))
        if let fault { return answer(fault, authorization: request.headers["authorization"]) }
        guard authorized(request) else {
            return envelope(401, "User Not Authenticated", "Required to provide Auth information")
        }

        return state.withLock { s -> HTTPServerResponse in
            guard let t = s.tables[tableName] else {
                return envelope(400, "Invalid table \(tableName)", "Table \(tableName) does not exist")
            }
            if t.forbidden {
                return envelope(403, "Insufficient rights to query records",
                                "Field(s) present in the query do not have permission to be read")
            }
            let display = query["sysparm_display_value"] ?? "false"
            guard ["true", "false", "all"].contains(display) else {
                s.rejected.append("\(request.target): sysparm_display_value=\(display)")
                return envelope(400, "Invalid sysparm_display_value \(display)", nil)
            }
            let excludeLinks = (query["sysparm_exclude_reference_link"] ?? "false") == "true"
            if parts.count == 3 {
                guard let row = t.rows[parts[2]], !t.hidden.contains(parts[2]), !t.queryRuleHidden.contains(parts[2]) else {
                    return envelope(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
                }
                let rendered = render(row, table: t, fields: query["sysparm_fields"], display: display, excludeLinks: excludeLinks)
                return Self.json("{\"result\":\(rendered)}")
            }
            let parsed: ServiceNowEncodedQuery
            do {
                parsed = try ServiceNowEncodedQuery.parse(
                    query["sysparm_query"] ?? "", isField: { t.columns.contains($0) },
                    isDateTime: { t.dateTimeColumns.contains($0) })
            } catch {
                let message = (error as? ServiceNowEncodedQuery.ParseError)?.message ?? "\(error)"
                s.rejected.append("\(request.target): \(message)")
                return envelope(400, "Invalid query", message)
            }
            guard let limit = Int(query["sysparm_limit"] ?? "10000"), limit > 0,
                  let offset = Int(query["sysparm_offset"] ?? "0"), offset >= 0 else {
                s.rejected.append("\(request.target): bad sysparm_limit/sysparm_offset")
                return envelope(400, "Invalid sysparm_limit or sysparm_offset", nil)
            }
            // Filter, order, count (before ACLs), apply the limit, THEN drop what ACLs hide.
            var matching = t.insertionOrder.filter { !t.queryRuleHidden.contains($0) }.compactMap { t.rows[$0] }
                .filter { parsed.matches($0) }
            if !parsed.orderBy.isEmpty {
                matching = Self.stableSorted(matching) { parsed.precedes($0, $1) }
            }
            let total = matching.count
            let window = offset < total ? Array(matching[offset..<min(total, offset + limit)]) : []
            let visible = window.filter { !t.hidden.contains($0["sys_id"] ?? "") }
            if visible.isEmpty && version == "v1" {
                return envelope(404, "No Record found",
                                "Records matching query not found. Check query parameter or offset parameter")
            }
            let rows = visible.map { render($0, table: t, fields: query["sysparm_fields"], display: display,
                                            excludeLinks: excludeLinks) }
            var headers: [(name: String, value: String)] = []
            if query["sysparm_no_count"] != "true" { headers.append(("X-Total-Count", String(total))) }
            if total > 0, query["sysparm_suppress_pagination_header"] != "true" {
                headers.append(("Link", link(request, offset: offset, limit: limit, total: total)))
            }
            return Self.json("{\"result\":[\(rows.joined(separator: ","))]}", headers: headers)
        }
    }

    private static let knownParameters: Set<String> = [
        "sysparm_query", "sysparm_limit", "sysparm_offset", "sysparm_fields", "sysparm_display_value",
        "sysparm_exclude_reference_link", "sysparm_no_count", "sysparm_suppress_pagination_header",
    ]

    private func answer(_ fault: Fault, authorization: String?) -> HTTPServerResponse {
        switch fault {
        case .unauthorizedEchoingAuthorization:
            return envelope(401, "User Not Authenticated", "Invalid credentials: \(authorization ?? "none")")
        case .rateLimited(let retryAfter?):
            let reset = Int(Date().timeIntervalSince1970) + retryAfter
            return envelope(429, "Rate limit exceeded", "Rate limit of 100 requests per hour for Table API exceeded",
                            headers: [("Retry-After", String(retryAfter)), ("X-RateLimit-Limit", "100"),
                                      ("X-RateLimit-Reset", String(reset)),
                                      ("X-RateLimit-Rule", "d3d4e1fb1b2a1010a1b2c3d4e5f60718")])
        case .rateLimited(nil):
            return envelope(429, "Rate limit exceeded", nil)
        case .error(let status, let message, let detail):
            return envelope(status, message, detail)
        case .hibernating:
            let page = "<html><head><title>Instance Hibernating page</title></head><body>Your instance is hibernating."
                + "</body></html>"
            return HTTPServerResponse(status: 200, headers: [("Content-Type", "text/html;charset=UTF-8")],
                                      body: Array(page.utf8))
        case .connectionReset:
            return .fault(.resetConnection)
        case .rateLimitedWith(let retryAfter, let reset):
            var headers: [(name: String, value: String)] = [("X-RateLimit-Limit", "100")]
            if let retryAfter { headers.append(("Retry-After", retryAfter)) }
            if let reset { headers.append(("X-RateLimit-Reset", reset)) }
            return envelope(429, "Rate limit exceeded", "Rate limit of 100 requests per hour for Table API exceeded",
                            headers: headers)
        }
    }

    /// One record as JSON: every value a string; references in the shape the parameters ask for.
    private func render(_ row: [String: String], table: Table, fields: String?, display: String, excludeLinks: Bool) -> String {
        var columns = table.columns
        if let fields {
            // Unknown names in sysparm_fields are silently ignored (wire facts §1.2).
            columns = fields.split(separator: ",").map(String.init).filter { table.columns.contains($0) }
        }
        var members: [String] = []
        for column in columns {
            let value = row[column] ?? ""
            let rendered: String
            if let target = table.references[column], !value.isEmpty {
                let link = "\(baseURL)/api/now/table/\(target)/\(value)"
                switch (display, excludeLinks) {
                case ("false", true): rendered = Self.jsonString(value)
                case ("false", false):
                    rendered = "{\"link\":\(Self.jsonString(link)),\"value\":\(Self.jsonString(value))}"
                case ("true", true): rendered = Self.jsonString(value)
                case ("true", false):
                    rendered = "{\"display_value\":\(Self.jsonString(value)),\"link\":\(Self.jsonString(link))}"
                case (_, true): rendered = "{\"display_value\":\(Self.jsonString(value)),\"value\":\(Self.jsonString(value))}"
                default:
                    rendered = "{\"display_value\":\(Self.jsonString(value)),\"link\":\(Self.jsonString(link)),"
                        + "\"value\":\(Self.jsonString(value))}"
                }
            } else if display == "all" {
                rendered = "{\"display_value\":\(Self.jsonString(value)),\"value\":\(Self.jsonString(value))}"
            } else {
                // Empty references stay "" in every mode (wire facts §1.4).
                rendered = Self.jsonString(value)
            }
            members.append("\(Self.jsonString(column)):\(rendered)")
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    /// `<u>;rel="first",<u>;rel="prev",<u>;rel="next",<u>;rel="last"` without spaces, each URL echoing the
    /// request's parameters with sysparm_limit and sysparm_offset replaced (wire facts §1.5).
    private func link(_ request: HTTPServerRequest, offset: Int, limit: Int, total: Int) -> String {
        let kept = request.rawQuery.split(separator: "&").filter {
            !$0.hasPrefix("sysparm_offset=") && !$0.hasPrefix("sysparm_limit=")
        }
        func url(_ at: Int) -> String {
            "\(baseURL)\(request.path)?" + (kept + ["sysparm_limit=\(limit)", "sysparm_offset=\(at)"]).joined(separator: "&")
        }
        var links = ["<\(url(0))>;rel=\"first\""]
        if offset > 0 {
            links.append("<\(url(offset - limit))>;rel=\"prev\"")
        } else {
            switch options.firstPagePrev {
            case .none: break
            case .minusOne: links.append("<\(url(-1))>;rel=\"prev\"")
            case .minusLimit: links.append("<\(url(-limit))>;rel=\"prev\"")
            }
        }
        if offset + limit < total { links.append("<\(url(offset + limit))>;rel=\"next\"") }
        links.append("<\(url((total - 1) / limit * limit))>;rel=\"last\"")
        return links.joined(separator: ",")
    }
}
