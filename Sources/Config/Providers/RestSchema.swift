// The generic REST provider's config schema: base_url is required, each object carries a declarative `request`
// (path template with placeholders, records/id/cursor dot paths, cursor format, pagination style), no delete
// feed, auth is none, Basic, a bearer token or a named header. Adapter: `Sources/Providers/Rest/`.
import Foundation

extension Provider {
    public static let rest = Provider(name: "rest")
}

extension ObjectSettings {
    public var rest: RestRequestConfig? {
        if case .rest(let request) = self { request } else { nil }
    }
}

/// The generic REST provider's declarative request description (see config.example.json, "request").
public struct RestRequestConfig: Sendable {
    /// Path and query appended to `base_url`, with placeholders `{cursor}`, `{limit}`, `{page}`, `{offset}`,
    /// `{next}`. Placeholder values are percent-encoded.
    public var path: String
    /// Dot path to the array of records in the response body; empty when the body is the array.
    public var recordsPath: [String]
    /// Dot path to the record id inside a record.
    public var idField: [String]
    /// Dot path to the record's updated-at value inside a record.
    public var cursorField: [String]
    public var cursorFormat: RestCursorFormat
    public var pagination: RestPagination
}

public enum RestCursorFormat: String, Sendable, CaseIterable {
    /// `2026-11-29T06:00:00Z` (fractional seconds and offsets accepted when reading).
    case rfc3339
    /// `2026-11-29 06:00:00`, UTC.
    case sql
    /// Integer seconds since 1970.
    case unixSeconds = "unix_seconds"
    /// Integer milliseconds since 1970.
    case unixMilliseconds = "unix_milliseconds"
}

public enum RestPagination: Sendable, Equatable {
    /// One request per poll.
    case none
    /// `{page}` counts up from `start`, only inside a full page of one timestamp (RestSource walks with `{cursor}`
    /// otherwise; docs/DESIGN.md §2 rule 3).
    case page(start: Int)
    /// `{offset}` grows by the records received, only inside a full page of one timestamp (as `page`).
    case offset
    /// `{next}` takes the opaque token found at `field` in the previous response; absent or null ends.
    case nextToken(field: [String])
    /// The next request is the absolute URL at `field` in the body; absent or null ends.
    case nextURL(field: [String])
    /// Follow `Link: <…>; rel="next"` (RFC 8288).
    case linkHeader
}


struct RestSchema: ProviderSchema {
    static let placeholders = ["cursor", "limit", "page", "offset", "next"]

    var provider: Provider { .rest }
    var objectKeys: [String] { ["request"] }
    var authKinds: [AuthKind] { [.none, .basic, .token, .header] }
    var models: [RecordModel] { [.record] }
    var defaultPageSize: Int { 100 }
    var maximumPageSize: Int { 10_000 }
    var baseURLExample: String? { "the API's root URL, e.g. \"https://api.example.com\"" }

    func objectSettings(_ o: Fields, validator: Validator) -> ObjectSettings? {
        o.object("request", required: true, expected: "the request description (see config.example.json)")
            .flatMap { validator.validateRequest($0) }
            .map { .rest($0) }
    }
}

extension AuthKind {
    /// No authentication.
    static let none = AuthKind(type: "none") { _, _ in AuthConfig.none }

    /// A secret sent in a named header: `name` (e.g. `X-API-Key`), `value` (secret).
    static let header = AuthKind(type: "header") { a, v in
        let name = a.string("name", required: true, expected: "an HTTP header name such as \"X-API-Key\"")
        if let name, !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
            v.problems.add(a.child("name"), "\"\(name)\" is not an HTTP header name")
            return nil
        }
        let value = v.secret(a, "value")
        guard let name, let value else { return nil }
        return .header(name: name, value: value)
    }
}

