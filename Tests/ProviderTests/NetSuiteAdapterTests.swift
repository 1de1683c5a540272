// NetSuite adapter units: TBA signing against NetSuite's vectors, account-id forms, local-time handling
// across DST, the SuiteQL we send, models and error summaries. Each test names what it proves.
import Core
import Foundation
import HTTPClient
@testable import Providers
import Synchronization
import Testing

/// A transport that must never be used (pure unit tests).
struct UnusedTransport: HTTPTransport {
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        Issue.record("unexpected HTTP request to \(request.url)")
        return HTTPResponse(status: 599)
    }
}

let losAngeles = TimeZone(identifier: "America/Los_Angeles")!

func utc(_ text: String) -> Date { Timestamps.parseSQLStyle(text)! }

@Suite("NetSuite adapter units")
struct NetSuiteAdapterTests {
    // provider-wire-facts §2.5: NetSuite's documented credentials, nonce and timestamp.
    static let ck = "ef40afdd8abaac111b13825dd5e5e2ddddb44f86d5a0dd6dcf38c20aae6b67e4"
    static let cs = "d26ad321a4b2f23b0741c8d38392ce01c3e23e109df6c96eac6d099e9ab9e8b5"
    static let tid = "2b0ce516420110bcbd36b69e99196d1b7f6de3c6234c5afb799b73d87569f5cc"
    static let ts = "c29a677df7d5439a458c063654187e3d678d73aca8e3c9d8bea1478a3eb0d295"

    func vectorClient(account: String) -> NetSuiteClient {
        NetSuiteClient(connection: "ns", accountID: account, baseURL: nil, timeZone: losAngeles,
                       tokens: NetSuiteTokens(consumerKey: Self.ck, consumerSecret: Self.cs, tokenID: Self.tid,
                                              tokenSecret: Self.ts), transport: UnusedTransport(),
                       options: {
                           var options = NetSuiteClient.Options()
                           options.fixedNonce = "fjaLirsIcCGVZWzBX0pg"
                           options.fixedTimestamp = 1_508_242_306
                           return options
                       }())
    }

    @Test("Rule 11 (TBA): the adapter's header reproduces NetSuite's documented GET vector, realm in header only")
    func documentedVector() throws {
        let client = vectorClient(account: "123456")
        let header = try client.authorization(method: "GET",
            url: "https://123456.suitetalk.api.netsuite.com/services/rest/record/v1/employee/40")
        #expect(header.hasPrefix(#"OAuth realm="123456", "#))
        #expect(header.contains(#"oauth_signature="B5OIWznZ2YP0OB7VrJrGkYsTh%2B8H%2B5T9Hag%2Bo92q0zY%3D""#))
    }

    @Test("Rule 11 (TBA): SuiteQL POST signs limit/offset (derived vector), realm 123456_SB1, host 123456-sb1")
    func suiteQLVectorAndAccountForms() throws {
        let client = vectorClient(account: "123456_sb1")
        #expect(client.baseURL == "https://123456-sb1.suitetalk.api.netsuite.com")
        let url = client.suiteQLURL(limit: 1000, offset: 0)
        #expect(url == "https://123456-sb1.suitetalk.api.netsuite.com/services/rest/query/v1/suiteql?limit=1000&offset=0")
        let header = try client.authorization(method: "POST", url: url)
        #expect(header.hasPrefix(#"OAuth realm="123456_SB1", "#))
        #expect(header.contains(#"oauth_signature="LjzqkKDpsRTpwqBkevEM3wfFmspmqdKggHTdHxxHp%2BU%3D""#))
        #expect(NetSuiteClient.realm("1234567-sb1") == "1234567_SB1")
        #expect(NetSuiteClient.hostForm("1234567_SB1") == "1234567-sb1")
        // A different offset is a different signature: query parameters are part of the base string.
        let other = try client.authorization(method: "POST", url: client.suiteQLURL(limit: 1000, offset: 1000))
        #expect(other != header)
    }

    @Test("Rule 7: an unambiguous cursor is its own local literal; the reading maps back to the same instant")
    func plainConversion() {
        let clock = NetSuiteClock(zone: losAngeles)
        let instant = utc("2026-07-01 07:00:00")  // local midnight PDT
        #expect(clock.local(instant) == "2026-07-01 00:00:00")
        let literal = clock.lowerBoundLiteral(instant)
        #expect(literal.exact && literal.text == "2026-07-01 00:00:00" && literal.instant == instant)
        #expect(clock.instant(of: "2026-07-01 00:00:00", notBefore: nil) == instant)
        // Fractional seconds are truncated: NetSuite's granularity is whole seconds.
        #expect(clock.local(instant.addingTimeInterval(0.9)) == "2026-07-01 00:00:00")
    }

