// The declarative generic REST provider (DESIGN §3): any JSON API that lists records updated since a time,
// oldest first, described in config by a URL template, a records path, id and cursor fields and a
// pagination style. No code per API.
//
// Offsets and page numbers drift while the data changes (a record updated mid-scan moves to the end and
// the records behind it shift one place left, so one is skipped). So, like the GitHub adapter, the scan
// walks with the cursor itself: after every page that reached a newer timestamp it asks for the first page
// again from the newest timestamp seen (inclusive), and uses the API's own pagination only inside a run of
// identical timestamps (DESIGN §2 rule 3). Re-reads at the boundary are suppressed by content hash.
public import Config
public import Core
public import HTTPClient
import Crypto
public import Foundation

public struct RestSource: ObjectSource {
    public let descriptor: ObjectDescriptor
    let http: ProviderHTTP
    let baseURL: String
    let spec: RestRequestConfig
    let pageSize: Int
    let authHeaders: [(name: String, value: String)]

    /// The cursor value used for "everything" (initial sync, reconciliation sweeps).
    static let beginning = Date(timeIntervalSince1970: 0)

    public init(connection: ConnectionConfig, object: ObjectConfig, transport: any HTTPTransport) throws {
        guard let spec = object.request else {
            throw ProviderError.configuration(
                message: "\(connection.id)/\(object.name): a rest object needs a \"request\" block")
        }
        self.spec = spec
        var volatile = Set(object.ignoreFields)
        if spec.cursorField.count == 1, let field = spec.cursorField.first { volatile.insert(field) }
        descriptor = ObjectDescriptor(
            connection: connection.id, provider: "rest", object: object.name, model: object.model.rawValue,
            volatileFields: volatile,
            granularity: spec.cursorFormat == .unixMilliseconds ? .milliseconds(1) : .seconds(1))
        http = ProviderHTTP(transport: transport, connection: connection.id)
        var base = connection.baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        baseURL = base
        pageSize = object.pageSize
        authHeaders = try Self.headers(for: connection.auth, connection: connection.id)
    }

    static func headers(for auth: AuthConfig, connection: String) throws -> [(name: String, value: String)] {
        switch auth {
        case .none: return []
        case .token(let token): return [("Authorization", "Bearer \(token.unredactedValue)")]
        case .header(let name, let value): return [(name, value.unredactedValue)]
        case .basic(let username, let password):
            let pair = Data("\(username):\(password.unredactedValue)".utf8).base64EncodedString()
            return [("Authorization", "Basic \(pair)")]
        default:
            throw ProviderError.configuration(message: "\(connection): this auth type is not available for rest")
        }
    }

    // MARK: ObjectSource

    public func fetchDelta(_ request: DeltaRequest) async throws -> DeltaPage {
        let position = request.after.map(QueryPosition.init) ?? QueryPosition.start(
            cursor: request.lowerBound ?? Self.beginning, pagination: spec.pagination)
        let page = try await fetch(position)
        guard let last = page.records.last else { return DeltaPage(records: [], next: nil) }
        let newest = page.records.compactMap(\.updatedAt).max() ?? position.cursor
        let next: QueryPosition?
        if !page.hasMore {
            next = nil
        } else if newest > position.cursor {
            next = .start(cursor: newest, pagination: spec.pagination)
        } else {
            next = position.advanced(pagination: spec.pagination, received: page.records.count, token: page.nextToken,
                                     url: page.nextURL)
        }
        return DeltaPage(records: page.records,
                         next: next.map { $0.scanPosition(timestamp: newest, recordID: last.id) })
    }

    public func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage {
        var after: ScanPosition? = nil
        if let token {
            guard let data = token.data(using: .utf8),
                  let decoded = try? JSONDecoder().decode(ScanPosition.self, from: data) else {
                throw ProviderError.malformed(path: "$", message: "\(descriptor.connection)/\(descriptor.object): bad sweep token")
            }
            after = decoded
        }
        let page = try await fetchDelta(DeltaRequest(lowerBound: Self.beginning, after: after, pageSize: pageSize))
        let nextToken = try page.next.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        return IDPage(ids: page.records.map(\.id), next: nextToken)
    }

