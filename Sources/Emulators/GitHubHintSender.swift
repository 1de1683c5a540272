// What GitHub does after a change when a repository webhook is configured: POST the event to the hook URL with
// `X-GitHub-Event`, a `X-GitHub-Delivery` GUID and `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`
// (GitHub Docs, "Webhook events and payloads" and "Validating webhook deliveries":
// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries). deltahook's push hints
// (docs/DESIGN.md §2 rule 23) take these as "poll now"; the tests, the latency bench and `deltahook demo` use this
// sender beside `GitHubEmulator`'s mutation API, one hint after each change.
public import Foundation
import Core
import Crypto
import HTTPClient

public final class GitHubHintSender: Sendable {
    public let url: String
    private let secret: String
    private let client: CurlHTTPClient

    /// `url`: the hook, e.g. `http://127.0.0.1:9464/hooks/gh`; `secret`: the webhook's secret as text.
    public init(url: String, secret: String) throws {
        self.url = url
        self.secret = secret
        client = try CurlHTTPClient(configuration: .init(maxCachedConnections: 4, userAgent: "GitHub-Hookshot/emulator"))
    }

    /// Stops the client's I/O thread.
    public func stop() { client.shutdown() }

    /// Sends an `issues` event for `issue` (`action`: opened, edited, closed, reopened, deleted…). Returns the
    /// hook's status, nil when it could not be reached.
    @discardableResult
    public func issueChanged(_ issue: GitHubEmulator.Issue, action: String, repository: String = "octo-org/hello")
        async -> Int?
    {
        let body = JSONValue.object(JSONObject([
            ("action", .string(action)),
            ("issue", .object(JSONObject([("id", .integer(issue.id)), ("number", .integer(issue.number)),
                                          ("title", .string(issue.title)), ("state", .string(issue.state))]))),
            ("repository", .object(JSONObject([("full_name", .string(repository))]))),
        ]))
        return await send(event: "issues", body: Array(body.serialized().utf8))
    }

    /// GitHub's `ping`, sent when a hook is created.
    @discardableResult
    public func ping() async -> Int? {
        await send(event: "ping", body: Array(#"{"zen":"Keep it logically awesome.","hook_id":1}"#.utf8))
    }

    /// Posts `body` signed as GitHub signs it; `signature` overrides the header (forged-hint tests).
    @discardableResult
    public func send(event: String, body: [UInt8], signature: String? = nil) async -> Int? {
        let signed = "sha256=" + HMAC.sha256(key: Array(secret.utf8), message: body).hexString
        let request = HTTPRequest(method: "POST", url: url, headers: [
            ("Content-Type", "application/json"), ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", UUID().uuidString.lowercased()), ("X-Hub-Signature-256", signature ?? signed),
        ], body: body, timeout: .seconds(5))
        return try? await client.send(request).status
    }
}