    @Test("docs/DESIGN.md §6 DST rule: a cursor in the repeated hour steps back before it (either reading), re-reads")
    func fallBackStepsBack() {
        let clock = NetSuiteClock(zone: losAngeles)
        // 2026-11-01 01:30 happens twice in Los Angeles: 08:30Z (PDT) and 09:30Z (PST).
        let early = utc("2026-11-01 08:30:00"), late = utc("2026-11-01 09:30:00")
        #expect(clock.local(early) == "2026-11-01 01:30:00" && clock.local(late) == "2026-11-01 01:30:00")
        #expect(clock.readings(of: "2026-11-01 01:30:00") == [early, late])
        for instant in [early, late] {
            let literal = clock.lowerBoundLiteral(instant)
            #expect(!literal.exact)
            #expect(literal.text == "2026-11-01 00:59:59", "the last unambiguous second before the repeated hour")
            #expect(literal.instant == utc("2026-11-01 07:59:59"))
        }
        // An upper (window) bound moves forward past the repeated hour instead.
        #expect(clock.upperBoundLiteral(early).text == "2026-11-01 02:00:00")
        // Reading rows back: the earliest reading not before the previous row.
        #expect(clock.instant(of: "2026-11-01 01:30:00", notBefore: utc("2026-11-01 08:00:00")) == early)
        #expect(clock.instant(of: "2026-11-01 01:30:00", notBefore: utc("2026-11-01 08:50:00")) == late)
        #expect(clock.instant(of: "2026-11-01 01:30:00", notBefore: nil) == early)
    }

    @Test("docs/DESIGN.md §6 DST rule: a spring-forward time does not exist and is refused, not guessed")
    func springForwardGap() {
        let clock = NetSuiteClock(zone: losAngeles)
        #expect(clock.readings(of: "2026-03-08 02:30:00") == [])
        #expect(clock.instant(of: "2026-03-08 02:30:00", notBefore: nil) == nil)
        #expect(clock.local(utc("2026-03-08 10:00:00")) == "2026-03-08 03:00:00")
        #expect(clock.lowerBoundLiteral(utc("2026-03-08 10:00:00")).exact)
    }

