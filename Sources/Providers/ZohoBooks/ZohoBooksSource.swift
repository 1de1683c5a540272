// Delta polling of one Zoho Books module (invoices, contacts, bills, items, salesorders, estimates) through its
// list endpoint, `GET /{module}?organization_id=…&sort_column=last_modified_time&sort_order=D&page=N&per_page=S`
// (docs/providers.md "Zoho Books").
//
// Zoho Books offers page numbers only, and no documented "modified since" range filter (docs/providers.md: what
// the list filters do with `last_modified_time` is not specified). So the scan reads NEWEST FIRST and stops at the
// first record older than the scan's inclusive lower bound (watermark − lookback − one granule, docs/DESIGN.md §2
// rule 2), or when `page_context.has_more_page` is false (rule 4). This is correct with or without a server-side
// filter: it never asks the server to exclude anything, so a filter that does not exist, is ignored or compares
// differently cannot hide a change; every record at or after the bound sorts before the first one older than it.
//
// Changes while the scan runs:
// - A record updated while we read page 3 jumps to the front (page 1, already read). It is not lost: the engine's
//   watermark only rises to the newest timestamp this scan actually read, and every such timestamp is at most the
//   time the first page was served, which is at most the jumped record's new time. The next cycle's inclusive bound
//   (watermark − lookback − granule) therefore lies at or before it, and that scan reads it. If the record had not
//   yet been read at its old place, the shift it causes only repeats rows (suppressed by hash).
// - A record deleted (or otherwise leaving the list) ahead of our position moves every later row one place up:
//   the row at the start of the next page would slip into the page already read. Consecutive windows therefore
//   overlap by about a tenth of a page (`GitHubIssuesSource.nextWindow`: page numbers with a varying `per_page`),
//   which absorbs that many departures between two requests; repeated rows are suppressed by hash.
// - The scan is resumable: its position (page, per_page) and its lower bound are committed with each page, so an
//   interrupted scan resumes with the same bound even though the watermark already rose to page 1's newest.
// A page whose ids are exactly the previous page's (an API ignoring `page`) ends the scan with an error (rule 18);
// rows out of `last_modified_time` order (an API ignoring `sort_column`) fail the page rather than trusting it.
public import Core
public import Foundation
import Crypto
import HTTPClient

public struct ZohoBooksSource: ObjectSource {
    /// `last_modified_time` is the cursor; it moves with every edit and is not content (docs/DESIGN.md §2 rule 5).
    public static let defaultVolatileFields: Set<String> = ["last_modified_time"]
    public static let cursorField = "last_modified_time"

    public let descriptor: ObjectDescriptor
    public let client: ZohoBooksClient
    /// The list endpoint (`invoices`), the records member (`invoices`) and the id field (`invoice_id`).
    public let endpoint: String
    public let recordsKey: String
    public let idField: String
    /// `customer` for the customer model: other contact types are read (they place the scan) but not emitted.
    public let contactType: String?

    public init(client: ZohoBooksClient, object: String, endpoint: String, recordsKey: String, idField: String,
                model: String, contactType: String? = nil, ignoreFields: [String] = []) throws {
        guard ["invoice", "customer", "record"].contains(model) else {
            throw ProviderError.configuration(message: "\(client.connection)/\(object): Zoho Books maps to model "
                + "\"invoice\", \"customer\" or \"record\", not \"\(model)\"")
        }
        self.client = client
        self.endpoint = endpoint
        self.recordsKey = recordsKey
        self.idField = idField
        self.contactType = contactType
        descriptor = ObjectDescriptor(connection: client.connection, provider: "zoho_books", object: object, model: model,
                                      volatileFields: Self.defaultVolatileFields.union(ignoreFields),
                                      granularity: .seconds(1))
    }

    var context: String { "\(descriptor.object) (\(endpoint))" }

    // MARK: Delta scan

