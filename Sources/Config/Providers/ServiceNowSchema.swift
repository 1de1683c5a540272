// ServiceNow's config schema: the instance URL is required, table names are lower case, `delete_feed` reads
// `sys_audit_delete`, auth is Basic or OAuth2 (`/oauth_token.do`). Adapter: `Sources/Providers/ServiceNow/`.
import Foundation

extension Provider {
    public static let servicenow = Provider(name: "servicenow")
}

struct ServiceNowSchema: ProviderSchema {
    var provider: Provider { .servicenow }
    var objectKeys: [String] { ["delete_feed"] }
    var authKinds: [AuthKind] { [.basic, .oauth2] }
    var models: [RecordModel] { [.ticket, .user, .group, .record] }
    /// `sysparm_limit`.
    var defaultPageSize: Int { 1000 }
    var maximumPageSize: Int { 10_000 }
    var hasDeleteFeed: Bool { true }
    var baseURLExample: String? { "the instance URL, e.g. \"https://acme.service-now.com\"" }
    var objectNameExpected: String { "a table name: lower-case letters, digits and \"_\"" }

    func isValidObjectName(_ name: String) -> Bool {
        name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }
    }

    func objectSettings(_ object: Fields, validator: Validator) -> ObjectSettings? { .servicenow }
}

extension AuthKind {
    /// ServiceNow OAuth2: `grant`, `client_id`, `client_secret`, plus `username`/`password` (password grant) or
    /// `refresh_token` (refresh_token grant).
    static let oauth2 = AuthKind(type: "oauth2") { a, v in
        let grant = a.choice("grant", OAuth2Grant.self, required: true)
        let clientID = a.string("client_id", required: true, expected: "the OAuth client id (System OAuth > Application Registry)")
        let clientSecret = v.secret(a, "client_secret")
        let needsUser = grant == .password
        let needsRefresh = grant == .refreshToken
        let username = a.string("username", required: needsUser, expected: "the user name (password grant)")
        let password = a.has("password") || needsUser ? v.secret(a, "password") : nil
        let refresh = a.has("refresh_token") || needsRefresh ? v.secret(a, "refresh_token") : nil
        a.allow(["password", "refresh_token"])
        guard let grant, let clientID, let clientSecret else { return nil }
        if needsUser && (username == nil || password == nil) { return nil }
        if needsRefresh && refresh == nil { return nil }
        return .oauth2(grant: grant, clientID: clientID, clientSecret: clientSecret, username: username,
                       password: password, refreshToken: refresh)
    }
}
