// How one easy handle is set up for a request: method, URL, headers, body, timeouts, TLS and the
// callbacks that feed a `Transfer`. Split from CurlHTTPClient.swift to keep each file readable.
import CCurl
import Foundation

extension CurlLoop {
    // MARK: Option setup

    func configure(_ handle: UnsafeMutableRawPointer, for transfer: Transfer) throws {
        let request = transfer.request
        let target = request.url
        func check(_ code: CURLcode, _ what: String) throws {
            guard code == CURLE_OK else {
                let kind: HTTPClientError.Kind = code == CURLE_URL_MALFORMAT ? .invalidURL : .invalidRequest
                throw HTTPClientError(kind: kind, target: target,
                                      message: "\(what): \(String(cString: curl_easy_strerror(code)))",
                                      curlCode: Int(code.rawValue))
            }
        }
        func setString(_ option: CURLoption, _ value: String, _ what: String) throws {
            try check(value.withCString { deltahook_curl_setopt_string(handle, option, $0) }, what)
        }
        func setLong(_ option: CURLoption, _ value: Int) {
            _ = deltahook_curl_setopt_long(handle, option, value)
        }

        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        transfer.errorBuffer = errorBuffer
        _ = deltahook_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))

        guard request.url.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw HTTPClientError(kind: .invalidURL, target: target, message: "URL contains spaces or control characters")
        }
        try setString(CURLOPT_URL, request.url, "URL rejected")
        try setString(CURLOPT_PROTOCOLS_STR, "http,https", "protocol restriction")
        setLong(CURLOPT_NOSIGNAL, 1)
        setLong(CURLOPT_FOLLOWLOCATION, 0) // docs/DESIGN.md §5: never follow redirects
        setLong(CURLOPT_TIMEOUT_MS, Self.milliseconds(request.timeout))
        setLong(CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(request.options.connectTimeout))
        _ = deltahook_curl_setopt_off(handle, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(request.options.maxResponseBytes))
        try setString(CURLOPT_USERAGENT, userAgent, "user agent")
        if request.options.acceptCompressed { try setString(CURLOPT_ACCEPT_ENCODING, "", "accept-encoding") }
        if let caFile = request.options.caFile { try setString(CURLOPT_CAINFO, caFile, "CA file") }

        if let pinned = request.options.pinnedAddress {
            guard !pinned.isEmpty, pinned.utf8.allSatisfy({ $0 == 0x3A || $0 == 0x2E || Self.isHexDigit($0) }) else {
                throw HTTPClientError(kind: .invalidRequest, target: target,
                                      message: "pinned address must be an IP literal")
            }
            // "::ADDR:" = any host, any port of this request connects to ADDR on the URL's port.
            // CONNECT_TO is per handle (unlike CURLOPT_RESOLVE, which would poison the shared DNS
            // cache) and curl only reuses a connection made with the same connect-to target.
            let literal = pinned.contains(":") ? "[\(pinned)]" : pinned
            transfer.connectTo = curl_slist_append(nil, "::\(literal):")
            _ = deltahook_curl_setopt_slist(handle, CURLOPT_CONNECT_TO, transfer.connectTo)
        }

        // Method and body.
        let method = request.method.uppercased()
        guard !method.isEmpty, method.utf8.allSatisfy({ Self.isTokenByte($0) }) else {
            throw HTTPClientError(kind: .invalidRequest, target: target, message: "invalid method \(request.method)")
        }
        var sendsBody = !request.body.isEmpty || method == "POST" || method == "PUT" || method == "PATCH"
        switch method {
        case "GET" where request.body.isEmpty:
            setLong(CURLOPT_HTTPGET, 1)
            sendsBody = false
        case "HEAD":
            setLong(CURLOPT_NOBODY, 1)
            sendsBody = false
        case "POST":
            setLong(CURLOPT_POST, 1)
        default:
            try setString(CURLOPT_CUSTOMREQUEST, method, "method")
        }
        if sendsBody {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, request.body.count), alignment: 1)
            buffer.copyBytes(from: request.body)
            transfer.bodyBuffer = buffer
            setLong(CURLOPT_POST, 1)
            if method != "POST" { try setString(CURLOPT_CUSTOMREQUEST, method, "method") }
            _ = deltahook_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count))
            _ = deltahook_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, buffer.baseAddress)
        }

        // Headers, in order. CR/LF/NUL would allow header injection.
        var list: UnsafeMutablePointer<curl_slist>?
        var hasContentType = false, hasExpect = false
        for (name, value) in request.headers {
            guard !name.isEmpty, name.utf8.allSatisfy({ Self.isTokenByte($0) }),
                  value.utf8.allSatisfy({ $0 != 0x0D && $0 != 0x0A && $0 != 0 }) else {
                if let list { curl_slist_free_all(list) }
                throw HTTPClientError(kind: .invalidRequest, target: target,
                                      message: "invalid header field \(name.utf8.allSatisfy { Self.isTokenByte($0) } ? name : "(bad name)")")
            }
            if name.caseInsensitiveEquals("Content-Type") { hasContentType = true }
            if name.caseInsensitiveEquals("Expect") { hasExpect = true }
            // "Name;" is curl's syntax for sending a header with an empty value.
            let line = value.isEmpty ? "\(name);" : "\(name): \(value)"
            list = curl_slist_append(list, line)
        }
        // curl would add a form Content-Type to POST bodies and Expect: 100-continue to large ones
        // (a wasted round trip); an empty "Name:" removes a curl-generated header.
        if sendsBody && !hasContentType { list = curl_slist_append(list, "Content-Type:") }
        if sendsBody && !hasExpect { list = curl_slist_append(list, "Expect:") }
        transfer.headerList = list
        if let list { _ = deltahook_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, list) }

        // Callbacks get the transfer back through an unretained pointer; `active` keeps it alive.
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        _ = deltahook_curl_setopt_callback(handle, CURLOPT_WRITEFUNCTION) { data, size, count, user in
            guard let user else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            return transfer.receive(UnsafeRawBufferPointer(start: data, count: size * count))
        }
        _ = deltahook_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
        _ = deltahook_curl_setopt_callback(handle, CURLOPT_HEADERFUNCTION) { data, size, count, user in
            guard let user else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }
        _ = deltahook_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context)
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        let ms = seconds.multipliedReportingOverflow(by: 1000)
        guard !ms.overflow else { return Int.max }
        // curl treats 0 as "no timeout": never let a tiny duration turn into that.
        return max(1, Int(ms.partialValue + attoseconds / 1_000_000_000_000_000))
    }

    static func isHexDigit(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)
    }

    /// RFC 9110 token characters (method and field names).
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }
}