    public func fetchDelta(_ request: DeltaRequest) async throws -> DeltaPage {
        let maximum = min(max(request.pageSize, 1), 200)
        var window = Window(page: 1, perPage: maximum, previous: nil)
        if let after = request.after {
            window = Window(page: after.hints["page"].flatMap { Int($0) }.map(GitHubIssuesSource.clampPage) ?? 1,
                            perPage: after.hints["per_page"].flatMap { Int($0) }.map { min(max(1, $0), 200) } ?? maximum,
                            previous: after.hints["prev"])
        }
        let listed = try await list(window, sortColumn: Self.cursorField, sortOrder: "D")
        var records: [SourceRecord] = []
        var reachedBound = false
        var previous: Date?
        for row in listed.rows {
            guard let at = row.updatedAt else { continue }
            if let previous, at > previous {
                throw ProviderError.malformed(path: "$.\(recordsKey)", message: "\(client.connection): \(context) page "
                    + "\(window.page): rows are not in descending last_modified_time order (sort_column=last_modified_time"
                    + "&sort_order=D was asked; this module may not support that sort)")
            }
            previous = at
            if let bound = request.lowerBound, at < bound {
                // Newest first: everything after this row is older still. The scan is complete.
                reachedBound = true
                break
            }
            if row.emits { records.append(row.record) }
        }
        let done = reachedBound || !listed.hasMore || listed.count == 0
        var next: ScanPosition?
        if !done {
            let end = (window.page - 1) * window.perPage + listed.count
            let step = GitHubIssuesSource.nextWindow(after: end, maximum: maximum)
            next = ScanPosition(timestamp: previous ?? request.lowerBound ?? Timestamps.earliest,
                                recordID: listed.rows.last?.record.id ?? "",
                                hints: ["page": String(step.page), "per_page": String(step.perPage),
                                        "prev": listed.digest])
        }
        return DeltaPage(records: records, next: next, rejected: listed.rejected)
    }

    struct Window {
        var page: Int
        var perPage: Int
        /// Digest of the previous page's ids (rule 18), nil on the first page.
        var previous: String?
    }

    struct Row {
        var record: SourceRecord
        var updatedAt: Date?
        var emits: Bool
    }

    struct Listed {
        var rows: [Row] = []
        var rejected: [RejectedRecord] = []
        var count = 0
        var hasMore = false
        var digest = ""
    }

    /// One list request: rows parsed one by one (a bad row is rejected, rule 16), `page_context.has_more_page`
    /// read, and the page compared with the previous one (rule 18).
    func list(_ window: Window, sortColumn: String, sortOrder: String) async throws -> Listed {
        let query = [("sort_column", sortColumn), ("sort_order", sortOrder), ("page", String(window.page)),
                     ("per_page", String(window.perPage))]
        let response = try await client.get(endpoint, query: query, context: "\(context) page \(window.page)")
        let place = "\(client.connection): \(context) page \(window.page)"
        let (body, elements) = try RecordArrayParser.parse(response.body, recordsPath: [recordsKey],
                                                           pathText: "$.\(recordsKey)", idPath: [idField], context: place)
        if let code = body["code"]?.int64Value, code != 0 {
            throw ProviderError.http(status: response.status, message: "\(place): code \(code): "
                + clipped(body["message"]?.stringValue ?? "error"))
        }
        guard body[recordsKey]?.arrayValue != nil else {
            throw ProviderError.malformed(path: "$.\(recordsKey)", message: "\(place): expected an array of records, "
                + "found \(body[recordsKey]?.typeName ?? "nothing")")
        }
        var listed = Listed()
        listed.count = elements.count
        // `has_more_page` must be a boolean; anything else is read as "no more", which ends the scan where it is
        // (rule 4 asks for an explicit marker, and the next cycle starts over from the watermark).
        listed.hasMore = body["page_context"]?["has_more_page"]?.boolValue ?? false
        var keys: [String] = []
        for (i, element) in elements.enumerated() {
            let path = "$.\(recordsKey)[\(i)]"
            switch element {
            case .unparseable(let record):
                listed.rejected.append(record)
                keys.append(record.key)
            case .parsed(let row):
                do {
                    let parsed = try parse(row, path: path)
                    keys.append(parsed.record.id)
                    listed.rows.append(parsed)
                } catch let rejection as RecordRejection {
                    listed.rejected.append(rejection.record)
                    keys.append(rejection.record.key)
                }
            }
        }
        listed.digest = Digest.sha256Hex(keys.joined(separator: ","))
        if let previous = window.previous, !keys.isEmpty, previous == listed.digest {
            throw ProviderError.malformed(path: "$.\(recordsKey)", message: "\(place) repeats the previous page's "
                + "records exactly: the API ignores the page parameter; the scan stops here (docs/DESIGN.md §2 rule 18)")
        }
        return listed
    }

