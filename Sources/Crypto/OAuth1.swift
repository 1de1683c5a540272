// OAuth 1.0a request signing with HMAC-SHA256, as NetSuite Token-Based Authentication requires
// (RFC 5849 §3.4 with the SHA-256 MAC; NetSuite help "The Signature for Web Services and RESTlets",
// provider-wire-facts §2.5). Used by the NetSuite adapter to sign and by the NetSuite emulator to verify.
public import Foundation

/// OAuth 1.0a (RFC 5849) signatures with HMAC-SHA256 for NetSuite TBA.
public enum OAuth1 {
    /// The four TBA secrets plus the account realm (`123456_SB1`, upper-case with underscore).
    public struct Credentials: Sendable {
        public var realm: String?
        public var consumerKey: String
        public var consumerSecret: String
        public var token: String
        public var tokenSecret: String

        /// Credentials as NetSuite issues them (integration record + access token).
        public init(realm: String?, consumerKey: String, consumerSecret: String, token: String, tokenSecret: String) {
            self.realm = realm
            self.consumerKey = consumerKey
            self.consumerSecret = consumerSecret
            self.token = token
            self.tokenSecret = tokenSecret
        }
    }

    /// Errors from signing or verifying. Never contain secrets or signatures.
    public enum OAuthError: Error, Sendable, Equatable, CustomStringConvertible {
        case invalidURL(String)
        case malformedHeader(String)
        case missingParameter(String)
        case unsupportedSignatureMethod(String)
        case signatureMismatch

        public var description: String {
            switch self {
            case .invalidURL(let why): "OAuth 1.0a: cannot build the base string URI: \(why)"
            case .malformedHeader(let why): "OAuth 1.0a: malformed Authorization header: \(why)"
            case .missingParameter(let name): "OAuth 1.0a: the Authorization header lacks \(name)"
            case .unsupportedSignatureMethod(let m):
                "OAuth 1.0a: signature method \(m) is not supported; NetSuite requires HMAC-SHA256"
            case .signatureMismatch: "OAuth 1.0a: oauth_signature does not match the request"
            }
        }
    }

    /// The parameters of an `Authorization: OAuth …` header, decoded, in header order.
    public struct HeaderParameters: Sendable, Equatable {
        public var realm: String?
        public var parameters: [String: String]
    }

    /// RFC 3986 §2.1 percent-encoding as RFC 5849 §3.6 requires: every byte outside `A-Za-z0-9-._~` becomes
    /// `%XX` (upper-case hex) of its UTF-8.
    public static func percentEncode(_ text: String) -> String { PercentEncoding.rfc3986(text) }

    /// RFC 5849 §3.4.1.3.2: encode names and values, sort by encoded name then encoded value (byte order),
    /// join `name=value` with `&`.
    public static func normalizedParameters(_ pairs: [(String, String)]) -> String {
        pairs.map { (percentEncode($0.0), percentEncode($0.1)) }
            .sorted { a, b in
                a.0 == b.0 ? a.1.utf8.lexicographicallyPrecedes(b.1.utf8) : a.0.utf8.lexicographicallyPrecedes(b.0.utf8)
            }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// RFC 5849 §3.4.1.2 base string URI: lower-case scheme and host, default port dropped, no query.
    public static func baseStringURI(_ url: URL) throws(OAuthError) -> String {
        guard let components = URLComponents(url: url, resolvingAgainstBaseURL: true) else {
            throw .invalidURL("not a parseable URL")
        }
        guard let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw .invalidURL("scheme must be http or https")
        }
        guard let host = components.percentEncodedHost?.lowercased(), !host.isEmpty else {
            throw .invalidURL("the URL has no host")
        }
        var authority = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        if let port = components.port, !(scheme == "http" && port == 80), !(scheme == "https" && port == 443) {
            authority += ":\(port)"
        }
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        return "\(scheme)://\(authority)\(path)"
    }