    /// Generic APIs have no delete feed; reconciliation sweeps find deletes.
    public func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? { nil }

    // MARK: Requests

    struct FetchedPage {
        var records: [SourceRecord]
        var hasMore: Bool
        var nextToken: String?
        var nextURL: String?
    }

    func url(for position: QueryPosition) -> String {
        if let absolute = position.url { return absolute }
        var path = spec.path
        let values: [(String, String)] = [
            ("{cursor}", Self.format(position.cursor, as: spec.cursorFormat)),
            ("{limit}", String(pageSize)),
            ("{page}", String(position.page)),
            ("{offset}", String(position.offset)),
            ("{next}", position.token ?? ""),
        ]
        for (placeholder, value) in values {
            path = path.replacingOccurrences(of: placeholder, with: Self.percentEncode(value))
        }
        return baseURL + (path.hasPrefix("/") ? path : "/" + path)
    }

    func fetch(_ position: QueryPosition) async throws -> FetchedPage {
        let url = url(for: position)
        let context = "\(descriptor.connection)/\(descriptor.object)"
        let response = try await http.send(url: url, headers: authHeaders + [("Accept", "application/json")])
        switch response.status {
        case 200..<300: break
        case 401:
            throw ProviderError.authentication(message: "\(context): HTTP 401 \(ProviderHTTP.excerpt(response.body))",
                                               hint: "check the connection's auth secret")
        case 403:
            throw ProviderError.permission(message: "\(context): HTTP 403 \(ProviderHTTP.excerpt(response.body))")
        case 429, 503:
            if let wait = ProviderHTTP.retryAfter(response.headers) {
                throw ProviderError.rateLimited(retryAfter: wait, message: "\(context): HTTP \(response.status)")
            }
            throw ProviderError.http(status: response.status, message: "\(context): \(ProviderHTTP.excerpt(response.body))")
        default:
            throw ProviderError.http(status: response.status, message: "\(context): \(ProviderHTTP.excerpt(response.body))")
        }
        let body = try response.json(context: context)
        let recordsPathText = spec.recordsPath.isEmpty ? "$" : "$." + spec.recordsPath.joined(separator: ".")
        guard let items = body.value(atPath: spec.recordsPath)?.arrayValue else {
            throw ProviderError.malformed(path: recordsPathText, message: "\(context): expected an array of records")
        }
        var records = [SourceRecord]()
        records.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            records.append(try sourceRecord(item, path: "\(recordsPathText)[\(index)]"))
        }
        var hasMore = !records.isEmpty
        var nextToken: String? = nil
        var nextURL: String? = nil
        switch spec.pagination {
        case .none: hasMore = false
        case .page, .offset: break
        case .nextToken(let field):
            nextToken = Self.scalarText(body.value(atPath: field))
            hasMore = hasMore && nextToken != nil
        case .nextURL(let field):
            nextURL = Self.scalarText(body.value(atPath: field))
            hasMore = hasMore && nextURL != nil
        case .linkHeader:
            nextURL = LinkHeader.parse(response.headers.values("link"))["next"]
            hasMore = hasMore && nextURL != nil
        }
        return FetchedPage(records: records, hasMore: hasMore, nextToken: nextToken, nextURL: nextURL)
    }

    func sourceRecord(_ item: JSONValue, path: String) throws -> SourceRecord {
        let idPath = spec.idField.joined(separator: ".")
        guard let id = Self.scalarText(item.value(atPath: spec.idField)), !id.isEmpty else {
            throw ProviderError.malformed(path: "\(path).\(idPath)", message: "missing record id")
        }
        let cursorPath = spec.cursorField.joined(separator: ".")
        guard let cursorValue = item.value(atPath: spec.cursorField), !cursorValue.isNull else {
            throw ProviderError.malformed(path: "\(path).\(cursorPath)", message: "missing cursor field")
        }
        guard let updatedAt = Self.parse(cursorValue, as: spec.cursorFormat) else {
            throw ProviderError.malformed(path: "\(path).\(cursorPath)",
                                          message: "\(cursorValue) is not a \(spec.cursorFormat.rawValue) timestamp")
        }
        return SourceRecord(id: id, updatedAt: updatedAt, raw: item, record: item)
    }

    // MARK: Cursor formats

    static func format(_ date: Date, as format: RestCursorFormat) -> String {
        switch format {
        case .rfc3339: Timestamps.rfc3339(date)
        case .sql: Timestamps.sqlStyle(date)
        case .unixSeconds: String(Timestamps.unixSeconds(date))
        case .unixMilliseconds: String(Int64((date.timeIntervalSince1970 * 1000).rounded(.down)))
        }
    }

    static func parse(_ value: JSONValue, as format: RestCursorFormat) -> Date? {
        switch format {
        case .rfc3339: value.stringValue.flatMap(Timestamps.parseRFC3339)
        case .sql: value.stringValue.flatMap { Timestamps.parseSQLStyle($0) }
        case .unixSeconds: (value.int64Value ?? value.stringValue.flatMap { Int64($0) })
            .map { Date(timeIntervalSince1970: Double($0)) }
        case .unixMilliseconds: (value.int64Value ?? value.stringValue.flatMap { Int64($0) })
            .map { Date(timeIntervalSince1970: Double($0) / 1000) }
        }
    }

    static func scalarText(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let s)?: s.isEmpty ? nil : s
        case .integer(let i)?: String(i)
        default: nil
        }
    }

    static func percentEncode(_ value: String) -> String { PercentEncoding.rfc3986(value) }
}

