// `auth.type` kinds more than one provider accepts. A provider's own kinds live in its schema file
// (`oauth2` in ServiceNowSchema, `github_app` in GitHubSchema, `tba` in NetSuiteSchema, `header` in RestSchema).

extension AuthKind {
    /// HTTP Basic: `username`, `password` (secret).
    static let basic = AuthKind(type: "basic") { a, v in
        let user = a.string("username", required: true, expected: "the user name")
        let password = v.secret(a, "password")
        guard let user, let password else { return nil }
        return .basic(username: user, password: password)
    }

    /// A bearer token: `token` (secret).
    static let token = AuthKind(type: "token") { a, v in
        v.secret(a, "token").map { .token($0) }
    }

    /// Every key any auth kind reads: accepted unjudged when the type is missing or wrong, so only the type is
    /// reported.
    static let allKeys = ["username", "password", "grant", "client_id", "client_secret", "refresh_token", "token",
                          "app_id", "installation_id", "private_key", "consumer_key", "consumer_secret", "token_id",
                          "token_secret", "name", "value"]
}
