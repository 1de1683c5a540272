// Provider answers are untrusted input (issue 10; docs/DESIGN.md §2 rules 11, 12, 13, 15, 16, 18), adapter side.
// Each test names the rule it proves. Every listener is on loopback (127.0.0.1 / 127.0.0.2); 169.254.169.254 is
// only ever given to the origin decision function, never requested.
import Config
import Core
import Crypto
import Emulators
import Foundation
import HTTPClient
import HTTPServer
import Logging
@testable import Providers
import Store
import Synchronization
import Testing
import TestSupport

/// The values every parser of outside input is fed (rule 12).
let hostileTexts = ["9223372036854775807", "-9223372036854775808", "99999999999999999999", "1e999", "-0", "soon", "",
                    "0", "-5", "NaN", "inf", " 7 ", "18446744073709551616", "0000-01-01T00:00:00Z",
                    "10000-01-01T00:00:00Z", "Sun, 06 Nov 1994 08:49:37 GMT"]

/// A loopback listener that counts every request it gets (the "second origin" of rule 13).
final class RecordingListener: Sendable {
    let server: HTTPServer
    private let count = Mutex(0)

    init(host: String) throws {
        let box = Mutex<RecordingListener?>(nil)
        server = try HTTPServer(host: host, handling: .sync { _ in
            box.withLock { $0 }?.count.withLock { $0 += 1 }
            return .json(Array(#"{"data":[]}"#.utf8))
        })
        box.withLock { $0 = self }
    }

    var requests: Int { count.withLock { $0 } }
}

/// A REST API on 127.0.0.1 whose handler the test scripts; counts requests.
final class ScriptedAPI: Sendable {
    final class Counter: Sendable {
        let value = Mutex(0)
        func next() -> Int { value.withLock { c -> Int in c += 1; return c } }
    }

    let server: HTTPServer
    private let counter: Counter

    init(_ answer: @escaping @Sendable (HTTPServerRequest, Int) -> HTTPServerResponse) throws {
        let counter = Counter()
        server = try HTTPServer(handling: .sync { request in answer(request, counter.next()) })
        self.counter = counter
    }

    var requests: Int { counter.value.withLock { $0 } }
}

func restConnection(baseURL: String, path: String, pagination: JSONValue, idField: String = "id",
                    cursorFormat: String = "rfc3339") throws -> ConnectionConfig {
    let json: JSONValue = [
        "state_directory": "/tmp/unused",
        "connections": [[
            "id": "orders-api", "provider": "rest", "base_url": .string(baseURL),
            "auth": ["type": "token", "token": ["env": "DELTAHOOK_TEST_TOKEN"]],
            "objects": [["name": "orders", "interval": "1m", "page_size": 2,
                         "request": ["path": .string(path), "records": "data", "id_field": .string(idField),
                                     "cursor_field": "updated_at", "cursor_format": .string(cursorFormat),
                                     "pagination": pagination]]],
        ]],
    ]
    let config = try ConfigLoader.validate(json: json, environment: ConfigEnvironment(variables: [
        "DELTAHOOK_TEST_TOKEN": "rest-secret-token",
    ]))
    return try #require(config.connections.first)
}

func restSource(_ connection: ConnectionConfig, transport: any HTTPTransport) throws -> RestSource {
    let http = try ProviderFactory.providerHTTP(for: connection, transport: transport,
                                                logger: Logger(level: .debug, sink: MemoryLogSink()))
    return try RestSource(connection: connection, object: try #require(connection.objects.first), transport: transport,
                          http: http)
}

@Suite("Untrusted provider answers: parsers (rule 12)")
struct UntrustedParserTests {
    @Test("rule 12: every header, timestamp and number parser takes the edge values without trapping")
    func edgeValuesNeverTrap() throws {
        let now = Date(timeIntervalSince1970: 1_795_932_000)
        let policy = ProviderWaitPolicy(connection: "c", maxWait: .seconds(3600))
        for text in hostileTexts {
            // Waits: only positive digit strings and future dates count; everything is bounded.
            if let seconds = ProviderWaitPolicy.retryAfterSeconds(text, now: now) {
                #expect(seconds > 0, "\(text)")
                let wait = policy.bounded(seconds: seconds, source: "Retry-After")
                #expect(wait >= .zero && wait <= .seconds(3600), "\(text)")
            }
            _ = ProviderWaitPolicy.secondsUntilEpoch(text, now: now)
            _ = RetryAfter.parse(text, now: now).map { DurationText.format($0) }
            _ = HTTPDate.parse(text)
            // Timestamps: nil or inside 1970–9999.
            for parsed in [Timestamps.parseRFC3339(text), Timestamps.parseSQLStyle(text)] {
                if let parsed { #expect(Timestamps.isInRange(parsed), "\(text)") }
            }
            // REST cursor formats, as a JSON string and as the number it may spell.
            for format in [RestCursorFormat.rfc3339, .sql, .unixSeconds, .unixMilliseconds] {
                var values: [JSONValue] = [.string(text)]
                if let number = Int64(text) { values.append(.integer(number)) }
                if let double = Double(text) { values.append(.double(double)) }
                for value in values {
                    if let date = RestSource.parse(value, as: format) {
                        #expect(Timestamps.isInRange(date), "\(text) as \(format)")
                        _ = RestSource.format(date, as: format)
                    }
                }
            }
            // Ids.
            #expect(!ProviderIDs.isSysID(text))
            _ = ProviderIDs.isInteger(text)
        }
        #expect(ProviderWaitPolicy.retryAfterSeconds("-0", now: now) == nil)
        #expect(ProviderWaitPolicy.retryAfterSeconds("soon", now: now) == nil)
        #expect(ProviderWaitPolicy.retryAfterSeconds("1e999", now: now) == nil)
        #expect(ProviderWaitPolicy.retryAfterSeconds("0", now: now) == nil)
        #expect(ProviderWaitPolicy.retryAfterSeconds("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == nil, "past date")
        #expect(ProviderWaitPolicy.retryAfterSeconds(" 7 ", now: now) == 7)
        #expect(policy.bounded(seconds: 1e20, source: "Retry-After") == .seconds(3600))
        #expect(ProviderWaitPolicy.secondsUntilEpoch("9223372036854775807", now: now).map {
            policy.bounded(seconds: $0, source: "reset")
        } == .seconds(3600))
        #expect(ProviderWaitPolicy.secondsUntilEpoch("1000", now: now) == nil, "a reset in the past counts as absent")
        #expect(ProviderWaitPolicy.secondsUntilEpoch("-5", now: now) == nil)

        // Timestamps: years 0 and 10000 are malformed, 1970 and 9999 are fine.
        #expect(Timestamps.parseRFC3339("0000-01-01T00:00:00Z") == nil)
        #expect(Timestamps.parseSQLStyle("0000-01-01 00:00:00") == nil)
        #expect(Timestamps.parseRFC3339("1969-12-31T23:59:59Z") == nil)
        #expect(Timestamps.parseRFC3339("1970-01-01T00:30:00+01:00") == nil, "before 1970 once the offset is applied")
        #expect(Timestamps.parseRFC3339("1970-01-01T00:00:00Z") == Date(timeIntervalSince1970: 0))
        #expect(Timestamps.parseRFC3339("9999-12-31T23:59:59Z") != nil)
        #expect(Timestamps.parseSQLStyle("9999-12-31 23:59:59") != nil)
        #expect(Timestamps.date(unixSeconds: .max) == nil && Timestamps.date(unixSeconds: .min) == nil)
        #expect(Timestamps.date(unixMilliseconds: .max) == nil && Timestamps.date(unixMilliseconds: -1) == nil)
        #expect(Timestamps.date(unixMilliseconds: 1_795_932_000_123) != nil)
        for extreme in [Date(timeIntervalSince1970: .nan), Date(timeIntervalSince1970: .infinity),
                        Date(timeIntervalSince1970: -.infinity), Date(timeIntervalSince1970: 1e300)] {
            _ = Timestamps.unixSeconds(extreme)
            _ = Timestamps.unixMilliseconds(extreme)
            _ = Timestamps.rfc3339Milliseconds(extreme)
            #expect(!Timestamps.isInRange(extreme))
        }
        #expect(Timestamps.unixSeconds(Date(timeIntervalSince1970: 1e300)) == .max)

        // REST unix cursors near Int64.max are malformed, not a trap.
        #expect(RestSource.parse(.integer(.max), as: .unixMilliseconds) == nil)
        #expect(RestSource.parse(.integer(.max), as: .unixSeconds) == nil)
        #expect(RestSource.parse(.string("99999999999999999999"), as: .unixSeconds) == nil)
        #expect(RestSource.parse(.integer(1_795_932_000_123), as: .unixMilliseconds) != nil)

        // Durations: saturating milliseconds, formats of the extremes, clamped seconds.
        #expect(Duration.seconds(Int64.max).milliseconds == .max)
        #expect(Duration.seconds(Int64.min).milliseconds == .min)
        _ = DurationText.format(.seconds(Int64.max))
        _ = DurationText.format(.seconds(Int64.min))
        #expect(Duration.clampedSeconds(.infinity, limit: .seconds(60)) == .seconds(60))
        #expect(Duration.clampedSeconds(-.infinity, limit: .seconds(60)) == .zero)
        #expect(Duration.clampedSeconds(.nan, limit: .seconds(60)) == nil)
        #expect(Duration.clampedSeconds(1.5, limit: .seconds(60)) == .milliseconds(1500))
    }

    @Test("rule 12: webhook-timestamp at Int64.min/max is refused by the verifier, not a trap")
    func standardWebhooksExtremeTimestamps() throws {
        let secret = try StandardWebhooks.Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        for ts in ["-9223372036854775808", "9223372036854775807", "-1", "99999999999999999999"] {
            #expect(throws: StandardWebhooks.SignatureError.self) {
                try StandardWebhooks.verify(id: "msg_1", timestamp: ts, signatureHeader: "v1,AAAA", body: [],
                                            secrets: [secret], now: Date(timeIntervalSince1970: 1_795_932_000))
            }
        }
    }