/// Where the next request of a scan goes: the cursor value of the query, and the API's own pagination
/// state inside it. Persisted in ScanPosition.hints so a restarted scan re-issues the same request.
struct QueryPosition: Equatable {
    var cursor: Date
    var page: Int
    var offset: Int
    var token: String?
    var url: String?

    static func start(cursor: Date, pagination: RestPagination) -> QueryPosition {
        if case .page(let start) = pagination {
            return QueryPosition(cursor: cursor, page: start, offset: 0)
        }
        return QueryPosition(cursor: cursor, page: 1, offset: 0)
    }

    init(cursor: Date, page: Int, offset: Int, token: String? = nil, url: String? = nil) {
        self.cursor = cursor
        self.page = page
        self.offset = offset
        self.token = token
        self.url = url
    }

    init(_ position: ScanPosition) {
        let ms = position.hints["cursor_ms"].flatMap(Int64.init)
        cursor = ms.map { Date(timeIntervalSince1970: Double($0) / 1000) } ?? position.timestamp
        page = position.hints["page"].flatMap(Int.init) ?? 1
        offset = position.hints["offset"].flatMap(Int.init) ?? 0
        token = position.hints["token"]
        url = position.hints["url"]
    }

    /// The next request inside the same query (a run of identical timestamps longer than a page).
    func advanced(pagination: RestPagination, received: Int, token: String?, url: String?) -> QueryPosition {
        var next = QueryPosition(cursor: cursor, page: page, offset: offset)
        switch pagination {
        case .none: break
        case .page: next.page += 1
        case .offset: next.offset += received
        case .nextToken: next.token = token
        case .nextURL, .linkHeader: next.url = url
        }
        return next
    }

    func scanPosition(timestamp: Date, recordID: String) -> ScanPosition {
        var hints = ["cursor_ms": String(Int64((cursor.timeIntervalSince1970 * 1000).rounded(.down))),
                     "page": String(page), "offset": String(offset)]
        if let token { hints["token"] = token }
        if let url { hints["url"] = url }
        return ScanPosition(timestamp: timestamp, recordID: recordID, hints: hints)
    }
}
