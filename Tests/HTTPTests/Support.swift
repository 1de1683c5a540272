import Foundation
import Glibc
import HTTPClient
import HTTPServer
import Testing

/// Runs `body` against a fresh server and client and always stops both.
func withServer<T>(_ handler: HTTPServer.Handler, limits: HTTPServer.Limits = .init(),
                   _ body: (HTTPServer, CurlHTTPClient) async throws -> T) async throws -> T {
    let server = try HTTPServer(limits: limits, handling: handler)
    let client: CurlHTTPClient
    do { client = try CurlHTTPClient() } catch { server.stop(); throw error }
    defer {
        client.shutdown()
        server.stop()
    }
    return try await body(server, client)
}

func expectKind(_ kind: HTTPClientError.Kind, _ operation: () async throws -> HTTPResponse) async -> HTTPClientError? {
    do {
        let response = try await operation()
        Issue.record("expected \(kind), got status \(response.status)")
        return nil
    } catch let error as HTTPClientError {
        if error.kind != kind { Issue.record("expected \(kind), got \(error)") }
        return error
    } catch {
        Issue.record("expected HTTPClientError.\(kind), got \(error)")
        return nil
    }
}


/// A bare TCP client for feeding the server bytes curl would never send (chunked, pipelined, broken).
struct RawSocket: ~Copyable {
    let fd: Int32

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 { close(fd); throw HTTPServerError(message: "connect failed") }
    }

    deinit { close(fd) }

    func write(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until `count` responses' worth of "HTTP/1.1 " status lines and their bodies arrived or EOF.
    func readAll(untilContains marker: String, maxBytes: Int = 1 << 20) -> String {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while data.count < maxBytes {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data += chunk[0..<n]
            if String(decoding: data, as: UTF8.self).contains(marker) { break }
        }
        return String(decoding: data, as: UTF8.self)
    }
}