    @Test("rule 12: GitHub rate-limit headers at Int64.max, 20 digits or in the past are bounded or ignored")
    func gitHubClassifyBoundsWaits() {
        let now = Date(timeIntervalSince1970: 1_795_932_000)
        let waits = ProviderWaitPolicy(connection: "octo", maxWait: .seconds(3600))
        func response(_ status: Int, _ headers: [(String, String)]) -> ProviderResponse {
            ProviderResponse(status: status, headers: HTTPHeaders(headers.map { (name: $0.0, value: $0.1) }),
                             body: Array(#"{"message":"API rate limit exceeded"}"#.utf8))
        }
        func wait(_ r: ProviderResponse) -> Duration? {
            guard case .rateLimited(let wait, _)? = GitHubClient.classify(r, connection: "octo", what: "x", now: now,
                                                                         backoff: nil, waits: waits) else { return nil }
            return wait
        }
        #expect(wait(response(403, [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "9223372036854775807")]))
            == .seconds(3600))
        #expect(wait(response(429, [("retry-after", "99999999999999999999")])) == .seconds(3600))
        // A reset in the past counts as absent: the secondary backoff (at least 60 s) applies.
        #expect(wait(response(403, [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1000")])) == .seconds(60))
        #expect(wait(response(429, [("retry-after", "-5")])) == .seconds(60))
        #expect(wait(response(403, [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "\(1_795_932_010)")]))
            == .seconds(11), "a real reset is honoured exactly (plus GitHub's one-second slack)")
    }

