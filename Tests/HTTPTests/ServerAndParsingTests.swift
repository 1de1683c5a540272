import Foundation
import Core
import HTTPClient
import HTTPServer
import Synchronization
import TestSupport
import Testing

@Suite("HTTP server wire handling")
struct ServerWireTests {
    private func echoServer() throws -> HTTPServer {
        try HTTPServer(handling: .sync { request in
            .text("\(request.method) \(request.path) [\(request.query.map { "\($0.name)=\($0.value)" }.joined(separator: ","))] raw=\(request.rawQuery) body=\(request.bodyText)")
        })
    }

    @Test func chunkedAndPipelinedRequests() throws {
        let server = try echoServer()
        defer { server.stop() }
        let socket = try RawSocket(port: server.port)
        socket.write("POST /a%2Fb?x=1&y=hello+there&z=%E2%9C%93&flag HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                     "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n" +
                     "GET /second HTTP/1.1\r\nHost: t\r\n\r\n")
        let text = socket.readAll(untilContains: "/second [] raw= body=")
        #expect(text.contains("POST /a/b [x=1,y=hello there,z=✓,flag=] raw=x=1&y=hello+there&z=%E2%9C%93&flag body=hello world"))
        #expect(text.contains("GET /second [] raw= body="))
        #expect(server.acceptedConnections == 1)
    }

    /// Header values lose surrounding SP/HTAB on bytes and Unicode spaces through Foundation, as before.
    @Test func headerValuesAreTrimmedOfOptionalWhitespace() throws {
        let server = try HTTPServer(handling: .sync { request in
            .text(["A", "B", "C", "D", "E"].map { "[\(request.headers[$0] ?? "nil")]" }.joined())
        })
        defer { server.stop() }
        let socket = try RawSocket(port: server.port)
        socket.write("GET / HTTP/1.1\r\nA: plain\r\nB:\t \tin  side \t\r\nC:\u{A0}nbsp\u{2003}\r\nD: \u{E9}t\u{E9} \r\n"
                     + "E:   \r\n\r\n")
        let text = socket.readAll(untilContains: "[]")
        #expect(text.hasSuffix("[plain][in  side][nbsp][\u{E9}t\u{E9}][]"))
    }

    @Test func malformedAndOversizedRequestsAreRejected() throws {
        let server = try HTTPServer(limits: .init(maxHeaderBytes: 1024, maxBodyBytes: 100), handling: .sync { _ in .text("ok") })
        defer { server.stop() }
        do {
            let socket = try RawSocket(port: server.port)
            socket.write("NONSENSE\r\n\r\n")
            #expect(socket.readAll(untilContains: "\r\n\r\n").hasPrefix("HTTP/1.1 400 "))
        }
        do {
            let socket = try RawSocket(port: server.port)
            socket.write("GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 4000) + "\r\n\r\n")
            #expect(socket.readAll(untilContains: "\r\n\r\n").hasPrefix("HTTP/1.1 431 "))
        }
        do {
            let socket = try RawSocket(port: server.port)
            socket.write("POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\n")
            #expect(socket.readAll(untilContains: "\r\n\r\n").hasPrefix("HTTP/1.1 413 "))
        }
        #expect(server.servedRequests == 0)
    }

    @Test func http10ClosesAndNoContentHasNoBody() throws {
        let server = try HTTPServer(handling: .sync { request in
            request.path == "/empty" ? HTTPServerResponse(status: 204) : .text("hi")
        })
        defer { server.stop() }
        let socket = try RawSocket(port: server.port)
        socket.write("GET /empty HTTP/1.1\r\n\r\nGET / HTTP/1.0\r\n\r\n")
        let text = socket.readAll(untilContains: "\r\n\r\nhi")
        #expect(text.hasPrefix("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n"))
        #expect(text.contains("Connection: close\r\n"))
    }

    @Test func stopClosesIdleConnectionsAndIsIdempotent() async throws {
        let server = try HTTPServer { _ in .text("ok") }
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        #expect(try await client.send(HTTPRequest(url: server.baseURL + "/")).status == 200)
        #expect(server.openConnections == 1)
        server.stop()
        server.stop()
        #expect(server.openConnections == 0)
        _ = await expectKind(.connect) { try await client.send(HTTPRequest(url: server.baseURL + "/")) }
    }

    /// The request is inside the handler (not still connecting) when the server stops; the client then sees the
    /// connection closed — not a connect error, not the handler's late answer — long before the handler's 30 s.
    @Test func stopInterruptsSlowAsyncHandler() async throws {
        let entered = Mutex(false)
        let server = try HTTPServer { _ in
            entered.withLock { $0 = true }
            try? await Task.sleep(for: .seconds(30))
            return .text("late")
        }
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        let started = ContinuousClock.now
        let pending = Task { try await client.send(HTTPRequest(url: server.baseURL + "/", timeout: .seconds(60))) }
        try #require(await Wait.until(timeout: .seconds(10)) { entered.withLock { $0 } }, "the handler never ran")
        server.stop()
        _ = await expectKind(.connectionClosed) { try await pending.value }
        #expect(ContinuousClock.now - started < .seconds(10), "stop() did not cut the handler's wait short")
    }
}

@Suite("Header parsing")
struct HeaderParsingTests {
    let now = Date(timeIntervalSince1970: 784_111_777) // Sun, 06 Nov 1994 08:49:37 GMT

