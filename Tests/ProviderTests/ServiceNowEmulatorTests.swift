// The emulator must be faithful to provider-wire-facts.md §1 where the adapter depends on it, and must
// refuse what it does not model. These tests talk to it over HTTP with the real client.
import Core
import Emulators
import Foundation
import HTTPClient
import Providers
import Testing

@Suite("ServiceNow emulator")
struct ServiceNowEmulatorTests {
    private func get(_ h: ServiceNowHarness, _ pathAndQuery: String, auth: Bool = true) async throws -> HTTPResponse {
        var headers: [(name: String, value: String)] = [("Accept", "application/json")]
        if auth {
            headers.append(("Authorization", "Basic " + Data("admin:admin-password".utf8).base64EncodedString()))
        }
        return try await h.transport.send(HTTPRequest(url: h.emulator.baseURL + pathAndQuery, headers: headers))
    }

    private func q(_ text: String) -> String { ServiceNowQuery.encode(text) }

    @Test("encoded queries: ^OR binds to the condition before it, ^NQ groups are independent, ORDERBY is global")
    func encodedQuerySemantics() throws {
        let isField: (String) -> Bool = { ["a", "b", "c", "sys_id"].contains($0) }
        let parsed = try ServiceNowEncodedQuery.parse("a>=2^a>2^ORb>5^ORDERBYa^ORDERBYDESCb",
                                                     isField: isField, isDateTime: { _ in false })
        // a >= 2 AND (a > 2 OR b > 5)
        #expect(parsed.matches(["a": "3", "b": "0"]))
        #expect(parsed.matches(["a": "2", "b": "6"]))
        #expect(!parsed.matches(["a": "2", "b": "5"]))
        #expect(!parsed.matches(["a": "1", "b": "9"]))
        #expect(parsed.orderBy.map(\.field) == ["a", "b"] && parsed.orderBy.map(\.descending) == [false, true])

        // (a > 2) OR (a = 2 AND b > 5); ORDERBY written in the last group still orders everything.
        let nq = try ServiceNowEncodedQuery.parse("a>2^NQa=2^b>5^ORDERBYa", isField: isField, isDateTime: { _ in false })
        #expect(nq.groups.count == 2)
        #expect(nq.matches(["a": "3", "b": "0"]))
        #expect(nq.matches(["a": "2", "b": "6"]))
        #expect(!nq.matches(["a": "2", "b": "5"]))
        #expect(nq.orderBy.count == 1)
        // A condition in the first group does not carry into the second (KB0564887).
        let scoped = try ServiceNowEncodedQuery.parse("c=x^a>2^NQa=1", isField: isField, isDateTime: { _ in false })
        #expect(scoped.matches(["a": "1", "c": "y"]))
    }

    @Test("the keyset form we send selects exactly what the ^NQ form of the brief selects, in the same order")
    func keysetFormsAgree() async throws {
        try await withServiceNow { h in
            for i in 0..<40 { try h.emulator.insert("incident", ["number": "INC\(i)"], at: at(i / 8)) }
            let all = try JSONValue.parse(try await get(h, "/api/now/table/incident?sysparm_fields=sys_id%2Csys_updated_on&sysparm_query="
                + q("ORDERBYsys_updated_on^ORDERBYsys_id")).body)["result"]?.arrayValue ?? []
            #expect(all.count == 40)
            for pivot in [0, 7, 8, 20, 39] {
                let t = all[pivot]["sys_updated_on"]?.stringValue ?? "", id = all[pivot]["sys_id"]?.stringValue ?? ""
                let ours = "sys_updated_on>=\(t)^sys_updated_on>\(t)^ORsys_id>\(id)^ORDERBYsys_updated_on^ORDERBYsys_id"
                let brief = "sys_updated_on>\(t)^NQsys_updated_on=\(t)^sys_id>\(id)^ORDERBYsys_updated_on^ORDERBYsys_id"
                func ids(_ query: String) async throws -> [JSONValue] {
                    let body = try JSONValue.parse(try await get(h, "/api/now/table/incident?sysparm_fields=sys_id&sysparm_query=" + q(query)).body)
                    return (body["result"]?.arrayValue ?? []).compactMap { $0["sys_id"] }
                }
                let expected = all.dropFirst(pivot + 1).compactMap { $0["sys_id"] }
                #expect(try await ids(ours) == expected)
                #expect(try await ids(brief) == expected)
            }
        }
    }