    @Test("rule 16: one record with 1e999 or invalid UTF-8 is rejected alone; a truncated page is a page error")
    func recordArrayParser() throws {
        var body = Array(#"{"result":[{"sys_id":"a1","n":1e999},{"sys_id":"b2","s":""#.utf8)
        body += [0xFF, 0xFE]
        body += Array(#""},{"sys_id":"c3"}],"more":true}"#.utf8)
        let (envelope, elements) = try RecordArrayParser.parse(body, recordsPath: ["result"], pathText: "$.result",
                                                               idPath: ["sys_id"], context: "snow incident")
        #expect(envelope["more"] == .bool(true))
        #expect(elements.count == 3)
        guard case .unparseable(let first) = elements[0], case .unparseable(let second) = elements[1],
              case .parsed(let third) = elements[2] else { Issue.record("got \(elements)"); return }
        #expect(first.id == "a1" && first.position == "$.result[0]" && first.reason.contains("$.result[0]"))
        #expect(second.id == "b2" && second.position == "$.result[1]")
        #expect(third["sys_id"] == "c3")
        // A GitHub-style top-level array.
        let top = try RecordArrayParser.parse(Array(#"[{"id":1e999},{"id":2}]"#.utf8), recordsPath: [], pathText: "$",
                                              idPath: ["id"], context: "octo")
        #expect(top.elements.count == 2)
        for broken in [#"{"result":[{"sys_id":"a"},{"sys_"#, "<html>hibernating</html>", #"{"result":[1e999"#, "",
                       String(repeating: "[", count: 100_000)] {
            #expect(throws: ProviderError.self) {
                _ = try RecordArrayParser.parse(Array(broken.utf8), recordsPath: ["result"], pathText: "$.result",
                                                idPath: ["sys_id"], context: "snow")
            }
        }
    }

    @Test("rule 13: the origin decision refuses other hosts, ports, schemes, userinfo and the metadata address")
    func originDecision() throws {
        let base = try #require(URL(string: "http://127.0.0.1:8080/api"))
        func resolve(_ link: String) throws -> String {
            try ProviderOrigin.resolve(link: link, against: base, context: "orders-api/orders", field: "$.next")
        }
        #expect(try resolve("/v1/orders?page=2") == "http://127.0.0.1:8080/v1/orders?page=2")
        #expect(try resolve("orders?page=2") == "http://127.0.0.1:8080/orders?page=2")
        #expect(try resolve("http://127.0.0.1:8080/v1/orders?cursor=a%20b") == "http://127.0.0.1:8080/v1/orders?cursor=a%20b")
        for hostile in ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:8080/v1", "http://127.0.0.1:8081/v1",
                        "https://127.0.0.1:8080/v1", "//127.0.0.2:8080/v1", "http://user:pw@127.0.0.1:8080/v1",
                        "http://127.0.0.1:8080@127.0.0.2/v1", "http://127.0.0.1:8080\\@127.0.0.2/", "file:///etc/passwd",
                        "gopher://127.0.0.1:8080/", "http://127.0.0.1:8080/a b", ""] {
            #expect(throws: ProviderError.self, "\(hostile)") { _ = try resolve(hostile) }
        }
        do {
            _ = try resolve("http://169.254.169.254/latest/meta-data/")
        } catch ProviderError.malformed(_, let message) {
            #expect(message.contains("169.254.169.254") && message.contains("orders-api"))
        }
    }
}

@Suite("Untrusted provider answers: adapters against loopback servers")
struct UntrustedAdapterTests {
    @Test("rule 13: a cross-origin next link (body field or Link header) fails the page and sends nothing there")
    func crossOriginNextLinks() async throws {
        let other = try RecordingListener(host: "127.0.0.2")
        defer { other.server.stop() }
        let otherSamePort = try RecordingListener(host: "127.0.0.1")
        defer { otherSamePort.server.stop() }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let record = #"{"id":"1","updated_at":"2026-11-29T06:00:00Z"}"#
        for target in [other.server.baseURL + "/steal", otherSamePort.server.baseURL + "/steal"] {
            // next_url in the body.
            let api = try ScriptedAPI { _, _ in .json(Array(#"{"data":[\#(record)],"next":"\#(target)"}"#.utf8)) }
            defer { api.server.stop() }
            let source = try restSource(try restConnection(baseURL: api.server.baseURL, path: "/v1/orders?since={cursor}",
                                                           pagination: ["style": "next_url", "field": "next"]),
                                        transport: transport)
            let error = await expectProviderError {
                try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 2))
            }
            guard case .malformed(_, let message)? = error else { Issue.record("got \(String(describing: error))"); continue }
            #expect(message.contains(target) && message.contains("orders-api"))
            // Link header.
            let linked = try ScriptedAPI { _, _ in
                HTTPServerResponse(status: 200, headers: [("Content-Type", "application/json"),
                                                          ("Link", "<\(target)>; rel=\"next\"")],
                                   body: Array(#"{"data":[\#(record)]}"#.utf8))
            }
            defer { linked.server.stop() }
            let viaLink = try restSource(try restConnection(baseURL: linked.server.baseURL, path: "/v1/orders?since={cursor}",
                                                            pagination: ["style": "link_header"]), transport: transport)
            await #expect(throws: ProviderError.self) {
                try await viaLink.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 2))
            }
            // A stored position carrying such a link (written before the check) is refused too.
            let stored = ScanPosition(timestamp: Date(timeIntervalSince1970: 0), recordID: "1", hints: ["url": target])
            await #expect(throws: ProviderError.self) {
                try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: stored, pageSize: 2))
            }
        }
        #expect(other.requests == 0 && otherSamePort.requests == 0, "the other origin got no request at all")
    }

    @Test("rule 13: a relative next link is resolved against base_url and followed, with the token")
    func relativeNextLinkIsFollowed() async throws {
        let seen = Mutex<[String]>([])
        let api = try ScriptedAPI { request, n in
            seen.withLock { $0.append("\(request.path) \(request.headers["authorization"] ?? "-")") }
            if n == 1 {
                return .json(Array(#"{"data":[{"id":"1","updated_at":"2026-11-29T06:00:00Z"}],"next":"page2?x=1"}"#.utf8))
            }
            return .json(Array(#"{"data":[]}"#.utf8))
        }
        defer { api.server.stop() }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let source = try restSource(try restConnection(baseURL: api.server.baseURL, path: "/v1/orders?since={cursor}",
                                                       pagination: ["style": "next_url", "field": "next"]),
                                    transport: transport)
        // From the records' own timestamp the page stays inside one run, so the walk follows the API's link. The
        // relative link is resolved against the URL it came in (RFC 3986 §5.1) and stays on base_url's origin.
        let t = try #require(Timestamps.parseRFC3339("2026-11-29T06:00:00Z"))
        let first = try await source.fetchDelta(DeltaRequest(lowerBound: t, after: nil, pageSize: 2))
        #expect(first.records.count == 1)
        let next = try #require(first.next)
        #expect(next.hints["url"] == api.server.baseURL + "/v1/page2?x=1")
        let second = try await source.fetchDelta(DeltaRequest(lowerBound: t, after: next, pageSize: 2))
        #expect(second.records.isEmpty && second.next == nil)
        let log = seen.withLock { $0 }
        #expect(log.last?.hasPrefix("/v1/page2") == true, "\(log)")
        #expect(log.allSatisfy { $0.hasSuffix("Bearer rest-secret-token") })
    }

    @Test("rule 13: ProviderHTTP refuses a URL off the connection's origin before sending anything")
    func providerHTTPRefusesOtherOrigins() async throws {
        let other = try RecordingListener(host: "127.0.0.2")
        defer { other.server.stop() }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let http = ProviderHTTP(transport: transport, connection: "c",
                                allowedOrigins: [try #require(ProviderOrigin("http://127.0.0.1:1"))])
        await #expect(throws: ProviderError.self) {
            _ = try await http.send(url: other.server.baseURL + "/x", headers: [("Authorization", "Bearer secret")])
        }
        #expect(other.requests == 0)
    }

    @Test("rule 18: a REST API that ignores the page parameter ends the scan with an error after a bounded number of requests")
    func ignoredPageParameterEnds() async throws {
        for (pagination, path) in [(["style": "page", "start": 1] as JSONValue, "/v1/orders?since={cursor}&page={page}"),
                                   (["style": "offset"] as JSONValue, "/v1/orders?since={cursor}&offset={offset}")] {
            let api = try ScriptedAPI { _, _ in
                .json(Array(#"{"data":[{"id":"1","updated_at":"2026-11-29T06:00:00Z"},{"id":"2","updated_at":"2026-11-29T06:00:00Z"}]}"#.utf8))
            }
            defer { api.server.stop() }
            let transport = try CurlHTTPClient()
            defer { transport.shutdown() }
            let source = try restSource(try restConnection(baseURL: api.server.baseURL, path: path, pagination: pagination),
                                        transport: transport)
            var after: ScanPosition?
            var failure: ProviderError?
            for _ in 0..<50 {
                do {
                    let page = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: after, pageSize: 2))
                    guard let next = page.next else { break }
                    after = next
                } catch let error as ProviderError {
                    failure = error
                    break
                }
            }
            guard case .malformed(_, let message)? = failure else { Issue.record("got \(String(describing: failure))"); continue }
            #expect(message.contains("orders-api/orders") && message.contains("repeated"))
            #expect(api.requests == 3, "page 1, page 1 from the newest timestamp, then the repeated page 2")
        }
    }

    @Test("rule 18: a response over max_response_bytes is responseTooLarge naming the setting")
    func responseTooLarge() async throws {
        let big = String(repeating: "x", count: 200_000)
        let api = try ScriptedAPI { _, _ in
            .json(Array(#"{"data":[{"id":"1","updated_at":"2026-11-29T06:00:00Z","blob":"\#(big)"}]}"#.utf8))
        }
        defer { api.server.stop() }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        var connection = try restConnection(baseURL: api.server.baseURL, path: "/v1/orders?since={cursor}", pagination: ["style": "none"])
        connection.limits.maxResponseBytes = 65_536
        let source = try restSource(connection, transport: transport)
        let error = await expectProviderError {
            try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 2))
        }
        guard case .responseTooLarge(let limit, let message)? = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(limit == 65_536 && message.contains("max_response_bytes") && !message.contains("maxResponseBytes"))
        // Under the default 32 MiB cap the same page is fine.
        connection.limits = .defaults
        let page = try await restSource(connection, transport: transport)
            .fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 2))
        #expect(page.records.count == 1)
    }

    @Test("rule 16: REST records with a null id, a 1e999 or an out-of-range cursor are rejected; the page flows")
    func restRejectsPerRecord() async throws {
        let api = try ScriptedAPI { _, n in
            n > 1 ? .json(Array(#"{"data":[]}"#.utf8)) : .json(Array(#"""
                {"data":[{"id":"1","updated_at":"2026-11-29T06:00:00Z"},{"id":null,"updated_at":"2026-11-29T06:00:01Z"},
                 {"id":"3","updated_at":"2026-11-29T06:00:02Z","amount":1e999},{"id":"4","updated_at":"10000-01-01T00:00:00Z"},
                 {"id":"5","updated_at":"2026-11-29T06:00:03Z"},{"id":"6","updated_at":"2099-01-01T00:00:00Z"}]}
                """#.utf8))
        }
        defer { api.server.stop() }
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let source = try restSource(try restConnection(baseURL: api.server.baseURL, path: "/v1/orders?since={cursor}",
                                                       pagination: ["style": "none"]), transport: transport)
        let page = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 2))
        #expect(page.records.map(\.id) == ["1", "5", "6"], "a record dated 2099 is valid input (rule 14 is the engine's)")
        #expect(page.rejected.map(\.position) == ["$.data[1]", "$.data[2]", "$.data[3]"])
        #expect(page.rejected.map(\.id) == [nil, "3", "4"])
        #expect(page.rejected[2].reason.contains("$.data[3].updated_at"))
    }
}