extension Validator {
    func validateRequest(_ r: Fields) -> RestRequestConfig? {
        defer { r.reportUnknownKeys() }
        let path = r.string("path", required: true, expected: "a path template such as \"/v1/orders?updated_since={cursor}&limit={limit}\"")
        var used: Set<String> = []
        if let path {
            if !path.hasPrefix("/") {
                problems.add(r.child("path"), "\"\(path)\" must start with \"/\" (it is appended to base_url)")
            }
            var rest = Substring(path)
            while let open = rest.firstIndex(of: "{") {
                guard let close = rest[open...].firstIndex(of: "}") else {
                    problems.add(r.child("path"), "unclosed \"{\" in \"\(path)\"")
                    break
                }
                let name = String(rest[rest.index(after: open)..<close])
                if RestSchema.placeholders.contains(name) { used.insert(name) } else {
                    problems.add(r.child("path"), "unknown placeholder {\(name)}; known: {cursor}, {limit}, {page}, {offset}, {next}\(Suggestion.hint(for: name, in: RestSchema.placeholders))")
                }
                rest = rest[rest.index(after: close)...]
            }
            if !used.contains("cursor") {
                problems.add(r.child("path"), "must contain {cursor} so each poll asks only for records updated since the cursor")
            }
        }
        let records = dotPath(r, "records", required: false) ?? []
        let idField = dotPath(r, "id_field", required: true)
        let cursorField = dotPath(r, "cursor_field", required: true)
        let format = r.choice("cursor_format", RestCursorFormat.self) ?? .rfc3339
        var pagination = RestPagination.none
        var needed: Set<String> = []
        if let value = r.raw("pagination") {
            let pp = r.child("pagination")
            let styles = ["none", "page", "offset", "next_token", "next_url", "link_header"]
            var style: String?
            var p: Fields?
            if let s = value.stringValue { style = s } else if let f = Fields(value, path: pp, problems: problems) {
                p = f
                style = f.string("style", required: true, expected: styles.joined(separator: ", "))
            }
            switch style {
            case "none": pagination = .none
            case "page":
                pagination = .page(start: p?.integer("start", in: 0...1) ?? 1)
                needed.insert("page")
            case "offset": pagination = .offset; needed.insert("offset")
            case "next_token", "next_url":
                let field = p.flatMap { dotPath($0, "field", required: true) }
                if p == nil { problems.add(pp, "style \"\(style ?? "")\" needs an object with \"field\", e.g. {\"style\": \"\(style ?? "")\", \"field\": \"meta.next\"}") }
                if let field { pagination = style == "next_token" ? .nextToken(field: field) : .nextURL(field: field) }
                if style == "next_token" { needed.insert("next") }
            case "link_header": pagination = .linkHeader
            case nil: break
            case let other?:
                problems.add(p == nil ? pp : joinPath(pp, "style"), "\"\(other)\" is not a pagination style; expected one of \(styles.joined(separator: ", "))\(Suggestion.hint(for: other, in: styles))")
            }
            p?.reportUnknownKeys()
        }
        if path != nil {
            for name in needed.subtracting(used).sorted() {
                problems.add(r.child("path"), "pagination needs the {\(name)} placeholder in the path")
            }
            for name in used.intersection(["page", "offset", "next"]).subtracting(needed).sorted() {
                problems.add(r.child("path"), "{\(name)} is only filled by the matching pagination style")
            }
        }
        guard let path, let idField, let cursorField else { return nil }
        return RestRequestConfig(path: path, recordsPath: records, idField: idField, cursorField: cursorField,
                                 cursorFormat: format, pagination: pagination)
    }

    func dotPath(_ f: Fields, _ key: String, required: Bool) -> [String]? {
        guard f.has(key) || required else { _ = f.raw(key); return nil }
        guard let text = f.string(key, required: required, expected: "a dot path such as \"data.items\"") else {
            return nil
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.allSatisfy({ !$0.isEmpty }) else {
            problems.add(f.child(key), "\"\(text)\" is not a dot path; expected names separated by \".\"")
            return nil
        }
        return parts
    }
}
