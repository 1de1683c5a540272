// The provider plug-in point of the config: what each provider adds to the generic connection and object keys.
// The generic walk is `Validator`; each provider's own keys, auth kinds, models and limits are one
// `ProviderSchema` in this folder, listed in `ProviderSchemas.all` (ARCHITECTURE.md, "How to add a provider").
import Foundation
import Core

/// One provider's config schema: everything the config validator must know about a provider beyond the keys
/// every connection and object shares (`id`, `base_url`, `auth`, `objects`, `interval`, `page_size`, …).
///
/// A conforming type (one file per provider in `Sources/Config/Providers/`, listed once in
/// `ProviderSchemas.all`) declares:
/// - its name (`provider`), the connection and object keys it adds, the auth kinds it accepts, the models its
///   data maps to, its page-size default and maximum and whether it has a delete feed;
/// - how to validate its own keys. Problems are recorded on `validator.problems` with the key's JSON path
///   (`fields.child(key)`), never thrown, so `check-config` lists every problem at once;
/// - its typed settings: a case of `ConnectionSettings` (connection level) and of `ObjectSettings` (per object),
///   which the adapter factory of the same provider (`Sources/Providers/<Name>/`) reads without checking again.
protocol ProviderSchema: Sendable {
    var provider: Provider { get }
    /// Connection keys this provider adds (e.g. NetSuite `account_id`).
    var connectionKeys: [String] { get }
    /// Object keys this provider adds (e.g. GitHub `repository`).
    var objectKeys: [String] { get }
    /// The `auth.type` values accepted, in the order the error message lists them.
    var authKinds: [AuthKind] { get }
    /// Models this provider's data maps to (docs/DESIGN.md §4); `record` always works.
    var models: [RecordModel] { get }
    var defaultPageSize: Int { get }
    var maximumPageSize: Int { get }
    /// Whether `delete_feed` is accepted (and defaults to `audit`).
    var hasDeleteFeed: Bool { get }
    /// When `base_url` is required: what to expect, e.g. `the instance URL, e.g. "https://…"`. Nil when the
    /// provider derives it (`defaultBaseURL`).
    var baseURLExample: String? { get }
    /// What a valid object name looks like, for the problem text (`letters, digits and "_"`).
    var objectNameExpected: String { get }

    /// Reads the provider's connection keys. Nil when they are invalid (problems recorded).
    func connectionSettings(_ connection: Fields, validator: Validator) -> ConnectionSettings?
    /// The `base_url` used when the key is absent and `baseURLExample` is nil.
    func defaultBaseURL(_ settings: ConnectionSettings) -> URL?
    func isValidObjectName(_ name: String) -> Bool
    /// Reads the provider's object keys. Nil when the object cannot be used (problems recorded).
    func objectSettings(_ object: Fields, validator: Validator) -> ObjectSettings?
}

extension ProviderSchema {
    var connectionKeys: [String] { [] }
    var objectKeys: [String] { [] }
    var hasDeleteFeed: Bool { false }
    var baseURLExample: String? { nil }
    var objectNameExpected: String { "letters, digits, \"-\", \"_\" and \".\"" }
    func connectionSettings(_ connection: Fields, validator: Validator) -> ConnectionSettings? { .generic }
    func defaultBaseURL(_ settings: ConnectionSettings) -> URL? { nil }
    func isValidObjectName(_ name: String) -> Bool { Validator.isIdentifier(name) }
}

/// One `auth.type` a provider accepts and how its keys are read (shared kinds in `AuthKinds.swift`).
struct AuthKind: Sendable {
    let type: String
    let parse: @Sendable (_ auth: Fields, _ validator: Validator) -> AuthConfig?
}

/// The providers deltahook knows, in the order `provider` errors list them. Adding a provider adds one line.
enum ProviderSchemas {
    static let all: [any ProviderSchema] = [ServiceNowSchema(), NetSuiteSchema(), GitHubSchema(), RestSchema(),
                                              ZohoBooksSchema()]

    static func schema(for provider: Provider) -> (any ProviderSchema)? {
        all.first { $0.provider == provider }
    }
}

/// A provider's name in `"provider"`. The known ones are the `ProviderSchemas.all` entries; each schema file
/// declares its constant (`Provider.github`).
public struct Provider: RawRepresentable, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    public let rawValue: String

    /// Nil unless a schema of that name is registered.
    public init?(rawValue: String) {
        guard ProviderSchemas.all.contains(where: { $0.provider.rawValue == rawValue }) else { return nil }
        self.rawValue = rawValue
    }

    init(name: String) { rawValue = name }

    public static var allCases: [Provider] { ProviderSchemas.all.map(\.provider) }
    public var description: String { rawValue }

    var schema: any ProviderSchema {
        guard let schema = ProviderSchemas.schema(for: self) else { preconditionFailure("unregistered provider \(rawValue)") }
        return schema
    }

    /// The default `page_size` (the provider's own limits, see each schema).
    public var defaultPageSize: Int { schema.defaultPageSize }
    public var maximumPageSize: Int { schema.maximumPageSize }
    /// Whether the provider has a delete feed (ServiceNow `sys_audit_delete`, NetSuite `DeletedRecord`).
    public var hasDeleteFeed: Bool { schema.hasDeleteFeed }
}

/// A connection's provider-specific settings, read by its schema.
public enum ConnectionSettings: Sendable {
    /// The provider has no connection keys of its own.
    case generic
    case netsuite(NetSuiteSettings)
    case zohoBooks(ZohoBooksSettings)
}

/// An object's provider-specific settings, read by its schema; the provider's adapter factory takes them as is.
public enum ObjectSettings: Sendable {
    case servicenow
    case netsuite(NetSuiteObjectSettings)
    case github(GitHubObjectSettings)
    case rest(RestRequestConfig)
    case zohoBooks(ZohoBooksObjectSettings)
}
