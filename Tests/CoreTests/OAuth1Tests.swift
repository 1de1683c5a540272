// OAuth 1.0a HMAC-SHA256 for NetSuite Token-Based Authentication (docs/DESIGN.md §2 rule 11; RFC 5849;
// provider-wire-facts §2.5).
import Foundation
import Testing
import Crypto

@Suite struct OAuth1Tests {
    // The vector from NetSuite's help ("The Signature for Web Services and RESTlets"), provider-wire-facts §2.5.
    static let credentials = OAuth1.Credentials(
        realm: "123456",
        consumerKey: "ef40afdd8abaac111b13825dd5e5e2ddddb44f86d5a0dd6dcf38c20aae6b67e4",
        consumerSecret: "d26ad321a4b2f23b0741c8d38392ce01c3e23e109df6c96eac6d099e9ab9e8b5",
        token: "2b0ce516420110bcbd36b69e99196d1b7f6de3c6234c5afb799b73d87569f5cc",
        tokenSecret: "c29a677df7d5439a458c063654187e3d678d73aca8e3c9d8bea1478a3eb0d295")
    static let nonce = "fjaLirsIcCGVZWzBX0pg"
    static let timestamp: Int64 = 1_508_242_306
    static let employeeURL = URL(string: "https://123456.suitetalk.api.netsuite.com/services/rest/record/v1/employee/40")!

    static var oauthParameters: [(String, String)] {
        [("oauth_consumer_key", credentials.consumerKey), ("oauth_token", credentials.token),
         ("oauth_signature_method", "HMAC-SHA256"), ("oauth_timestamp", String(timestamp)),
         ("oauth_nonce", nonce), ("oauth_version", "1.0")]
    }