    /// Query parameters decoded as `application/x-www-form-urlencoded` (`+` is a space), RFC 5849 §3.4.1.3.1.
    public static func queryParameters(_ url: URL) -> [(String, String)] {
        guard let query = URLComponents(url: url, resolvingAgainstBaseURL: true)?.percentEncodedQuery,
              !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (s: Substring) -> String in
                let spaced = s.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    /// RFC 5849 §3.4.1: `METHOD&enc(base URI)&enc(normalized oauth_* + query parameters)`. `oauthParameters`
    /// must not contain `realm` or `oauth_signature`; a JSON body is never part of it.
    public static func signatureBaseString(method: String, url: URL, oauthParameters: [(String, String)])
        throws(OAuthError) -> String
    {
        let uri = try baseStringURI(url)
        let params = normalizedParameters(oauthParameters + queryParameters(url))
        return "\(method.uppercased())&\(percentEncode(uri))&\(percentEncode(params))"
    }

    /// RFC 5849 §3.4.2 with SHA-256: base64(HMAC-SHA256(enc(consumer_secret)&enc(token_secret), base string)).
    public static func signature(baseString: String, consumerSecret: String, tokenSecret: String) -> String {
        let key = percentEncode(consumerSecret) + "&" + percentEncode(tokenSecret)
        return Data(HMAC.sha256(key: Array(key.utf8), message: Array(baseString.utf8))).base64EncodedString()
    }

    /// A nonce of `length` alphanumeric characters from OpenSSL's CSPRNG (NetSuite wants at least 6).
    public static func makeNonce(length: Int = 20) throws -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var out = [UInt8]()
        while out.count < length {
            // Rejection sampling keeps the distribution uniform: 248 = 4 × 62.
            for byte in try SecureRandom.bytes(length) where byte < 248 && out.count < length {
                out.append(alphabet[Int(byte) % alphabet.count])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The `Authorization` header value for NetSuite TBA: `OAuth realm="…", oauth_consumer_key="…", …,
    /// oauth_signature="…"` (provider-wire-facts §2.5). `nonce` and `timestamp` are injectable for tests.
    public static func authorizationHeader(method: String, url: URL, credentials: Credentials,
                                           nonce: String? = nil, timestamp: Int64? = nil,
                                           now: Date = Date()) throws -> String
    {
        let oauth: [(String, String)] = [
            ("oauth_consumer_key", credentials.consumerKey),
            ("oauth_token", credentials.token),
            ("oauth_signature_method", "HMAC-SHA256"),
            ("oauth_timestamp", String(timestamp ?? Int64(now.timeIntervalSince1970.rounded(.down)))),
            ("oauth_nonce", try nonce ?? makeNonce()),
            ("oauth_version", "1.0"),
        ]
        let base = try signatureBaseString(method: method, url: url, oauthParameters: oauth)
        let sig = signature(baseString: base, consumerSecret: credentials.consumerSecret,
                            tokenSecret: credentials.tokenSecret)
        var fields = [String]()
        if let realm = credentials.realm { fields.append("realm=\"\(realm)\"") }
        for (name, value) in oauth + [("oauth_signature", sig)] {
            fields.append("\(name)=\"\(percentEncode(value))\"")
        }
        return "OAuth " + fields.joined(separator: ", ")
    }

    /// Parses `OAuth name="value", …` (RFC 5849 §3.5.1): values percent-decoded, `realm` kept apart,
    /// whitespace after commas optional, duplicate names rejected.
    public static func parseAuthorizationHeader(_ header: String) throws(OAuthError) -> HeaderParameters {
        var text = Substring(header.trimmingCharacters(in: .whitespaces))
        guard text.count >= 6, text.prefix(6).lowercased() == "oauth " else {
            throw .malformedHeader("expected the OAuth scheme")
        }
        text = text.dropFirst(6)
        var realm: String?
        var parameters = [String: String]()
        while true {
            text = text.drop { $0 == " " || $0 == "\t" || $0 == "," }
            if text.isEmpty { break }
            guard let eq = text.firstIndex(of: "=") else { throw .malformedHeader("a parameter has no '='") }
            let name = text[..<eq].trimmingCharacters(in: .whitespaces)
            text = text[text.index(after: eq)...]
            guard text.first == "\"" else { throw .malformedHeader("the value of \(name) is not quoted") }
            text = text.dropFirst()
            guard let close = text.firstIndex(of: "\"") else { throw .malformedHeader("unterminated value of \(name)") }
            let raw = String(text[..<close])
            text = text[text.index(after: close)...]
            if name == "realm" {
                guard realm == nil else { throw .malformedHeader("duplicate realm") }
                realm = raw
                continue
            }
            guard let value = raw.removingPercentEncoding else {
                throw .malformedHeader("the value of \(name) is not percent-encoded correctly")
            }
            guard parameters[name] == nil else { throw .malformedHeader("duplicate parameter \(name)") }
            parameters[name] = value
        }
        return HeaderParameters(realm: realm, parameters: parameters)
    }

    /// Verifies a parsed header against the request by recomputing the signature over every `oauth_*`
    /// parameter present except `oauth_signature` (oauthlib does the same), plus the query parameters.
    /// The caller looks the secrets up by `oauth_consumer_key` / `oauth_token` and checks nonce/timestamp.
    public static func verify(method: String, url: URL, header: HeaderParameters, consumerSecret: String,
                              tokenSecret: String) throws(OAuthError)
    {
        for required in ["oauth_consumer_key", "oauth_token", "oauth_signature_method", "oauth_timestamp",
                         "oauth_nonce", "oauth_signature"] where header.parameters[required] == nil {
            throw .missingParameter(required)
        }
        let signatureMethod = header.parameters["oauth_signature_method"] ?? ""
        guard signatureMethod == "HMAC-SHA256" else { throw .unsupportedSignatureMethod(signatureMethod) }
        let oauth = header.parameters.filter { $0.key.hasPrefix("oauth_") && $0.key != "oauth_signature" }
            .map { ($0.key, $0.value) }
        let base = try signatureBaseString(method: method, url: url, oauthParameters: oauth)
        let expected = signature(baseString: base, consumerSecret: consumerSecret, tokenSecret: tokenSecret)
        guard let given = header.parameters["oauth_signature"].flatMap({ Data(base64Encoded: $0) }),
              let wanted = Data(base64Encoded: expected),
              ConstantTime.equals(Array(wanted), Array(given)) else { throw .signatureMismatch }
    }
}
