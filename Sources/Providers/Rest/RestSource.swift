// The declarative generic REST provider (docs/DESIGN.md §3): any JSON API that lists records updated since a time,
// oldest first, described in config by a URL template, a records path, id and cursor fields and a
// pagination style. No code per API.
//
// Offsets and page numbers drift while the data changes (a record updated mid-scan moves to the end and
// the records behind it shift one place left, so one is skipped). So, like the GitHub adapter, the scan
// walks with the cursor itself and uses the API's own pagination only inside a run of identical timestamps,
// where nothing else advances (docs/DESIGN.md §2 rule 3). `RestSource.nextPosition` states the walk's rules
// and why no row is skipped. Re-reads at the boundary are suppressed by content hash.
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
    let authHeaders: [(name: String, value: String)]
    /// `base_url`: next-page links are resolved against it and must stay on its origin (docs/DESIGN.md §2 rule 13).
    let base: URL
    /// Header-less 429/503 backoff, bounded by max_provider_wait.
    let backoff = RateLimitBackoff()

    /// The cursor value used for "everything" (initial sync, reconciliation sweeps).
    static let beginning = Date(timeIntervalSince1970: 0)

    /// - Parameter http: the connection's limits, allowed origins and logger (ProviderFactory); nil builds one from
    ///   `connection` (tests).
    public init(connection: ConnectionConfig, object: ObjectConfig, transport: any HTTPTransport,
                http: ProviderHTTP? = nil) throws {
        guard let spec = object.settings.rest else { throw ProviderFactory.mismatch(connection, object, "rest object") }
        self.spec = spec
        var volatile = Set(object.ignoreFields)
        if spec.cursorField.count == 1, let field = spec.cursorField.first { volatile.insert(field) }
        descriptor = ObjectDescriptor(
            connection: connection.id, provider: "rest", object: object.name, model: object.model.rawValue,
            volatileFields: volatile,
            granularity: spec.cursorFormat == .unixMilliseconds ? .milliseconds(1) : .seconds(1))
        self.http = http ?? ProviderHTTP(transport: transport, connection: connection.id, limits: connection.limits,
                                         allowedOrigins: ProviderOrigin(connection.baseURL).map { [$0] } ?? [])
        var base = connection.baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        baseURL = base
        self.base = connection.baseURL
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
        // The request's page size, not the configured one: the engine halves it after a page over
        // max_response_bytes (rule 18). A smaller `{limit}` at the same page number or offset only re-reads.
        let page = try await fetch(position, pageSize: max(1, request.pageSize))
        guard page.count > 0 else { return DeltaPage(records: [], next: nil, rejected: page.rejected) }
        // Rejected records never move the cursor (their id or timestamp is what is wrong): the newest ACCEPTED
        // timestamp does. A page of only rejected records advances with the API's own pagination inside the same
        // query, so the scan still moves past them and ends (docs/DESIGN.md §2 rule 16).
        let newest = page.records.compactMap(\.updatedAt).max() ?? position.cursor
        let lastID = page.records.last?.id ?? page.rejected.last?.key ?? ""
        let pageIDs = Self.digest(page.records.map(\.id) + page.rejected.map(\.key))
        if let previous = position.previousPageIDs, previous == pageIDs {
            // An API that ignores `page`/`offset` answers every page number with the same records; each page
            // number would look like a new position and the scan would never end (docs/DESIGN.md §2 rule 18).
            throw ProviderError.malformed(path: "$", message: "\(descriptor.connection)/\(descriptor.object): page "
                + "\(position.describe(spec.pagination)) repeated the records of the previous page; the API seems to ignore "
                + "the \(spec.pagination.parameterName) parameter (hint: check request.path's {page}/{offset} placeholder and "
                + "the API's pagination, or use next_url, next_token or link_header pagination)")
        }
        var next = nextPosition(after: page, at: position, pageSize: max(1, request.pageSize), newest: newest)
        next?.largestPage = max(position.largestPage, page.count)
        // Only a step inside the same query (the API's next page number or offset) can repeat this page.
        if spec.pagination.isNumbered, next?.cursor == position.cursor { next?.previousPageIDs = pageIDs }
        return DeltaPage(records: page.records,
                         next: next.map { $0.scanPosition(timestamp: newest, recordID: lastID) },
                         rejected: page.rejected)
    }

    /// Where the walk goes after `page`, read at `position` (docs/DESIGN.md §2 rule 3). Timestamps are compared by
    /// granule, the cursor's resolution as the API sees it (`{cursor}` is printed in whole seconds, except
    /// `unix_milliseconds`); "the run" is the rows in the granule of the query's cursor C.
    ///
    /// 1. A first page of a query (page `start`, offset 0, no token or link) holds every row the API had from C on,
    ///    contiguously up to its last row. When it reaches a later granule, the walk asks a first page again from its
    ///    newest row (inclusive): nothing between C and that row can be missed.
    /// 2. A page whose rows all lie in C's granule continues the run with the API's own pagination: the token or
    ///    link while the API gives one, page N+1 or offset + rows only when the page is full. A numbered page is
    ///    short when it holds fewer rows than asked and fewer than the largest page this API has returned in this
    ///    scan (an API may silently cap a `{limit}` above its maximum, or have no `{limit}` at all; a page that
    ///    merely matches its cap is not the end). A short page ends the run: the walk asks a first page from the
    ///    next granule. Asking page N+1 after a short page would count positions in a set that may have grown in
    ///    between: 50 rows dated over the last minutes becoming visible between the two requests (a bulk job,
    ///    late-visible rows) would put rows 1–49 of them before page 2's window, and the walk would go on past them.
    /// 3. A later page (N > 1) whose first row is already past the run means the run ended before the window began —
    ///    rows of the run were updated away, or rows appeared, between the requests — and the rows between the run
    ///    and the window were never on a page. The walk asks a first page from the next granule after C (not from the
    ///    page's newest row, and not from C itself, which a run longer than a page would repeat forever). It does so
    ///    even when the page carries no next token or link: the end marker describes the window, not what it skipped.
    ///    A later page whose first row is still in the run joins the rest of the set contiguously and is case 1.
    ///
    /// No row is skipped: the cursor moves past a row only from a first page that held it (case 1) or after the run
    /// it belongs to was paged to its end (cases 2 and 3); rows that change meanwhile move to the end of the order,
    /// which every first page from a later cursor still reaches. (Inside a run longer than a page, rows of the run
    /// updated between two page requests can shift one unread row of the run into a page already read — the limit
    /// of page numbers, docs/DESIGN.md §2 rule 3; the rows after the run are never lost.)
    ///
    /// The walk ends (rule 18): every step either moves the cursor to a strictly later granule at a first page, or
    /// keeps it and moves the API's pagination strictly forward inside one finite run; an API that ignores `page` or
    /// `offset` repeats the previous page's ids and fails the scan (`prev_ids`), and `max_pages_per_scan` bounds the
    /// rest. A cursor granule beyond year 9999 ends the scan.
    func nextPosition(after page: FetchedPage, at position: QueryPosition, pageSize: Int, newest: Date) -> QueryPosition? {
        let run = granule(position.cursor)
        if !position.isFirst(spec.pagination), let first = page.records.first?.updatedAt, granule(first) > run {
            return nextGranule(after: position.cursor).map { QueryPosition.start(cursor: $0, pagination: spec.pagination) }
        }
        guard page.hasMore else { return nil }
        if granule(newest) > run {
            return .start(cursor: newest, pagination: spec.pagination)
        }
        let short = page.count < pageSize && page.count < position.largestPage
        if spec.pagination.isNumbered, !page.records.isEmpty, short {
            return nextGranule(after: position.cursor).map { QueryPosition.start(cursor: $0, pagination: spec.pagination) }
        }
        // A full page of the run, or a page of only rejected records (rule 16): the API's own next page.
        return position.advanced(pagination: spec.pagination, received: page.count, token: page.nextToken, url: page.nextURL)
    }

    /// The cursor's resolution in milliseconds: what `{cursor}` can tell apart.
    var granuleMilliseconds: Int64 { spec.cursorFormat == .unixMilliseconds ? 1 : 1000 }

    /// The start of `date`'s granule, in milliseconds since 1970 (a lower bound before 1970 counts as 1970).
    func granule(_ date: Date) -> Int64 {
        let milliseconds = max(0, Timestamps.unixMilliseconds(date))
        return milliseconds - milliseconds % granuleMilliseconds
    }

    /// The first instant of the granule after `date`'s; nil past year 9999.
    func nextGranule(after date: Date) -> Date? {
        Timestamps.date(unixMilliseconds: granule(date) + granuleMilliseconds)
    }

    /// A short digest of a page's ids, kept in the position to notice a page that repeats the previous one.
    static func digest(_ ids: [String]) -> String {
        String(Digest.sha256Hex(ids.joined(separator: "\n")).prefix(32))
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
        // Rejected records are not listed: they have no snapshot (the delta scan rejects them too), so leaving
        // them out deletes nothing live; the token is the walk position, never a record id.
        let nextToken = try page.next.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        return IDPage(ids: page.records.map(\.id), next: nextToken)
    }

    /// Generic APIs have no delete feed; reconciliation sweeps find deletes.
    public func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? { nil }

    // MARK: Requests

    struct FetchedPage {
        var records: [SourceRecord]
        var rejected: [RejectedRecord]
        var hasMore: Bool
        var nextToken: String?
        var nextURL: String?
        /// Records read, accepted or not.
        var count: Int { records.count + rejected.count }
    }

    /// The request URL for `position`. A next-page link (a stored hint) is resolved and checked against
    /// `base_url`'s origin again here, so even a position written before the check was added cannot send
    /// the connection's credentials elsewhere (docs/DESIGN.md §2 rule 13).
    func url(for position: QueryPosition, pageSize: Int) throws -> String {
        if let link = position.url {
            return try ProviderOrigin.resolve(link: link, against: base, context: context, field: "next")
        }
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

    var context: String { "\(descriptor.connection)/\(descriptor.object)" }

    func fetch(_ position: QueryPosition, pageSize: Int) async throws -> FetchedPage {
        let url = try url(for: position, pageSize: pageSize)
        let response = try await http.send(url: url, headers: authHeaders + [("Accept", "application/json")])
        switch response.status {
        case 200..<300: backoff.reset()
        case 401:
            throw ProviderError.authentication(message: "\(context): HTTP 401 \(ProviderHTTP.excerpt(response.body))",
                                               hint: "check the connection's auth secret")
        case 403:
            throw ProviderError.permission(message: "\(context): HTTP 403 \(ProviderHTTP.excerpt(response.body))")
        case 429, 503:
            // Retry-After bounded by max_provider_wait; without one, exponential backoff (docs/DESIGN.md §2 rule 12).
            let wait = http.retryAfter(response.headers)
                ?? http.waits.bounded(backoff.nextWait(), source: "\(response.status) backoff")
            throw ProviderError.rateLimited(retryAfter: wait, message: "\(context): HTTP \(response.status)")
        default:
            throw ProviderError.http(status: response.status, message: "\(context): \(ProviderHTTP.excerpt(response.body))")
        }
        let recordsPathText = spec.recordsPath.isEmpty ? "$" : "$." + spec.recordsPath.joined(separator: ".")
        let (body, elements) = try RecordArrayParser.parse(response.body, recordsPath: spec.recordsPath,
                                                           pathText: recordsPathText, idPath: spec.idField,
                                                           context: context)
        guard body.value(atPath: spec.recordsPath)?.arrayValue != nil else {
            throw ProviderError.malformed(path: recordsPathText, message: "\(context): expected an array of records")
        }
        var records = [SourceRecord]()
        var rejected = [RejectedRecord]()
        records.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            switch element {
            case .unparseable(let record): rejected.append(record)
            case .parsed(let item):
                do { records.append(try sourceRecord(item, path: "\(recordsPathText)[\(index)]")) } catch let rejection as RecordRejection {
                    rejected.append(rejection.record)
                }
            }
        }
        var hasMore = !elements.isEmpty
        var nextToken: String? = nil
        var nextURL: String? = nil
        switch spec.pagination {
        case .none: hasMore = false
        case .page, .offset: break
        case .nextToken(let field):
            nextToken = Self.scalarText(body.value(atPath: field))
            hasMore = hasMore && nextToken != nil
        case .nextURL(let field):
            nextURL = try Self.scalarText(body.value(atPath: field)).map {
                try ProviderOrigin.resolve(link: $0, against: base, relativeTo: URL(string: url), context: context,
                                           field: "$." + field.joined(separator: "."))
            }
            hasMore = hasMore && nextURL != nil
        case .linkHeader:
            nextURL = try LinkHeader.parse(response.headers.values("link"))["next"].map {
                try ProviderOrigin.resolve(link: $0, against: base, relativeTo: URL(string: url), context: context,
                                           field: "Link rel=\"next\"")
            }
            hasMore = hasMore && nextURL != nil
        }
        return FetchedPage(records: records, rejected: rejected, hasMore: hasMore, nextToken: nextToken, nextURL: nextURL)
    }

    /// One record, checked: an id (any non-empty scalar; it is percent-encoded wherever it goes into a URL) and a
    /// cursor value in years 1970–9999 (docs/DESIGN.md §2 rules 12, 15). Throws a `RecordRejection` otherwise.
    func sourceRecord(_ item: JSONValue, path: String) throws -> SourceRecord {
        let idPath = spec.idField.joined(separator: ".")
        guard let id = Self.scalarText(item.value(atPath: spec.idField)), !id.isEmpty else {
            throw RecordRejection(id: nil, position: path, reason: "\(path).\(idPath): missing record id", raw: item)
        }
        let cursorPath = spec.cursorField.joined(separator: ".")
        guard let cursorValue = item.value(atPath: spec.cursorField), !cursorValue.isNull else {
            throw RecordRejection(id: id, position: path, reason: "\(path).\(cursorPath): missing cursor field", raw: item)
        }
        guard let updatedAt = Self.parse(cursorValue, as: spec.cursorFormat) else {
            throw RecordRejection(id: id, position: path, reason: "\(path).\(cursorPath): \(clipped(cursorValue.serialized())) "
                                  + "is not a \(spec.cursorFormat.rawValue) timestamp in years 1970–9999", raw: item)
        }
        return SourceRecord(id: id, updatedAt: updatedAt, raw: item, record: item)
    }

    // MARK: Cursor formats

    static func format(_ date: Date, as format: RestCursorFormat) -> String {
        switch format {
        case .rfc3339: Timestamps.rfc3339(date)
        case .sql: Timestamps.sqlStyle(date)
        case .unixSeconds: String(Timestamps.unixSeconds(date))
        case .unixMilliseconds: String(Timestamps.unixMilliseconds(date))
        }
    }

    static func parse(_ value: JSONValue, as format: RestCursorFormat) -> Date? {
        switch format {
        case .rfc3339: value.stringValue.flatMap(Timestamps.parseRFC3339)
        case .sql: value.stringValue.flatMap { Timestamps.parseSQLStyle($0) }
        // Exact integers only, in years 1970–9999 (docs/DESIGN.md §2 rule 12): a value near Int64.max is malformed,
        // never a Date whose millisecond form would trap.
        case .unixSeconds: (value.int64Value ?? value.stringValue.flatMap { Int64($0) })
            .flatMap { Timestamps.date(unixSeconds: $0) }
        case .unixMilliseconds: (value.int64Value ?? value.stringValue.flatMap { Int64($0) })
            .flatMap { Timestamps.date(unixMilliseconds: $0) }
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
    /// Digest of the ids of the page this numbered position follows (page/offset pagination), to catch an API
    /// that ignores the page parameter.
    var previousPageIDs: String?
    /// The most rows one page of this scan has held so far: a numbered page is short only below it (the API may cap
    /// the page size below what was asked; see `RestSource.nextPosition`).
    var largestPage = 0

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
        previousPageIDs = position.hints["prev_ids"]
        largestPage = position.hints["largest_page"].flatMap(Int.init).map { max(0, $0) } ?? 0
    }

    /// The first request of a query at `cursor`: page `start`, offset 0, no token or link.
    func isFirst(_ pagination: RestPagination) -> Bool {
        switch pagination {
        case .none: true
        case .page(let start): page == start
        case .offset: offset == 0
        case .nextToken, .nextURL, .linkHeader: token == nil && url == nil
        }
    }

    /// "2" for page pagination, "offset 40" for offsets.
    func describe(_ pagination: RestPagination) -> String {
        if case .offset = pagination { return "at offset \(offset)" }
        return "\(page)"
    }

    /// The next request inside the same query (a run of identical timestamps longer than a page).
    func advanced(pagination: RestPagination, received: Int, token: String?, url: String?) -> QueryPosition {
        var next = QueryPosition(cursor: cursor, page: page, offset: offset)
        next.largestPage = largestPage
        switch pagination {
        case .none: break
        case .page: next.page = page < Int.max ? page + 1 : page
        case .offset: next.offset = offset.addingReportingOverflow(received).overflow ? offset : offset + received
        case .nextToken: next.token = token
        case .nextURL, .linkHeader: next.url = url
        }
        return next
    }

    func scanPosition(timestamp: Date, recordID: String) -> ScanPosition {
        var hints = ["cursor_ms": String(Timestamps.unixMilliseconds(cursor)),
                     "page": String(page), "offset": String(offset)]
        if let token { hints["token"] = token }
        if let url { hints["url"] = url }
        if let previousPageIDs { hints["prev_ids"] = previousPageIDs }
        if largestPage > 0 { hints["largest_page"] = String(largestPage) }
        return ScanPosition(timestamp: timestamp, recordID: recordID, hints: hints)
    }
}

extension RestPagination {
    /// Page-number and offset pagination: the styles where the client, not the API, names the next page.
    var isNumbered: Bool {
        switch self {
        case .page, .offset: true
        default: false
        }
    }

    var parameterName: String {
        switch self {
        case .offset: "offset"
        default: "page"
        }
    }
}