    @Test("Rules 3 and 7: the delta query keysets (lastmodifieddate, id) with TO_CHAR/TO_TIMESTAMP and a type filter")
    func deltaSQLShape() {
        let sql = NetSuiteSQL(table: "transaction", recordType: "CustInvc", fields: nil, model: "invoice")
        let keyset = NetSuiteSQL.keyset(dateColumn: "transaction.lastmodifieddate", idColumn: "transaction.id",
                                        local: "2026-11-29 00:00:00", id: 42)
        let text = sql.delta(conditions: [keyset])
        #expect(text == "SELECT transaction.*, TO_CHAR(transaction.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS lastmodified_local, "
            + "TO_CHAR(transaction.trandate, 'YYYY-MM-DD') AS trandate_iso, TO_CHAR(transaction.duedate, 'YYYY-MM-DD') AS duedate_iso "
            + "FROM transaction WHERE transaction.type = 'CustInvc' AND (transaction.lastmodifieddate > "
            + "TO_TIMESTAMP('2026-11-29 00:00:00', 'YYYY-MM-DD HH24:MI:SS') OR (transaction.lastmodifieddate = "
            + "TO_TIMESTAMP('2026-11-29 00:00:00', 'YYYY-MM-DD HH24:MI:SS') AND transaction.id > 42)) "
            + "ORDER BY transaction.lastmodifieddate, transaction.id")
        #expect(sql.ids(after: 7) == "SELECT transaction.id FROM transaction WHERE transaction.type = 'CustInvc' AND transaction.id > 7 ORDER BY transaction.id")
        #expect(sql.deletions(conditions: []).contains("WHERE deletedrecord.type = 'invoice' ORDER BY deletedrecord.deleteddate, deletedrecord.recordid"))
        let fields = NetSuiteSQL(table: "customer", recordType: nil, fields: ["email", "id", "CompanyName"], model: "customer")
        #expect(fields.delta(conditions: []).hasPrefix("SELECT customer.id, customer.email, customer.companyname, TO_CHAR("))
        #expect(NetSuiteSQL.quote("O'Brien") == "'O''Brien'")
        #expect(NetSuiteSQL.deletedRecordTypes(table: "item", recordType: nil).contains("inventoryitem"))
    }

    @Test("docs/DESIGN.md §4: customer, employee and invoice mappings; record keeps columns minus links; links never hashed")
    func models() {
        let when = utc("2026-11-29 08:00:00")
        let customerRow: JSONValue = ["links": [], "id": "12", "entityid": "CUST-12", "companyname": "Acme",
                                      "isperson": "F", "isinactive": "F", "email": "ap@acme.test", "entitystatus": "13"]
        let customer = NetSuiteModels.normalize(model: "customer", row: customerRow, id: "12", updatedAt: when)
        #expect(customer["name"] == "Acme" && customer["is_person"] == false && customer["inactive"] == false)
        #expect(customer["status_id"] == "13" && customer["phone"] == .null && customer["updated_at"] == "2026-11-29T08:00:00Z")
        let person: JSONValue = ["id": "13", "isperson": "T", "firstname": "Ada", "lastname": "Lovelace"]
        #expect(NetSuiteModels.normalize(model: "customer", row: person, id: "13", updatedAt: when)["name"] == "Ada Lovelace")
        let employee = NetSuiteModels.normalize(model: "employee", row: ["id": "5", "firstname": "Grace", "lastname": "Hopper",
                                                                          "supervisor": "2", "isinactive": "T"], id: "5", updatedAt: when)
        #expect(employee["name"] == "Grace Hopper" && employee["supervisor_id"] == "2" && employee["inactive"] == true)
        let invoice = NetSuiteModels.normalize(model: "invoice", row: ["id": "9", "tranid": "INV-9", "status": "CustInvc:B",
                                                                       "trandate_iso": "2026-11-01", "foreigntotal": "100.00",
                                                                       "entity": "12"], id: "9", updatedAt: when)
        #expect(invoice["status"] == "paid" && invoice["status_code"] == "CustInvc:B" && invoice["date"] == "2026-11-01")
        #expect(invoice["total"] == "100.00" && invoice["customer_id"] == "12")
        #expect(NetSuiteModels.invoiceStatus("A") == "open")
        let record = NetSuiteModels.normalize(model: "record", row: customerRow, id: "12", updatedAt: when)
        #expect(record["links"] == nil && record["companyname"] == "Acme")
        // `links` and the cursor columns are volatile: a raw row differing only there hashes the same.
        var other = customerRow.objectValue!
        other["links"] = [["rel": "self"]]
        other["lastmodifieddate"] = "11/29/2026 12:00 am"
        #expect(ContentHash.of(customerRow, ignoring: NetSuiteModels.volatileFields)
            == ContentHash.of(.object(other), ignoring: NetSuiteModels.volatileFields))
    }

    @Test("Rule 9: the concurrency 429 body is summarized with its o:errorDetails code and detail")
    func errorSummary() {
        let body = #"{"type":"https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html","title":"Bad Request","status":429,"o:errorCode":"USER_ERROR","o:errorDetails":[{"detail":"Concurrent request limit exceeded. Request blocked.","o:errorCode":"CONCURRENCY_LIMIT_EXCEEDED"}]}"#
        #expect(NetSuiteClient.errorSummary(Array(body.utf8))
            == "Bad Request; CONCURRENCY_LIMIT_EXCEEDED: Concurrent request limit exceeded. Request blocked.")
        #expect(NetSuiteClient.errorSummary(Array("oops".utf8)) == "oops")
    }
}

/// Answers from a script, recording each request (no network).
final class ScriptedTransport: HTTPTransport, Sendable {
    private struct State: Sendable {
        var script: [HTTPResponse]
        var requests: [HTTPRequest] = []
    }
    private let state: Mutex<State>

    init(_ script: [HTTPResponse]) { state = Mutex(State(script: script)) }

    var requests: [HTTPRequest] { state.withLock { $0.requests } }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        state.withLock { s in
            s.requests.append(request)
            return s.script.isEmpty ? HTTPResponse(status: 500) : s.script.removeFirst()
        }
    }
}

