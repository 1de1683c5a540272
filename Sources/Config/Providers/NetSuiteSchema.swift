// NetSuite's config schema: `account_id`, `time_zone` and `max_concurrency` on the connection (base_url derived
// from the account), SuiteQL table names, `record_type` on objects, `delete_feed` reads `DeletedRecord`, auth is
// Token-Based Authentication only. Adapter: `Sources/Providers/NetSuite/`.
public import Foundation

extension Provider {
    public static let netsuite = Provider(name: "netsuite")
}

/// A NetSuite connection's own keys (`ConnectionSettings.netsuite`).
public struct NetSuiteSettings: Sendable {
    /// As written, e.g. `1234567_SB1` (the OAuth realm). The host form is `hostAccountID` (`1234567-sb1`).
    public var accountID: String
    /// The account's time zone: SuiteQL timestamps are local to it.
    public var timeZone: TimeZone
    /// Per-account concurrent request limit (default 5).
    public var maxConcurrency: Int

    /// `123456_SB1` → `123456-sb1`, the form NetSuite uses in host names.
    public var hostAccountID: String { NetSuiteSettings.hostForm(of: accountID) }

    static func hostForm(of accountID: String) -> String {
        accountID.lowercased().replacingOccurrences(of: "_", with: "-")
    }
}

/// A NetSuite object's own keys (`ObjectSettings.netsuite`).
public struct NetSuiteObjectSettings: Sendable, Hashable {
    /// `record_type`: `type` filter on `transaction`, e.g. `CustInvc`; nil = no filter.
    public var recordType: String?
}

extension ConnectionSettings {
    /// The NetSuite settings, or nil for another provider's connection.
    public var netsuite: NetSuiteSettings? {
        if case .netsuite(let settings) = self { settings } else { nil }
    }
}

extension ObjectSettings {
    public var netsuite: NetSuiteObjectSettings? {
        if case .netsuite(let settings) = self { settings } else { nil }
    }
}

struct NetSuiteSchema: ProviderSchema {
    var provider: Provider { .netsuite }
    var connectionKeys: [String] { ["account_id", "time_zone", "max_concurrency"] }
    var objectKeys: [String] { ["delete_feed", "record_type"] }
    var authKinds: [AuthKind] { [.tba] }
    var models: [RecordModel] { [.customer, .employee, .invoice, .record] }
    /// SuiteQL `limit` ≤ 1000.
    var defaultPageSize: Int { 1000 }
    var maximumPageSize: Int { 1000 }
    var hasDeleteFeed: Bool { true }
    var objectNameExpected: String { "a SuiteQL table: letters, digits and \"_\"" }

    func connectionSettings(_ c: Fields, validator: Validator) -> ConnectionSettings? {
        let problems = validator.problems
        let account = c.string("account_id", required: true, expected: "the NetSuite account id, e.g. \"1234567\" or \"1234567_SB1\"")
        if let account, !account.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
            problems.add(c.child("account_id"), "\"\(account)\" is not a NetSuite account id; expected letters, digits and \"_\", e.g. \"1234567_SB1\"")
            return nil
        }
        var zone: TimeZone?
        if let name = c.string("time_zone", required: true, expected: "the account's IANA time zone, e.g. \"America/Los_Angeles\"") {
            // Only IANA names: abbreviations like "PST" do not say when DST applies.
            if TimeZone.knownTimeZoneIdentifiers.contains(name) || name == "UTC", let tz = TimeZone(identifier: name) {
                zone = tz
            } else {
                let hint = Suggestion.hint(for: name, in: TimeZone.knownTimeZoneIdentifiers)
                problems.add(c.child("time_zone"), "\"\(name)\" is not an IANA time zone name; expected e.g. \"America/Los_Angeles\" (Setup > Company > General Preferences)\(hint)")
            }
        }
        let maxConcurrency = c.integer("max_concurrency", in: 1...100) ?? 5
        guard let account, let zone else { return nil }
        return .netsuite(NetSuiteSettings(accountID: account, timeZone: zone, maxConcurrency: maxConcurrency))
    }

    /// `https://<account, host form>.suitetalk.api.netsuite.com`.
    func defaultBaseURL(_ settings: ConnectionSettings) -> URL? {
        settings.netsuite.flatMap { URL(string: "https://\($0.hostAccountID).suitetalk.api.netsuite.com") }
    }

    func isValidObjectName(_ name: String) -> Bool {
        name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    func objectSettings(_ o: Fields, validator: Validator) -> ObjectSettings? {
        var recordType: String?
        if let t = o.string("record_type", expected: "a NetSuite record type such as \"CustInvc\"") {
            if t.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) { recordType = t } else {
                validator.problems.add(o.child("record_type"), "\"\(t)\" is not a NetSuite record type; expected letters and digits, e.g. \"CustInvc\"")
            }
        }
        return .netsuite(NetSuiteObjectSettings(recordType: recordType))
    }
}

extension AuthKind {
    /// NetSuite Token-Based Authentication: `consumer_key`, `consumer_secret`, `token_id`, `token_secret`.
    static let tba = AuthKind(type: "tba") { a, v in
        let ck = v.secret(a, "consumer_key"), cs = v.secret(a, "consumer_secret")
        let tid = v.secret(a, "token_id"), ts = v.secret(a, "token_secret")
        guard let ck, let cs, let tid, let ts else { return nil }
        return .netsuiteTBA(consumerKey: ck, consumerSecret: cs, tokenID: tid, tokenSecret: ts)
    }
}
