// HTTP for one Zoho Books connection: the `Zoho-oauthtoken` header, `organization_id` on every request, one
// refresh-and-retry on 401, and Zoho's error answers mapped to `ProviderError` (docs/providers.md "Zoho Books").
// Every request goes through the connection's `ProviderHTTP`, so only base_url's origin and the accounts server
// receive credentials (docs/DESIGN.md §2 rule 13) and every wait is bounded (rule 12).
public import Core
public import Foundation
import Crypto
import HTTPClient

public struct ZohoBooksClient: Sendable {
    public let http: ProviderHTTP
    /// `https://www.zohoapis.<dc>/books/v3` (or an emulator's), without a trailing slash.
    public let baseURL: String
    public let organizationID: String
    public let authenticator: ZohoBooksAuthenticator
    /// Consecutive 429s without `Retry-After`: Zoho documents no such header ([ZB4]), so the first wait is the
    /// per-minute window and repeated ones grow towards the hour (a spent daily quota), each bounded by
    /// `max_provider_wait` (rules 9, 12).
    let backoff = RateLimitBackoff(base: .seconds(60), cap: .seconds(3600))

    public var connection: String { http.connection }

    public init(http: ProviderHTTP, baseURL: String, organizationID: String, authenticator: ZohoBooksAuthenticator) {
        self.http = http
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.organizationID = organizationID
        self.authenticator = authenticator
    }

    /// `GET {base}/{path}?organization_id=…&{query}`; returns the parsed body of a 200 whose `code` is 0.
    /// `context` names the object for errors.
    public func get(_ path: String, query: [(String, String)], context: String) async throws -> ProviderResponse {
        let all = [("organization_id", organizationID)] + query
        let url = baseURL + "/" + path + "?" + all.map { "\(PercentEncoding.rfc3986($0.0))=\(PercentEncoding.rfc3986($0.1))" }
            .joined(separator: "&")
        var refreshed = false
        while true {
            let auth = try await authenticator.authorization()
            let response = try await http.send(url: url, headers: [("Authorization", auth.header),
                                                                   ("Accept", "application/json")])
            let place = "\(connection): \(context)"
            switch response.status {
            case 200:
                backoff.reset()
                return response
            case 401:
                // An expired or revoked access token: refresh once, then it is the credentials (rule 11).
                await authenticator.rejected(token: auth.token)
                if !refreshed {
                    refreshed = true
                    continue
                }
                throw ProviderError.authentication(message: "\(place): Zoho Books refused a freshly refreshed access "
                    + "token (HTTP 401: \(Self.errorText(response)))", hint: ZohoBooksAuthenticator.hint)
            case 429:
                let wait = http.retryAfter(response.headers)
                    ?? http.waits.bounded(backoff.nextWait(), source: "Zoho Books 429 without Retry-After")
                throw ProviderError.rateLimited(retryAfter: wait, message: "\(place): Zoho Books rate limit "
                    + "(100 requests a minute per organization, and a daily quota by plan): \(Self.errorText(response))")
            case 403:
                throw ProviderError.permission(message: "\(place): HTTP 403: \(Self.errorText(response)) (hint: the "
                    + "refresh token's scope must include ZohoBooks read access for this module)")
            case 400:
                throw ProviderError.http(status: 400, message: "\(place): \(Self.errorText(response)) (hint: check "
                    + "organization_id against Settings > Organization Profile and data_center against the Zoho "
                    + "Books web address)")
            default:
                throw ProviderError.http(status: response.status, message: "\(place): \(Self.errorText(response))")
            }
        }
    }

    /// Zoho's error body is `{"code": <int>, "message": "…"}` ([ZB4]); shown as `code N: message`, else an excerpt.
    static func errorText(_ response: ProviderResponse) -> String {
        guard let body = try? JSONValue.parse(response.body), let message = body["message"]?.stringValue else {
            return ProviderHTTP.excerpt(response.body, limit: 200)
        }
        let code = body["code"]?.int64Value.map { "code \($0): " } ?? ""
        return code + clipped(message, 200)
    }
}
