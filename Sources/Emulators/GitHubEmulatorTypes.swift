// The GitHub emulator's public nested types: an issue, the faults it can inject, the request log and options.
// The emulator itself is in GitHubEmulator.swift.
public import Crypto
public import Foundation

extension GitHubEmulator {
    /// One issue or pull request as the emulator stores it.
    public struct Issue: Sendable, Hashable {
        public var id: Int64
        public var number: Int64
        public var title: String
        public var body: String?
        public var state: String
        public var stateReason: String?
        public var labels: [String]
        public var assignees: [String]
        public var author: String
        public var comments: Int
        public var isPullRequest: Bool
        public var draft: Bool
        public var createdAt: Date
        public var updatedAt: Date
        public var closedAt: Date?
    }

    /// What the next issue-list requests do instead of (or before) answering normally.
    public enum Fault: Sendable {
        /// Answer normally.
        case none
        /// Answer with this status and a GitHub error body.
        case status(Int)
        /// 200 with a body that is not JSON.
        case malformedJSON
        /// 200 with a JSON array whose first row lacks `updated_at`.
        case missingField
        /// Answer normally after this long.
        case delay(Duration)
        /// Secondary rate limit: 403 (or 429) with GitHub's message, with or without `retry-after`.
        case secondaryRateLimit(status: Int, retryAfter: Int?)
        /// Run this (e.g. mutate issues) before answering normally: "an update landing between pages".
        case hook(@Sendable (GitHubEmulator) -> Void)
        /// `status` (403 or 429) with these exact rate-limit header texts (nil: header left out), for hostile values
        /// such as `x-ratelimit-remaining: 0` + `x-ratelimit-reset: 9223372036854775807`, or
        /// `retry-after: 99999999999999999999` (docs/DESIGN.md §2 rule 12).
        case rateLimitHeaders(status: Int, remaining: String?, reset: String?, retryAfter: String?)
    }

    /// A request as the emulator saw it, for assertions.
    public struct LoggedRequest: Sendable {
        public var method: String
        public var path: String
        public var query: [String: String]
        public var ifNoneMatch: String?
        public var authorization: String?
        public var userAgent: String?
        public var status: Int
    }

    public struct Options: Sendable {
        public var owner: String
        public var repository: String
        public var repositoryID: Int64
        /// Accepted personal access tokens.
        public var tokens: Set<String>
        /// GitHub App: id (the JWT `iss`), installation id and the App's public key.
        public var appID: String?
        public var installationID: String?
        public var appPublicKey: RSAKey?
        /// Installation token lifetime (GitHub: one hour).
        public var tokenLifetime: TimeInterval
        /// Primary rate limit per window.
        public var rateLimit: Int
        /// Status for an exhausted primary limit (GitHub uses 403 or 429).
        public var rateLimitStatus: Int

        /// The GitHub App the emulator accepts JWTs from (all nil: no App).
        public struct App: Sendable {
            public var appID: String?
            public var installationID: String?
            public var appPublicKey: RSAKey?

            public init(appID: String? = nil, installationID: String? = nil, appPublicKey: RSAKey? = nil) {
                self.appID = appID
                self.installationID = installationID
                self.appPublicKey = appPublicKey
            }
        }

        public init(owner: String = "octo-org", repository: String = "hello", repositoryID: Int64 = 1_296_269,
                    tokens: Set<String> = ["ghp_emulatortoken"], app: App = App(), tokenLifetime: TimeInterval = 3600,
                    rateLimit: Int = 5000, rateLimitStatus: Int = 403) {
            self.owner = owner
            self.repository = repository
            self.repositoryID = repositoryID
            self.tokens = tokens
            self.appID = app.appID
            self.installationID = app.installationID
            self.appPublicKey = app.appPublicKey
            self.tokenLifetime = tokenLifetime
            self.rateLimit = rateLimit
            self.rateLimitStatus = rateLimitStatus
        }
    }
}
