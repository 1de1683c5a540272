import Foundation
import HTTPClient
import HTTPServer
import Emulators
import Testing

private let gzipHello: [UInt8] = [
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0x48, 0xaf,
    0xca, 0x2c, 0x50, 0x28, 0xcf, 0x2f, 0xca, 0x49, 0x51, 0xc8, 0x18, 0x15, 0xa0, 0x54, 0x00, 0x00, 0x0a, 0x5c,
    0xf0, 0xea, 0x54, 0x01, 0x00, 0x00,
] // gzip of "hello gzip world " × 20 (340 bytes)

@Suite("HTTP client against the loopback server")
struct ClientServerTests {
    @Test func postRoundTripCarriesHeadersQueryAndBody() async throws {
        try await withServer(.sync { request in
            let echo = "\(request.method) \(request.path) q=\(request.queryValue("q") ?? "-") " +
                "plus=\(request.queryValue("p") ?? "-") x=\(request.headers["x-test"] ?? "-") " +
                "ct=\(request.headers["Content-Type"] ?? "-") body=\(request.bodyText)"
            return HTTPServerResponse(status: 201, headers: [("X-Multi", "a"), ("x-multi", "b"), ("Content-Type", "text/plain")],
                                      body: Array(echo.utf8))
        }) { server, client in
            let request = HTTPRequest(method: "POST", url: server.baseURL + "/hooks/in?q=a%20b%26c&p=1+2",
                                      headers: [("X-Test", "yes"), ("Content-Type", "application/json")],
                                      body: Array(#"{"k":1}"#.utf8))
            let response = try await client.send(request)
            #expect(response.status == 201)
            #expect(response.bodyText == #"POST /hooks/in q=a b&c plus=1 2 x=yes ct=application/json body={"k":1}"#)
            #expect(response.headers["content-type"] == "text/plain")
            #expect(response.headers.values("X-MULTI") == ["a", "b"])
            #expect(response.totalTime > .zero)
        }
    }

    @Test func getSendsNoBodyAndDefaultUserAgent() async throws {
        try await withServer(.sync { request in
            .text("\(request.method)|\(request.body.count)|\(request.headers["Content-Length"] ?? "none")|\(request.headers["User-Agent"] ?? "")")
        }) { server, client in
            let response = try await client.send(HTTPRequest(url: server.baseURL + "/"))
            #expect(response.bodyText == "GET|0|none|deltahook/1")
            let head = try await client.send(HTTPRequest(method: "HEAD", url: server.baseURL + "/"))
            #expect(head.status == 200 && head.body.isEmpty)
            let put = try await client.send(HTTPRequest(method: "PUT", url: server.baseURL + "/"))
            #expect(put.bodyText == "PUT|0|0|deltahook/1")
        }
    }

    @Test func keepAliveReusesOneConnection() async throws {
        try await withServer(.sync { request in .text("conn \(request.connectionNumber)") }) { server, client in
            for i in 0..<25 {
                let response = try await client.send(HTTPRequest(method: i % 2 == 0 ? "GET" : "POST",
                                                                 url: server.baseURL + "/\(i)", body: i % 2 == 0 ? [] : [1, 2, 3]))
                #expect(response.bodyText == "conn 1")
            }
            #expect(server.acceptedConnections == 1)
            #expect(server.servedRequests == 25)
        }
    }

    @Test func slowServerRaisesTimeout() async throws {
        try await withServer(.sync { _ in HTTPServerResponse(status: 200, delay: .seconds(3)) }) { server, client in
            let error = await expectKind(.timeout) {
                try await client.send(HTTPRequest(url: server.baseURL + "/slow?token=SECRET", timeout: .milliseconds(200)))
            }
            #expect(error?.target == server.baseURL + "/slow")
            #expect(error.map { !$0.description.contains("SECRET") } ?? false)
        }
    }

    @Test(arguments: [ConnectionFault.closeWithoutResponse, .resetConnection, .truncatedBody])
    func serverHangupIsConnectionClosed(fault: ConnectionFault) async throws {
        try await withServer(.sync { _ in
            HTTPServerResponse.text(String(repeating: "x", count: 1000)).spoiled(by: fault)
        }) { server, client in
            _ = await expectKind(.connectionClosed) { try await client.send(HTTPRequest(url: server.baseURL + "/")) }
        }
    }

    @Test func malformedResponseIsTypedError() async throws {
        try await withServer(.sync { _ in .fault(.raw(Array("NOT HTTP AT ALL\r\n\r\n".utf8))) }) { server, client in
            do {
                let response = try await client.send(HTTPRequest(url: server.baseURL + "/"))
                Issue.record("expected an error, got \(response.status)")
            } catch let error as HTTPClientError {
                #expect(error.kind == .other, "got \(error)")
            }
        }
    }

    @Test func redirectsAreReturnedNotFollowed() async throws {
        try await withServer(.sync { request in
            request.path == "/old"
                ? HTTPServerResponse(status: 302, headers: [("Location", "/new")])
                : .text("followed")
        }) { server, client in
            let response = try await client.send(HTTPRequest(url: server.baseURL + "/old"))
            #expect(response.status == 302)
            #expect(response.headers["location"] == "/new")
            #expect(server.servedRequests == 1)
        }
    }

    @Test func oversizedResponseIsTooLarge() async throws {
        try await withServer(.sync { request in
            request.path == "/gzip"
                ? HTTPServerResponse(headers: [("Content-Encoding", "gzip")], body: gzipHello)
                : HTTPServerResponse(body: [UInt8](repeating: 65, count: 100_000))
        }) { server, client in
            let small = HTTPRequestOptions(maxResponseBytes: 10_000)
            _ = await expectKind(.tooLarge) {
                try await client.send(HTTPRequest(url: server.baseURL + "/big", options: small))
            }
            // Decoded size counts: 42 compressed bytes that inflate to 340 exceed a 100-byte cap.
            _ = await expectKind(.tooLarge) {
                try await client.send(HTTPRequest(url: server.baseURL + "/gzip", options: .init(maxResponseBytes: 100)))
            }
            // The client is still usable afterwards.
            let ok = try await client.send(HTTPRequest(url: server.baseURL + "/big"))
            #expect(ok.body.count == 100_000)
        }
    }

    @Test func captureLimitKeepsPrefixAndConnection() async throws {
        try await withServer(.sync { _ in HTTPServerResponse(body: [UInt8](repeating: 66, count: 10_000)) }) { server, client in
            for _ in 0..<3 {
                let response = try await client.send(HTTPRequest(url: server.baseURL + "/", options: .init(captureLimit: 4096)))
                #expect(response.status == 200)
                #expect(response.body.count == 4096)
                #expect(response.bodyTruncated)
            }
            #expect(server.acceptedConnections == 1)
        }
    }

    @Test func gzipBodyIsDecoded() async throws {
        try await withServer(.sync { request in
            guard request.headers["Accept-Encoding"]?.contains("gzip") == true else { return .text("no gzip offered", status: 400) }
            return HTTPServerResponse(headers: [("Content-Encoding", "gzip")], body: gzipHello)
        }) { server, client in
            let response = try await client.send(HTTPRequest(url: server.baseURL + "/"))
            #expect(response.status == 200)
            #expect(response.bodyText == String(repeating: "hello gzip world ", count: 20))
        }
    }

    @Test func pinnedAddressBypassesDNS() async throws {
        try await withServer(.sync { request in .text("host=\(request.headers["Host"] ?? "")") }) { server, client in
            let request = HTTPRequest(url: "http://example.invalid:\(server.port)/pinned",
                                      options: .init(pinnedAddress: "127.0.0.1"))
            let response = try await client.send(request)
            #expect(response.bodyText == "host=example.invalid:\(server.port)")
            _ = await expectKind(.invalidRequest) {
                try await client.send(HTTPRequest(url: "http://example.invalid/", options: .init(pinnedAddress: "evil.example")))
            }
        }
    }

    @Test func cancellationStopsSlowRequest() async throws {
        try await withServer(.sync { request in
            request.path == "/slow" ? HTTPServerResponse(status: 200, delay: .seconds(20)) : .text("fast")
        }) { server, client in
            let task = Task { try await client.send(HTTPRequest(url: server.baseURL + "/slow", timeout: .seconds(60))) }
            try await Task.sleep(for: .milliseconds(150))
            task.cancel()
            let result = await task.result
            switch result {
            case .success(let response): Issue.record("expected cancellation, got \(response.status)")
            case .failure(let error): #expect(error is CancellationError)
            }
            // Already-cancelled task: fails before touching the network.
            let early = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await client.send(HTTPRequest(url: server.baseURL + "/fast"))
            }
            await #expect(throws: CancellationError.self) { try await early.value }
            #expect(try await client.send(HTTPRequest(url: server.baseURL + "/fast")).bodyText == "fast")
        }
    }

    @Test func twoHundredConcurrentRequests() async throws {
        try await withServer(.async { request in
            try? await Task.sleep(for: .milliseconds(5))
            return .text("echo \(request.path)")
        }) { server, client in
            let bodies = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for i in 0..<200 {
                    group.addTask { (i, try await client.send(HTTPRequest(url: server.baseURL + "/r\(i)")).bodyText) }
                }
                var all: [Int: String] = [:]
                for try await (i, body) in group { all[i] = body }
                return all
            }
            #expect(bodies.count == 200)
            #expect((0..<200).allSatisfy { bodies[$0] == "echo /r\($0)" })
        }
    }