@Suite("NetSuite client error handling")
struct NetSuiteClientErrorTests {
    static let concurrency429 = HTTPResponse(status: 429, body: Array(#"{"type":"https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html","title":"Bad Request","status":429,"o:errorCode":"USER_ERROR","o:errorDetails":[{"detail":"Concurrent request limit exceeded. Request blocked.","o:errorCode":"CONCURRENCY_LIMIT_EXCEEDED"}]}"#.utf8))
    static let ok = HTTPResponse(status: 200, body: Array(#"{"links":[],"count":1,"hasMore":false,"items":[{"links":[],"id":"1","lastmodified_local":"2026-10-01 00:00:00"}],"offset":0,"totalResults":1}"#.utf8))

    func client(_ transport: ScriptedTransport, retries: Int) -> NetSuiteClient {
        NetSuiteClient(connection: "ns", accountID: "1234567_SB1", baseURL: "https://ns.example", timeZone: losAngeles,
                       tokens: NetSuiteTokens(consumerKey: "ck", consumerSecret: "cs", tokenID: "tid", tokenSecret: "ts"),
                       transport: transport,
                       options: .init(rateLimitRetries: retries, maxInlineWait: .seconds(5),
                                      backoff: RateLimitBackoff(base: .milliseconds(1), cap: .milliseconds(5))))
    }

    @Test("Rule 9: the concurrency 429 is retried with backoff and the query then succeeds; each try is freshly signed")
    func retriesConcurrency429() async throws {
        let transport = ScriptedTransport([Self.concurrency429, Self.concurrency429, Self.ok])
        let page = try await client(transport, retries: 3).query("SELECT id FROM customer", limit: 10, offset: 0)
        #expect(page.items.count == 1 && transport.requests.count == 3)
        let auths = transport.requests.compactMap { $0.headers.first { $0.name == "Authorization" }?.value }
        #expect(Set(auths).count == 3, "fresh nonce per attempt")
        #expect(transport.requests.allSatisfy { r in r.headers.contains { $0.name == "Prefer" && $0.value == "transient" } })
        #expect(transport.requests.allSatisfy { $0.url == "https://ns.example/services/rest/query/v1/suiteql?limit=10&offset=0" })
        #expect(String(decoding: transport.requests[0].body, as: UTF8.self) == #"{"q":"SELECT id FROM customer"}"#)
    }

    @Test("Rules 9, 10: persistent 429s become rateLimited (a connection-wide wait) with the error details")
    func persistent429() async throws {
        let transport = ScriptedTransport(Array(repeating: Self.concurrency429, count: 3))
        do {
            _ = try await client(transport, retries: 2).query("SELECT id FROM customer", limit: 10, offset: 0)
            Issue.record("expected rateLimited")
        } catch ProviderError.rateLimited(_, let message) {
            #expect(message.contains("CONCURRENCY_LIMIT_EXCEEDED") && message.contains("max_concurrency"))
        }
        #expect(transport.requests.count == 3)
    }

    @Test("Rule 9: Retry-After is honoured exactly; too long to wait in place, it goes to the scheduler")
    func retryAfterExact() async throws {
        var limited = Self.concurrency429
        limited.headers = HTTPHeaders([(name: "Retry-After", value: "3600")])
        let transport = ScriptedTransport([limited])
        do {
            _ = try await client(transport, retries: 5).query("SELECT id FROM customer", limit: 10, offset: 0)
            Issue.record("expected rateLimited")
        } catch ProviderError.rateLimited(let wait, _) {
            #expect(wait == .seconds(3600))
        }
    }

    @Test("Paging rules are checked before sending: limit ≤ 1000, offset a multiple of limit, within the row cap")
    func pagingRules() async throws {
        let transport = ScriptedTransport([])
        let c = client(transport, retries: 0)
        for (limit, offset) in [(1001, 0), (10, 5), (0, 0), (1000, 100_000)] {
            await #expect(throws: ProviderError.self) { try await c.query("SELECT id FROM customer", limit: limit, offset: offset) }
        }
        #expect(transport.requests.isEmpty)
    }

    @Test("A 400 surfaces o:errorDetails and the SuiteQL text; a 403 is a permission error")
    func otherErrors() async throws {
        let bad = HTTPResponse(status: 400, body: Array(#"{"title":"Bad Request","status":400,"o:errorDetails":[{"detail":"Invalid search query. Unknown identifier 'foo'.","o:errorCode":"INVALID_PARAMETER"}]}"#.utf8))
        do {
            _ = try await client(ScriptedTransport([bad]), retries: 0).query("SELECT foo FROM customer", limit: 10, offset: 0)
            Issue.record("expected an HTTP error")
        } catch ProviderError.http(let status, let message) {
            #expect(status == 400 && message.contains("INVALID_PARAMETER: Invalid search query") && message.contains("SELECT foo FROM customer"))
        }
        let denied = HTTPResponse(status: 403, body: Array(#"{"title":"Forbidden","status":403,"o:errorDetails":[{"detail":"Permission Violation","o:errorCode":"INSUFFICIENT_PERMISSION"}]}"#.utf8))
        await #expect(throws: ProviderError.self) {
            try await client(ScriptedTransport([denied]), retries: 0).query("SELECT id FROM deletedrecord", limit: 10, offset: 0)
        }
    }
}
