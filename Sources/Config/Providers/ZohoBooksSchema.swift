// Zoho Books' config schema: `data_center` (default `com`) and `organization_id` on the connection, base_url
// derived from the data center (`https://www.zohoapis.<dc>/books/v3`) and the token URL from its accounts server,
// objects are the list endpoints deltahook polls (invoices, contacts, bills, items, salesorders, estimates), auth
// is the OAuth refresh-token grant. Wire facts: docs/providers.md "Zoho Books". Adapter: `Sources/Providers/ZohoBooks/`.
public import Foundation

extension Provider {
    public static let zohoBooks = Provider(name: "zoho_books")
}

/// A Zoho data center: where an organization's data and its OAuth accounts server live
/// (docs/providers.md "Zoho Books", [ZB3][ZA2]).
public struct ZohoDataCenter: Sendable, Hashable {
    /// As written in the config: `com`, `eu`, `in`, `com.au`, `jp`, `ca`, `com.cn`, `sa`.
    public let name: String
    /// `https://www.zohoapis.<dc>/books/v3`.
    public let apiBase: String
    /// `https://accounts.zoho.<dc>` (Canada: `accounts.zohocloud.ca`).
    public let accountsBase: String

    /// Every data center Zoho documents; the accounts host of Canada is not `zoho.ca` (docs/providers.md).
    public static let all: [ZohoDataCenter] = [
        .init(name: "com", apiBase: "https://www.zohoapis.com/books/v3", accountsBase: "https://accounts.zoho.com"),
        .init(name: "eu", apiBase: "https://www.zohoapis.eu/books/v3", accountsBase: "https://accounts.zoho.eu"),
        .init(name: "in", apiBase: "https://www.zohoapis.in/books/v3", accountsBase: "https://accounts.zoho.in"),
        .init(name: "com.au", apiBase: "https://www.zohoapis.com.au/books/v3", accountsBase: "https://accounts.zoho.com.au"),
        .init(name: "jp", apiBase: "https://www.zohoapis.jp/books/v3", accountsBase: "https://accounts.zoho.jp"),
        .init(name: "ca", apiBase: "https://www.zohoapis.ca/books/v3", accountsBase: "https://accounts.zohocloud.ca"),
        .init(name: "com.cn", apiBase: "https://www.zohoapis.com.cn/books/v3", accountsBase: "https://accounts.zoho.com.cn"),
        .init(name: "sa", apiBase: "https://www.zohoapis.sa/books/v3", accountsBase: "https://accounts.zoho.sa"),
    ]

    public static func named(_ name: String) -> ZohoDataCenter? { all.first { $0.name == name } }
}

/// A Zoho Books connection's own keys (`ConnectionSettings.zohoBooks`).
public struct ZohoBooksSettings: Sendable {
    public var dataCenter: ZohoDataCenter
    /// `organization_id`: digits; sent as a query parameter on every API request (docs/providers.md [ZB1]).
    public var organizationID: String
    /// Where the refresh-token grant is posted: `accounts_url` when set (an emulator), else the data center's
    /// accounts server when base_url is derived, else base_url's origin (an emulator serving both).
    public var accountsURL: URL?
}

/// A Zoho Books object's own settings (`ObjectSettings.zohoBooks`): derived from the object's name and model.
public struct ZohoBooksObjectSettings: Sendable, Hashable {
    /// The list endpoint, e.g. `invoices`.
    public var endpoint: String
    /// The response member holding the records (`invoices`) and each record's id field (`invoice_id`).
    public var recordsKey: String
    public var idField: String
    /// `contact_type` filter (`customer` for the customer model), applied by the adapter to contacts.
    public var contactType: String?
}

extension ConnectionSettings {
    public var zohoBooks: ZohoBooksSettings? {
        if case .zohoBooks(let settings) = self { settings } else { nil }
    }
}

extension ObjectSettings {
    public var zohoBooks: ZohoBooksObjectSettings? {
        if case .zohoBooks(let settings) = self { settings } else { nil }
    }
}

struct ZohoBooksSchema: ProviderSchema {
    /// Object name → (records member, id field), per the Zoho Books API reference of each module.
    static let endpoints: [String: (records: String, id: String)] = [
        "invoices": ("invoices", "invoice_id"), "contacts": ("contacts", "contact_id"), "bills": ("bills", "bill_id"),
        "items": ("items", "item_id"), "salesorders": ("salesorders", "salesorder_id"),
        "estimates": ("estimates", "estimate_id"),
    ]