    @Test func retryAfterSeconds() {
        #expect(RetryAfter.parse("120") == .seconds(120))
        #expect(RetryAfter.parse(" 0 ") == .zero)
        #expect(RetryAfter.parse("-5") == nil)
        #expect(RetryAfter.parse("soon") == nil)
        #expect(RetryAfter.parse("") == nil)
    }

    @Test func retryAfterDates() {
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:50:37 GMT", now: now) == .seconds(60))
        #expect(RetryAfter.parse("Sunday, 06-Nov-94 08:51:37 GMT", now: now) == .seconds(120))
        #expect(RetryAfter.parse("Sun Nov  6 08:49:47 1994", now: now) == .seconds(10))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:00:00 GMT", now: now) == .zero)
        #expect(RetryAfter.parse("Sun, 32 Nov 1994 08:00:00 GMT", now: now) == nil)
        #expect(HTTPDate.format(now) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.parse(HTTPDate.format(now)) == now)
    }

    @Test func githubLinkHeader() {
        let value = #"<https://api.github.com/repositories/1300192/issues?page=2&per_page=100>; rel="next", "# +
            #"<https://api.github.com/repositories/1300192/issues?page=5&per_page=100>; rel="last""#
        let links = LinkHeader.parse(value)
        #expect(links["next"] == "https://api.github.com/repositories/1300192/issues?page=2&per_page=100")
        #expect(links["last"] == "https://api.github.com/repositories/1300192/issues?page=5&per_page=100")
        #expect(links["prev"] == nil)
    }

    @Test func serviceNowLinkHeaderWithoutSpacesAndCommasInURL() {
        let value = #"<https://x.service-now.com/api/now/table/incident?sysparm_limit=2&sysparm_offset=-1&sysparm_fields=sys_id,number>;rel="prev","# +
            #"<https://x.service-now.com/api/now/table/incident?sysparm_limit=2&sysparm_offset=2&sysparm_fields=sys_id,number>;rel="next","# +
            #"<https://x.service-now.com/api/now/table/incident?sysparm_limit=2&sysparm_offset=8>;rel="last""#
        let links = LinkHeader.parse(value)
        #expect(links["next"] == "https://x.service-now.com/api/now/table/incident?sysparm_limit=2&sysparm_offset=2&sysparm_fields=sys_id,number")
        #expect(links["prev"]?.hasSuffix("sysparm_offset=-1&sysparm_fields=sys_id,number") == true)
        #expect(links["last"]?.hasSuffix("sysparm_offset=8") == true)
        #expect(LinkHeader.parse(["<a>; rel=\"first prev\"", "<b>; REL=next"]) == ["first": "a", "prev": "a", "next": "b"])
    }

    @Test func redactionDropsSecrets() {
        #expect(URLRedaction.redact("https://user:pw@h.example:8443/p/a?token=s#frag") == "https://h.example:8443/p/a")
        #expect(URLRedaction.redact("http://h/x") == "http://h/x")
    }
}
