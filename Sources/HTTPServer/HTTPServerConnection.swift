// A connection handed to a response's `takeover` closure: the raw socket, for the few handlers that must answer
// in a way HTTP does not (the emulators' deliberate faults, `Emulators/ConnectionFault`). The server itself never
// misbehaves; after the closure returns it closes the connection.
import Glibc

public struct HTTPServerConnection: Sendable {
    let fd: Int32

    /// The status line and headers the server would send for `response` to `request`, with `Connection: close`
    /// and a Content-Length of `declaredLength` (whatever body follows).
    public func head(of response: HTTPServerResponse, for request: HTTPServerRequest, declaredLength: Int) -> [UInt8] {
        serializeResponse(HTTPServerResponse(status: response.status, headers: response.headers, body: []),
                          for: request, close: true, declaredLength: declaredLength)
    }

    /// Writes all of `bytes`; false when the peer is gone.
    public func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return true }
            var offset = 0
            while offset < raw.count {
                let n = send(fd, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
    }

    /// Ends the connection (FIN both ways) without writing more.
    public func hangUp() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Makes the close that follows a reset (RST, via SO_LINGER 0) instead of an orderly FIN.
    public func resetOnClose() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
    }
}

/// The bytes of `response` to `request` (Content-Length and Connection computed here, a handler's CR/LF dropped).
func serializeResponse(_ response: HTTPServerResponse, for request: HTTPServerRequest, close: Bool,
                       declaredLength: Int? = nil) -> [UInt8] {
    let bodyless = response.status < 200 || response.status == 204 || response.status == 304
    var head = "HTTP/1.1 \(response.status) \(reasonPhrase(response.status))\r\n"
    for (name, value) in response.headers {
        if asciiCaseInsensitiveEquals(name, "Content-Length") || asciiCaseInsensitiveEquals(name, "Transfer-Encoding")
            || asciiCaseInsensitiveEquals(name, "Connection") { continue }
        // Never let a handler's value split the header block.
        let safe = value.contains(where: { $0 == "\r" || $0 == "\n" })
            ? String(value.filter { $0 != "\r" && $0 != "\n" }) : value
        head += "\(name): \(safe)\r\n"
    }
    if !bodyless { head += "Content-Length: \(declaredLength ?? response.body.count)\r\n" }
    if close { head += "Connection: close\r\n" }
    head += "\r\n"
    var bytes = Array(head.utf8)
    if !bodyless && request.method != "HEAD" { bytes += response.body }
    return bytes
}