    @Test("operators and values the emulator does not model are refused, not ignored", arguments: [
        "short_descriptionLIKEnet", "a<3", "a!=3", "sys_updated_on>javascript:gs.dateGenerate('2026-01-01','00:00:00')",
        "nosuchfield=1", "a=1^^b=2", "ORa=1", "sys_updated_on>=2026-11-29T06:00:00Z",
    ])
    func refusesUnmodelled(query: String) {
        let isField: (String) -> Bool = { ["a", "b", "short_description", "sys_updated_on"].contains($0) }
        #expect(throws: ServiceNowEncodedQuery.ParseError.self) {
            _ = try ServiceNowEncodedQuery.parse(query, isField: isField, isDateTime: { $0 == "sys_updated_on" })
        }
    }

    @Test("an unmodelled query is answered 400 with the error envelope and recorded")
    func rejectedQueryIsRecorded() async throws {
        let emulator = try ServiceNowEmulator()
        defer { emulator.stop() }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let response = try await transport.send(HTTPRequest(
            url: emulator.baseURL + "/api/now/table/incident?sysparm_query=" + q("short_descriptionLIKEnet"),
            headers: [("Authorization", "Basic " + Data("admin:admin-password".utf8).base64EncodedString())]))
        #expect(response.status == 400)
        let body = try JSONValue.parse(response.body)
        #expect(body["status"] == "failure")
        #expect(body["error"]?["message"]?.stringValue != nil)
        #expect(emulator.rejectedRequests.count == 1)
    }

    @Test("every value is a string, empty is \"\", references come in all three shapes")
    func valuesAndReferenceShapes() async throws {
        try await withServiceNow { h in
            let user = try h.emulator.insert("sys_user", ["user_name": "beth"], at: at())
            try h.emulator.insert("incident", ["number": "INC0010001", "state": "1", "assigned_to": user], at: at())
            try h.emulator.insert("incident", ["number": "INC0010002", "state": "2"], at: at(1))
            let query = "?sysparm_query=" + q("ORDERBYnumber")

            let links = try JSONValue.parse(try await get(h, "/api/now/table/incident" + query).body)
            let first = try #require(links["result"]?[0]?.objectValue)
            for (key, value) in first where key != "assigned_to" {
                #expect(value.stringValue != nil, "\(key) is \(value.typeName), not a string")
            }
            #expect(first["sys_mod_count"] == "0")
            #expect(first["resolved_at"] == "")
            #expect(first["assigned_to"]?["value"]?.stringValue == user)
            #expect(first["assigned_to"]?["link"]?.stringValue == "\(h.emulator.baseURL)/api/now/table/sys_user/\(user)")
            #expect(links["result"]?[1]?["assigned_to"] == "", "an empty reference is \"\" even with links on")

            let plain = try JSONValue.parse(try await get(h, "/api/now/table/incident" + query
                + "&sysparm_exclude_reference_link=true&sysparm_display_value=false").body)
            #expect(plain["result"]?[0]?["assigned_to"]?.stringValue == user)

            let all = try JSONValue.parse(try await get(h, "/api/now/table/incident" + query + "&sysparm_display_value=all").body)
            #expect(all["result"]?[0]?["assigned_to"]?["value"]?.stringValue == user)
            #expect(all["result"]?[0]?["assigned_to"]?["display_value"] != nil)
            #expect(all["result"]?[0]?["state"]?["value"] == "1")
        }
    }

    @Test("Link has no spaces, echoes the parameters, and the first page carries the prev offset -1 quirk")
    func linkHeaderAndTotalCount() async throws {
        try await withServiceNow { h in
            for i in 0..<5 { try h.emulator.insert("incident", ["number": "INC\(i)"], at: at(i)) }
            let response = try await get(h, "/api/now/table/incident?sysparm_query=" + q("ORDERBYsys_updated_on")
                + "&sysparm_limit=2&sysparm_fields=sys_id%2Cnumber")
            #expect(response.headers["x-total-count"] == "5")
            #expect(response.headers["content-type"] == "application/json;charset=UTF-8")
            let link = try #require(response.headers["link"])
            #expect(!link.contains(" "))
            #expect(link.contains(";rel=\"next\",<"))
            let rels = LinkHeader.parse(link)
            #expect(rels["prev"]?.hasSuffix("sysparm_limit=2&sysparm_offset=-1") == true)
            #expect(rels["next"]?.hasSuffix("sysparm_limit=2&sysparm_offset=2") == true)
            #expect(rels["last"]?.hasSuffix("sysparm_offset=4") == true)
            #expect(rels["next"]?.contains("sysparm_fields=sys_id%2Cnumber") == true)

            let last = try await get(h, "/api/now/table/incident?sysparm_limit=2&sysparm_offset=4")
            #expect(LinkHeader.parse(last.headers.values("link"))["next"] == nil)
        }
        try await withServiceNow(options: .init(firstPagePrev: .none)) { h in
            for i in 0..<3 { try h.emulator.insert("incident", [:], at: at(i)) }
            let response = try await get(h, "/api/now/table/incident?sysparm_limit=1")
            #expect(LinkHeader.parse(response.headers.values("link"))["prev"] == nil)
        }
    }

    @Test("the limit is applied before ACLs: short or empty pages while X-Total-Count counts every match")
    func aclFiltersAfterLimit() async throws {
        try await withServiceNow { h in
            var ids: [String] = []
            for i in 0..<6 { ids.append(try h.emulator.insert("incident", ["number": "INC\(i)"], at: at(i))) }
            h.emulator.setHidden("incident", Array(ids[0..<3]))
            let base = "/api/now/table/incident?sysparm_query=" + q("ORDERBYsys_updated_on")
            let first = try await get(h, base + "&sysparm_limit=3")
            #expect(try JSONValue.parse(first.body)["result"] == .array([]))
            #expect(first.headers["x-total-count"] == "6")
            #expect(LinkHeader.parse(first.headers.values("link"))["next"] != nil)
            h.emulator.setHidden("incident", [ids[0]], false)
            let short = try JSONValue.parse(try await get(h, base + "&sysparm_limit=3").body)
            #expect(short["result"]?.arrayValue?.count == 1)
        }
    }

    @Test("empty result: 200 {\"result\":[]} on the default path, 404 No Record found on v1")
    func emptyResults() async throws {
        try await withServiceNow { h in
            let v2 = try await get(h, "/api/now/table/incident")
            #expect(v2.status == 200 && v2.bodyText == "{\"result\":[]}")
            let v1 = try await get(h, "/api/now/v1/table/incident")
            #expect(v1.status == 404)
            #expect(try JSONValue.parse(v1.body)["error"]?["message"] == "No Record found")
        }
    }

    @Test("errors use the envelope: 401 without credentials, 400 for an unknown table, 403 for a forbidden one")
    func errorEnvelopes() async throws {
        try await withServiceNow { h in
            let unauthenticated = try await get(h, "/api/now/table/incident", auth: false)
            #expect(unauthenticated.status == 401)
            #expect(try JSONValue.parse(unauthenticated.body)["error"]?["message"] == "User Not Authenticated")
            let bad = try await get(h, "/api/now/table/sys_nonexistent")
            #expect(bad.status == 400)
            #expect(try JSONValue.parse(bad.body)["error"]?["message"] == "Invalid table sys_nonexistent")
            h.emulator.setForbidden("incident")
            let forbidden = try await get(h, "/api/now/table/incident")
            #expect(forbidden.status == 403)
            h.emulator.failNext(.rateLimited(retryAfter: nil))
            let limited = try await get(h, "/api/now/table/sys_user")
            #expect(limited.status == 429 && limited.headers["retry-after"] == nil && limited.headers["x-ratelimit-limit"] == nil)
            #expect(try JSONValue.parse(limited.body)["error"]?["detail"] == .null)
        }
    }

    @Test("token endpoint: ServiceNow's access_denied shape on a bad secret, expires_in as an integer")
    func tokenEndpoint() async throws {
        try await withServiceNow { h in
            func post(_ form: String) async throws -> HTTPResponse {
                try await h.transport.send(HTTPRequest(method: "POST", url: h.emulator.baseURL + "/oauth_token.do",
                    headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(form.utf8)))
            }
            let bad = try await post("grant_type=client_credentials&client_id=deltahook&client_secret=wrong")
            #expect(bad.status == 401)
            #expect(bad.bodyText == "{\"error_description\":\"access_denied\",\"error\":\"server_error\"}")
            let good = try await post("grant_type=password&client_id=deltahook&client_secret=client-secret&username=admin&password=admin-password")
            let body = try JSONValue.parse(good.body)
            #expect(good.status == 200 && body["expires_in"] == .integer(1799) && body["token_type"] == "Bearer")
            #expect(body["refresh_token"]?.stringValue != nil)
            h.emulator.setClientCredentialsEnabled(false)
            let disabled = try await post("grant_type=client_credentials&client_id=deltahook&client_secret=client-secret")
            #expect(disabled.status == 401)
        }
    }

    @Test("deletes write sys_audit_delete rows; an unaudited table writes none")
    func auditRows() async throws {
        try await withServiceNow { h in
            let a = try h.emulator.insert("incident", [:], at: at())
            try h.emulator.delete("incident", a, at: at(10))
            h.emulator.createTable("u_asset", columns: ["u_name"], auditDeletes: false)
            let b = try h.emulator.insert("u_asset", [:], at: at())
            try h.emulator.delete("u_asset", b, at: at(11))
            let rows = h.emulator.ids("sys_audit_delete").compactMap { h.emulator.row("sys_audit_delete", $0) }
            #expect(rows.count == 1)
            #expect(rows.first?["tablename"] == "incident" && rows.first?["documentkey"] == a)
            #expect(rows.first?["sys_created_on"] == "2026-11-29 06:00:10")
        }
    }
}