    var provider: Provider { .zohoBooks }
    var connectionKeys: [String] { ["data_center", "organization_id", "accounts_url"] }
    var authKinds: [AuthKind] { [.oauthRefresh] }
    var models: [RecordModel] { [.invoice, .customer, .record] }
    /// `per_page` ≤ 200 (docs/providers.md [ZB2]).
    var defaultPageSize: Int { 200 }
    var maximumPageSize: Int { 200 }
    var objectNameExpected: String { "one of " + Self.endpoints.keys.sorted().joined(separator: ", ") }

    func isValidObjectName(_ name: String) -> Bool { Self.endpoints[name] != nil }

    func connectionSettings(_ c: Fields, validator: Validator) -> ConnectionSettings? {
        let problems = validator.problems
        var dataCenter = ZohoDataCenter.named("com")
        if let name = c.string("data_center", expected: "a Zoho data center such as \"com\" or \"eu\"") {
            dataCenter = ZohoDataCenter.named(name)
            if dataCenter == nil {
                let known = ZohoDataCenter.all.map(\.name)
                problems.add(c.child("data_center"), "\"\(name)\" is not a Zoho data center; expected one of "
                    + known.map { "\"\($0)\"" }.joined(separator: ", ")
                    + " (the domain of your Zoho Books web address)" + Suggestion.hint(for: name, in: known))
            }
        }
        var organization: String?
        switch c.raw("organization_id") {
        case .none:
            problems.add(c.child("organization_id"), "is required; expected the organization id (digits), shown in Zoho Books under Settings > Organization Profile")
        case .some(let value):
            let text = value.stringValue ?? value.int64Value.map(String.init)
            if let text, !text.isEmpty, text.count <= 30, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                organization = text
            } else {
                problems.add(c.child("organization_id"), "expected the organization id as digits, e.g. \"10234695\", found "
                    + (value.stringValue.map { "\"\($0.prefix(40))\"" } ?? value.typeName))
            }
        }
        var accounts: URL?
        if c.has("accounts_url"), let text = c.string("accounts_url", expected: "an https URL") {
            accounts = validator.parseURL(text, path: c.child("accounts_url"), allowHTTP: true, isBase: true)
            if accounts == nil { return nil }
        } else if !c.has("base_url") {
            accounts = dataCenter.flatMap { URL(string: $0.accountsBase) }
        }
        guard let dataCenter, let organization else { return nil }
        return .zohoBooks(ZohoBooksSettings(dataCenter: dataCenter, organizationID: organization, accountsURL: accounts))
    }

    func defaultBaseURL(_ settings: ConnectionSettings) -> URL? {
        settings.zohoBooks.flatMap { URL(string: $0.dataCenter.apiBase) }
    }

    func objectSettings(_ o: Fields, validator: Validator) -> ObjectSettings? {
        guard let name = o.object["name"]?.stringValue, let endpoint = Self.endpoints[name] else { return nil }
        let model = o.object["model"]?.stringValue ?? "record"
        // The normalized models read one module's fields each (docs/models-zoho.md).
        if model == "invoice" && name != "invoices" {
            validator.problems.add(o.child("model"), "model \"invoice\" maps Zoho Books invoices only; use \"record\" for \(name)")
            return nil
        }
        if model == "customer" && name != "contacts" {
            validator.problems.add(o.child("model"), "model \"customer\" maps Zoho Books contacts only; use \"record\" for \(name)")
            return nil
        }
        return .zohoBooks(ZohoBooksObjectSettings(endpoint: name, recordsKey: endpoint.records, idField: endpoint.id,
                                                  contactType: model == "customer" ? "customer" : nil))
    }
}

extension AuthKind {
    /// Zoho's OAuth refresh-token grant: `client_id`, `client_secret` and `refresh_token` (both secrets), from a
    /// Self Client or server-based client in the Zoho API console (docs/providers.md "Zoho Books", [ZA1]).
    static let oauthRefresh = AuthKind(type: "oauth_refresh") { a, v in
        let clientID = a.string("client_id", required: true, expected: "the OAuth client id from the Zoho API console, e.g. \"1000.ABC…\"")
        let secret = v.secret(a, "client_secret")
        let refresh = v.secret(a, "refresh_token")
        guard let clientID, let secret, let refresh else { return nil }
        return .oauthRefresh(clientID: clientID, clientSecret: secret, refreshToken: refresh)
    }
}
