// One accepted connection of an `HTTPServer`: its read buffer, the HTTP/1.1 request parser and the keep-alive
// loop, run on the connection's own thread (see HTTPServer.swift for why threads and blocking sockets).
import Dispatch
import Foundation
import Glibc
import Synchronization
struct ServerConnection {
    let fd: Int32
    let number: Int
    let server: HTTPServer
    var buffer: [UInt8] = []
    var start = 0
    /// recv() target, so reading costs one copy of what arrived and nothing more.
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)

    init(fd: Int32, number: Int, server: HTTPServer) {
        self.fd = fd
        self.number = number
        self.server = server
    }

    enum ParseFailure: Error { case closed, badRequest(String), tooLarge(Int, String) }

    mutating func run() {
        defer { scratch.deallocate() }
        buffer.reserveCapacity(16 << 10)
        while !server.stopping {
            let request: HTTPServerRequest
            do {
                guard let next = try readRequest() else { return }
                request = next
            } catch ParseFailure.badRequest(let why) {
                sendSimple(400, why)
                lingerBeforeClose()
                return
            } catch ParseFailure.tooLarge(let status, let why) {
                sendSimple(status, why)
                lingerBeforeClose()
                return
            } catch {
                return
            }
            guard let response = server.respond(to: request) else { return }
            if let delay = response.delay, !sleepInterruptibly(delay) { return }
            server.countServed()
            if let takeover = response.takeover {
                takeover(HTTPServerConnection(fd: fd), request)
                return
            }
            let closeAfter = wantsClose(request) || response.headers.contains {
                asciiCaseInsensitiveEquals($0.name, "Connection") && $0.value.lowercased().contains("close")
            }
            guard write(serializeResponse(response, for: request, close: closeAfter)) else { return }
            if closeAfter { return }
        }
    }

    func wantsClose(_ request: HTTPServerRequest) -> Bool {
        let connection = request.headers["Connection"]?.lowercased() ?? ""
        if request.version == "HTTP/1.0" { return !connection.contains("keep-alive") }
        return connection.contains("close")
    }

    /// After an error answer to a request whose body was not read: stop sending (FIN) and read what the client is
    /// still sending, for at most 1 s or 4 MiB, before the socket closes. Closing with unread input makes the kernel
    /// reset the connection, and a client still writing its body then sees the reset instead of the 413 or 400 —
    /// the "lingering close" of HTTP servers (RFC 9112 §9.6).
    func lingerBeforeClose() {
        shutdown(fd, Int32(SHUT_WR))
        let deadline = ContinuousClock.now + .seconds(1)
        var drained = 0
        while ContinuousClock.now < deadline, drained < 4 << 20 {
            let n = recv(fd, scratch.baseAddress, scratch.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            drained += n
        }
    }

    func sendSimple(_ status: Int, _ text: String) {
        let response = HTTPServerResponse.text(text + "\n", status: status)
        let request = HTTPServerRequest(method: "GET", target: "", path: "", rawQuery: "", query: [],
                                        headers: .init(), body: [])
        _ = write(serializeResponse(response, for: request, close: true))
    }

    func sleepInterruptibly(_ duration: Duration) -> Bool {
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            if server.stopping { return false }
            let left = deadline - ContinuousClock.now
            let slice = min(left, .milliseconds(20))
            let (s, a) = slice.components
            if s > 0 || a > 0 { usleep(UInt32(s * 1_000_000 + a / 1_000_000_000_000)) }
        }
        return !server.stopping
    }

    func write(_ bytes: [UInt8]) -> Bool { HTTPServerConnection(fd: fd).write(bytes) }

    /// Reads more bytes into the buffer; false on EOF, error or idle timeout.
    mutating func fill() -> Bool {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 32 << 10 {
            buffer.removeFirst(start)
            start = 0
        }
        while true {
            let n = recv(fd, scratch.baseAddress, scratch.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
            return true
        }
    }

    func find(_ pattern: [UInt8], from: Int) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        var i = max(from, start)
        let last = buffer.count - pattern.count
        while i <= last {
            if buffer[i] == pattern[0] {
                var match = true
                for k in 1..<pattern.count where buffer[i + k] != pattern[k] { match = false; break }
                if match { return i }
            }
            i += 1
        }
        return nil
    }

    /// Reads one request; nil when the peer closed cleanly between requests.
    mutating func readRequest() throws(ParseFailure) -> HTTPServerRequest? {
        let crlfcrlf: [UInt8] = [13, 10, 13, 10]
        // Offsets relative to `start`: fill() may compact the buffer and move it.
        var scanned = 0
        var headerEnd: Int
        while true {
            if let found = find(crlfcrlf, from: start + scanned) { headerEnd = found; break }
            scanned = max(0, buffer.count - start - 3)
            if buffer.count - start > server.limits.maxHeaderBytes {
                throw .tooLarge(431, "request header larger than \(server.limits.maxHeaderBytes) bytes")
            }
            if !fill() {
                if buffer.count == start { return nil }
                throw .closed
            }
        }
        if headerEnd - start > server.limits.maxHeaderBytes {
            throw .tooLarge(431, "request header larger than \(server.limits.maxHeaderBytes) bytes")
        }
        let head = String(decoding: buffer[start..<headerEnd], as: UTF8.self)
        start = headerEnd + 4
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw .badRequest("empty request") }
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else {
            throw .badRequest("malformed request line")
        }
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(lines.count)
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex,
                  line.first?.isWhitespace != true else { throw .badRequest("malformed header line") }
            let name = String(line[..<colon])
            let value = Self.trimmedFieldValue(line[line.index(after: colon)...])
            fields.append((name, value))
        }
        let headers = HTTPServerHeaders(fields)
        let method = String(requestLine[0])
        let target = String(requestLine[1])
        let version = String(requestLine[2])

        // Body: chunked wins over Content-Length only if both are absent ambiguity; both = 400 (RFC 9112 §6.3).
        let transferEncoding = headers["Transfer-Encoding"]?.lowercased()
        let contentLength = headers["Content-Length"]
        var body: [UInt8] = []
        if let transferEncoding, transferEncoding.contains("chunked") {
            guard contentLength == nil else { throw .badRequest("both Transfer-Encoding and Content-Length") }
            sendContinueIfExpected(headers)
            body = try readChunked()
        } else if let contentLength {
            guard let length = Int(contentLength), length >= 0 else { throw .badRequest("bad Content-Length") }
            guard length <= server.limits.maxBodyBytes else {
                throw .tooLarge(413, "request body larger than \(server.limits.maxBodyBytes) bytes")
            }
            if buffer.count - start < length { sendContinueIfExpected(headers) }
            while buffer.count - start < length {
                if !fill() { throw .closed }
            }
            body = Array(buffer[start..<(start + length)])
            start += length
        }

        let path: Substring, rawQuery: Substring
        if let q = target.firstIndex(of: "?") {
            path = target[..<q]
            rawQuery = target[target.index(after: q)...]
        } else {
            path = target[...]
            rawQuery = ""
        }
        return HTTPServerRequest(method: method, target: target, path: percentDecode(path, plusAsSpace: false),
                                 rawQuery: String(rawQuery), query: parseQuery(rawQuery), headers: headers,
                                 body: body, connection: .init(version: version, number: number))
    }

    /// A field value without surrounding whitespace, as `trimmingCharacters(in: .whitespaces)` gives it. The
    /// usual optional whitespace (SP, HTAB) is trimmed on the UTF-8 bytes; only a value that then starts or ends
    /// with a non-ASCII scalar (which may be a Unicode space `.whitespaces` trims) goes through Foundation. The
    /// Foundation call on every header line was 6 % of the delivery benchmark's CPU, whose receiver is this
    /// server (issue 17).
    static func trimmedFieldValue(_ text: Substring) -> String {
        let utf8 = text.utf8
        var lower = utf8.startIndex
        var upper = utf8.endIndex
        while lower < upper, utf8[lower] == 0x20 || utf8[lower] == 0x09 { lower = utf8.index(after: lower) }
        while lower < upper {
            let last = utf8.index(before: upper)
            guard utf8[last] == 0x20 || utf8[last] == 0x09 else { break }
            upper = last
        }
        // Only ASCII bytes were skipped, so both ends sit on scalar boundaries.
        let core = String(Substring(utf8[lower..<upper]))
        guard lower < upper, utf8[lower] >= 0x80 || utf8[utf8.index(before: upper)] >= 0x80 else { return core }
        return core.trimmingCharacters(in: .whitespaces)
    }

    func sendContinueIfExpected(_ headers: HTTPServerHeaders) {
        if headers["Expect"]?.lowercased() == "100-continue" {
            _ = write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
    }

    mutating func readLine() throws(ParseFailure) -> String {
        var scanned = 0
        while true {
            if let end = find([13, 10], from: start + scanned) {
                let line = String(decoding: buffer[start..<end], as: UTF8.self)
                start = end + 2
                return line
            }
            scanned = max(0, buffer.count - start - 1)
            if buffer.count - start > 8 << 10 { throw .badRequest("chunk line too long") }
            if !fill() { throw .closed }
        }
    }

    mutating func readChunked() throws(ParseFailure) -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let line = try readLine()
            let sizeText = line.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard let size = Int(sizeText, radix: 16), size >= 0 else { throw .badRequest("bad chunk size") }
            if size == 0 {
                while try !readLine().isEmpty {} // trailers
                return body
            }
            guard body.count + size <= server.limits.maxBodyBytes else {
                throw .tooLarge(413, "request body larger than \(server.limits.maxBodyBytes) bytes")
            }
            while buffer.count - start < size + 2 {
                if !fill() { throw .closed }
            }
            body += buffer[start..<(start + size)]
            guard buffer[start + size] == 13, buffer[start + size + 1] == 10 else { throw .badRequest("bad chunk end") }
            start += size + 2
        }
    }
}