    /// One row: its id checked against Zoho's grammar (rule 15), its `last_modified_time` parsed from the offset form
    /// into a UTC instant in years 1970–9999 (rules 7, 12), and its model built. Anything wrong rejects only this row.
    func parse(_ row: JSONValue, path: String) throws -> Row {
        let id = FieldReader(row, path: path).optionalString(idField)
        guard let id, ZohoBooksIDs.isValid(id) else {
            throw RecordRejection(id: id.map { clipped($0) }, position: path, reason: "\(path).\(idField): "
                + "\(id.map { "\"\(clipped($0))\"" } ?? (row[idField]?.typeName ?? "missing")) is not a Zoho id "
                + "(decimal digits)", raw: row)
        }
        guard let text = row[Self.cursorField]?.stringValue, let updated = ZohoBooksTime.parse(text) else {
            throw RecordRejection(id: id, position: path, reason: "\(path).\(Self.cursorField): "
                + "\(row[Self.cursorField]?.stringValue.map { "\"\(clipped($0))\"" } ?? (row[Self.cursorField]?.typeName ?? "missing")) "
                + "is not a Zoho time such as \"2026-11-29T10:15:30+0530\" in years 1970–9999", raw: row)
        }
        let record: JSONValue
        switch descriptor.model {
        case "invoice": record = ZohoBooksModels.invoice(row, updatedAt: updated)
        case "customer": record = ZohoBooksModels.customer(row, updatedAt: updated)
        default: record = row
        }
        let emits = contactType.map { row["contact_type"]?.stringValue == $0 } ?? true
        return Row(record: SourceRecord(id: id, updatedAt: updated, raw: row, record: record), updatedAt: updated,
                   emits: emits)
    }

    // MARK: Reconciliation (rule 6)

    /// Lists every id, oldest created first (`sort_column=created_time&sort_order=A`): an edit during the sweep does
    /// not move a row (sorting by modification would move an unread row in front of the position and make it look
    /// deleted), a new record lands at the end, and a delete ahead of the position is absorbed by the same window
    /// overlap as the delta scan. Zoho Books has no delete feed, so this listing is how deletes are found; the
    /// mass-delete guard (rule 17) holds a listing that would remove too much. The token is the next window as JSON.
    public func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage {
        let maximum = min(max(pageSize, 1), 200)
        var window = Window(page: 1, perPage: maximum, previous: nil)
        if let token {
            guard let value = try? JSONValue.parse(Array(token.utf8)), let page = value["page"]?.int64Value,
                  let perPage = value["per_page"]?.int64Value else {
                throw ProviderError.malformed(path: "token", message: "\(client.connection): not an id-listing token "
                    + "this adapter wrote")
            }
            window = Window(page: GitHubIssuesSource.clampPage(Int(clamping: page)),
                            perPage: min(max(1, Int(clamping: perPage)), 200), previous: value["prev"]?.stringValue)
        }
        let listed = try await list(window, sortColumn: "created_time", sortOrder: "A")
        let ids = listed.rows.filter(\.emits).map(\.record.id)
        guard listed.hasMore, listed.count > 0 else { return IDPage(ids: ids, next: nil) }
        let end = (window.page - 1) * window.perPage + listed.count
        let step = GitHubIssuesSource.nextWindow(after: end, maximum: maximum)
        let next = JSONValue.object(JSONObject([("page", .integer(Int64(step.page))),
                                                ("per_page", .integer(Int64(step.perPage))),
                                                ("prev", .string(listed.digest))])).serialized()
        return IDPage(ids: ids, next: next)
    }

    /// Zoho Books has no delete feed: deletes are found by reconciliation.
    public func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? { nil }

    // `fetchRecord` stays `.unsupported`: the single-record endpoint answers a fuller record (line items, addresses)
    // than the list, so its content hash would differ from the scan's and invent updates (rule 6a).
}