    @Test func netSuiteDocumentedVectorBaseStringAndSignature() throws {
        let base = try OAuth1.signatureBaseString(method: "get", url: Self.employeeURL,
                                                  oauthParameters: Self.oauthParameters)
        let c = Self.credentials
        #expect(base == "GET&https%3A%2F%2F123456.suitetalk.api.netsuite.com%2Fservices%2Frest%2Frecord%2Fv1%2Femployee%2F40&"
            + "oauth_consumer_key%3D\(c.consumerKey)%26oauth_nonce%3D\(Self.nonce)%26oauth_signature_method%3DHMAC-SHA256"
            + "%26oauth_timestamp%3D1508242306%26oauth_token%3D\(c.token)%26oauth_version%3D1.0")
        #expect(OAuth1.signature(baseString: base, consumerSecret: c.consumerSecret, tokenSecret: c.tokenSecret)
            == "B5OIWznZ2YP0OB7VrJrGkYsTh+8H+5T9Hag+o92q0zY=")
    }

    @Test func netSuiteHeaderCarriesRealmAndEncodedSignature() throws {
        let header = try OAuth1.authorizationHeader(method: "GET", url: Self.employeeURL, credentials: Self.credentials,
                                                    nonce: Self.nonce, timestamp: Self.timestamp)
        #expect(header.hasPrefix(#"OAuth realm="123456", "#))
        #expect(header.contains(#"oauth_signature="B5OIWznZ2YP0OB7VrJrGkYsTh%2B8H%2B5T9Hag%2Bo92q0zY%3D""#))
        #expect(header.contains(#"oauth_signature_method="HMAC-SHA256""#))
        #expect(header.contains(#"oauth_version="1.0""#))
        #expect(header.contains(#"oauth_nonce="fjaLirsIcCGVZWzBX0pg""#))
    }

    @Test func suiteQLVectorIncludesQueryParameters() throws {
        // Derived vector (provider-wire-facts §2.5): limit/offset are signed, the JSON body is not.
        let url = URL(string: "https://123456-sb1.suitetalk.api.netsuite.com/services/rest/query/v1/suiteql?limit=1000&offset=0")!
        let base = try OAuth1.signatureBaseString(method: "POST", url: url, oauthParameters: Self.oauthParameters)
        #expect(base.hasPrefix("POST&https%3A%2F%2F123456-sb1.suitetalk.api.netsuite.com%2Fservices%2Frest%2Fquery%2Fv1%2Fsuiteql&limit%3D1000%26oauth_consumer_key"))
        #expect(base.contains("oauth_version%3D1.0%26offset%3D0"))
        let c = Self.credentials
        #expect(OAuth1.signature(baseString: base, consumerSecret: c.consumerSecret, tokenSecret: c.tokenSecret)
            == "LjzqkKDpsRTpwqBkevEM3wfFmspmqdKggHTdHxxHp+U=")
    }

    @Test func rfc5849ParameterNormalizationExample() {
        // RFC 5849 §3.4.1.3.2: the example's decoded parameters and the normalized string it prints.
        let pairs: [(String, String)] = [
            ("b5", "=%3D"), ("a3", "a"), ("c@", ""), ("a2", "r b"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"), ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"), ("oauth_timestamp", "137131201"), ("oauth_nonce", "7d8f3e4a"),
            ("c2", ""), ("a3", "2 q"),
        ]
        #expect(OAuth1.normalizedParameters(pairs)
            == "a2=r%20b&a3=2%20q&a3=a&b5=%3D%253D&c%40=&c2=&oauth_consumer_key=9djdj82h48djs9d2&oauth_nonce=7d8f3e4a&oauth_signature_method=HMAC-SHA1&oauth_timestamp=137131201&oauth_token=kkk9d7dh3k39sjv7")
    }

    @Test func rfc5849QueryDecodingFromTheExampleURL() {
        let url = URL(string: "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b")!
        let query = OAuth1.queryParameters(url)
        #expect(query.map(\.0) == ["b5", "a3", "c@", "a2"])
        #expect(query.map(\.1) == ["=%3D", "a", "", "r b"])
        #expect(OAuth1.queryParameters(URL(string: "https://h/p?q=a+b")!).first?.1 == "a b")
    }

    @Test func percentEncodingIsTheUnreservedSetOnly() {
        #expect(OAuth1.percentEncode("AZaz09-._~") == "AZaz09-._~")
        #expect(OAuth1.percentEncode("a b+c*d/e=f&g%") == "a%20b%2Bc%2Ad%2Fe%3Df%26g%25")
        #expect(OAuth1.percentEncode("é☃") == "%C3%A9%E2%98%83")
    }

    @Test func baseStringURINormalization() throws {
        #expect(try OAuth1.baseStringURI(URL(string: "HTTPS://Example.COM:443/a/B?x=1#frag")!) == "https://example.com/a/B")
        #expect(try OAuth1.baseStringURI(URL(string: "http://example.com:80")!) == "http://example.com/")
        #expect(try OAuth1.baseStringURI(URL(string: "http://127.0.0.1:8080/r")!) == "http://127.0.0.1:8080/r")
        #expect(try OAuth1.baseStringURI(URL(string: "http://[::1]:8080/r")!) == "http://[::1]:8080/r")
        #expect(throws: OAuth1.OAuthError.self) { try OAuth1.baseStringURI(URL(string: "ftp://example.com/")!) }
    }

    @Test func nonceIsAlphanumericAndFresh() throws {
        let a = try OAuth1.makeNonce()
        let b = try OAuth1.makeNonce()
        #expect(a.count == 20 && a != b)
        #expect(a.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
        #expect(try OAuth1.makeNonce(length: 6).count == 6)
    }

    @Test func verifierAcceptsOwnHeaderAndRejectsChanges() throws {
        let url = URL(string: "http://127.0.0.1:9999/services/rest/query/v1/suiteql?limit=5&offset=10")!
        let c = Self.credentials
        let header = try OAuth1.authorizationHeader(method: "POST", url: url, credentials: c)
        let parsed = try OAuth1.parseAuthorizationHeader(header)
        #expect(parsed.realm == "123456")
        #expect(parsed.parameters["oauth_consumer_key"] == c.consumerKey)
        try OAuth1.verify(method: "POST", url: url, header: parsed, consumerSecret: c.consumerSecret,
                          tokenSecret: c.tokenSecret)

        #expect(throws: OAuth1.OAuthError.signatureMismatch) {
            try OAuth1.verify(method: "GET", url: url, header: parsed, consumerSecret: c.consumerSecret,
                              tokenSecret: c.tokenSecret)
        }
        let otherPage = URL(string: "http://127.0.0.1:9999/services/rest/query/v1/suiteql?limit=5&offset=15")!
        #expect(throws: OAuth1.OAuthError.signatureMismatch) {
            try OAuth1.verify(method: "POST", url: otherPage, header: parsed, consumerSecret: c.consumerSecret,
                              tokenSecret: c.tokenSecret)
        }
        #expect(throws: OAuth1.OAuthError.signatureMismatch) {
            try OAuth1.verify(method: "POST", url: url, header: parsed, consumerSecret: c.consumerSecret,
                              tokenSecret: "wrong")
        }
        var noNonce = parsed
        noNonce.parameters["oauth_nonce"] = nil
        #expect(throws: OAuth1.OAuthError.missingParameter("oauth_nonce")) {
            try OAuth1.verify(method: "POST", url: url, header: noNonce, consumerSecret: c.consumerSecret,
                              tokenSecret: c.tokenSecret)
        }
        var sha1 = parsed
        sha1.parameters["oauth_signature_method"] = "HMAC-SHA1"
        #expect(throws: OAuth1.OAuthError.unsupportedSignatureMethod("HMAC-SHA1")) {
            try OAuth1.verify(method: "POST", url: url, header: sha1, consumerSecret: c.consumerSecret,
                              tokenSecret: c.tokenSecret)
        }
    }

    @Test func verifierAcceptsTheDocumentedHeaderWithoutSpacesAndExtraOAuthParameters() throws {
        // NetSuite accepts headers without spaces after commas; extra oauth_* params must be signed too.
        let c = Self.credentials
        var params = Self.oauthParameters
        params.append(("oauth_body_hash", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="))
        let base = try OAuth1.signatureBaseString(method: "GET", url: Self.employeeURL, oauthParameters: params)
        let sig = OAuth1.signature(baseString: base, consumerSecret: c.consumerSecret, tokenSecret: c.tokenSecret)
        let header = "OAuth realm=\"123456\"," + (params + [("oauth_signature", sig)])
            .map { "\($0.0)=\"\(OAuth1.percentEncode($0.1))\"" }.joined(separator: ",")
        let parsed = try OAuth1.parseAuthorizationHeader(header)
        try OAuth1.verify(method: "GET", url: Self.employeeURL, header: parsed, consumerSecret: c.consumerSecret,
                          tokenSecret: c.tokenSecret)
    }

    @Test func headerParserRejectsMalformedInput() {
        for bad in ["Bearer abc", #"OAuth oauth_nonce=abc"#, #"OAuth oauth_nonce="abc"#,
                    #"OAuth oauth_nonce="a", oauth_nonce="b""#, "OAuth novalue"] {
            #expect(throws: OAuth1.OAuthError.self, "\(bad)") { try OAuth1.parseAuthorizationHeader(bad) }
        }
    }
}
