// GitHub's config schema: base_url defaults to `https://api.github.com`, objects name a `repository` and may
// `include_pull_requests`, per_page ≤ 100, no delete feed, auth is a token or a GitHub App.
// Adapter: `Sources/Providers/GitHub/`.
import Foundation

extension Provider {
    public static let github = Provider(name: "github")
}

/// GitHub `owner/repo`.
public struct GitHubRepository: Sendable, Hashable, CustomStringConvertible {
    public var owner: String
    public var name: String
    public var description: String { "\(owner)/\(name)" }
}

/// A GitHub object's own keys (`ObjectSettings.github`).
public struct GitHubObjectSettings: Sendable, Hashable {
    /// `repository`: the repository polled. It is also the object's cursor partition.
    public var repository: GitHubRepository
    /// `include_pull_requests`: emit events for pull requests too (default false: PRs advance the cursor only).
    public var includePullRequests: Bool
}

extension ObjectSettings {
    public var github: GitHubObjectSettings? {
        if case .github(let settings) = self { settings } else { nil }
    }
}

struct GitHubSchema: ProviderSchema {
    static let defaultBaseURL = "https://api.github.com"

    var provider: Provider { .github }
    var objectKeys: [String] { ["repository", "include_pull_requests"] }
    var authKinds: [AuthKind] { [.token, .githubApp] }
    var models: [RecordModel] { [.ticket, .record] }
    /// `per_page` ≤ 100.
    var defaultPageSize: Int { 100 }
    var maximumPageSize: Int { 100 }

    func defaultBaseURL(_ settings: ConnectionSettings) -> URL? { URL(string: GitHubSchema.defaultBaseURL) }

    func objectSettings(_ o: Fields, validator: Validator) -> ObjectSettings? {
        let includePRs = o.bool("include_pull_requests") ?? false
        guard let text = o.string("repository", required: true, expected: "\"owner/repo\"") else { return nil }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && Validator.isIdentifier($0) }) else {
            validator.problems.add(o.child("repository"), "\"\(text)\" is not \"owner/repo\"")
            return nil
        }
        return .github(GitHubObjectSettings(repository: GitHubRepository(owner: parts[0], name: parts[1]),
                                            includePullRequests: includePRs))
    }
}

extension AuthKind {
    /// GitHub App: `app_id`, `installation_id` (numbers) and `private_key` (a PEM secret).
    static let githubApp = AuthKind(type: "github_app") { a, v in
        let appID = v.idText(a, "app_id")
        let installation = v.idText(a, "installation_id")
        let key = v.secret(a, "private_key")
        if let key, !key.unredactedValue.contains("-----BEGIN") {
            v.problems.add(a.child("private_key"), "\(key.reference) does not hold a PEM private key (expected a \"-----BEGIN … PRIVATE KEY-----\" block as downloaded from the GitHub App settings)")
            return nil
        }
        guard let appID, let installation, let key else { return nil }
        return .githubApp(appID: appID, installationID: installation, privateKey: key)
    }
}

extension Validator {
    /// GitHub App ids are numbers; accept them as JSON numbers or strings.
    func idText(_ a: Fields, _ key: String) -> String? {
        guard let value = a.raw(key) else {
            problems.add(a.child(key), "is required; expected a number such as 123456")
            return nil
        }
        if let i = value.int64Value, i > 0 { return String(i) }
        if let s = value.stringValue, !s.isEmpty, s.allSatisfy(\.isNumber) { return s }
        problems.add(a.child(key), "expected a positive number such as 123456, found \(value.typeName)")
        return nil
    }
}