    @Test func connectRefusedAndBadURLsAreTyped() async throws {
        let closedPort: UInt16
        do {
            let server = try HTTPServer(handling: .sync { _ in .text("") })
            closedPort = server.port
            server.stop()
        }
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        _ = await expectKind(.connect) { try await client.send(HTTPRequest(url: "http://127.0.0.1:\(closedPort)/")) }
        _ = await expectKind(.invalidURL) { try await client.send(HTTPRequest(url: "ftp://127.0.0.1/file")) }
        _ = await expectKind(.invalidURL) { try await client.send(HTTPRequest(url: "http://exa mple/")) }
        _ = await expectKind(.invalidRequest) {
            try await client.send(HTTPRequest(url: "http://127.0.0.1:\(closedPort)/", headers: [("X-Bad", "a\r\nInjected: 1")]))
        }
    }

    @Test func shutdownFailsLaterRequests() async throws {
        let client = try CurlHTTPClient()
        client.shutdown()
        client.shutdown()
        _ = await expectKind(.shutdown) { try await client.send(HTTPRequest(url: "http://127.0.0.1:1/")) }
    }

    /// Informal throughput probe; run with DELTAHOOK_HTTP_BENCH=1. Asserts correctness only.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DELTAHOOK_HTTP_BENCH"] != nil))
    func throughputProbe() async throws {
        try await withServer(.sync { _ in HTTPServerResponse(status: 204) }) { server, client in
            let total = 20_000, concurrency = 64
            let body = [UInt8](repeating: 120, count: 512)
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<concurrency {
                    group.addTask {
                        var ok = 0
                        for _ in stride(from: worker, to: total, by: concurrency) {
                            let r = try await client.send(HTTPRequest(method: "POST", url: server.baseURL + "/hook",
                                                                      headers: [("Content-Type", "application/json")], body: body))
                            if r.status == 204 { ok += 1 }
                        }
                        return ok
                    }
                }
                var ok = 0
                for try await n in group { ok += n }
                #expect(ok == total)
            }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("HTTP throughput: \(total) POSTs in \(elapsed) = \(Int(Double(total) / seconds))/s, connections \(server.acceptedConnections)")
        }
    }
}
