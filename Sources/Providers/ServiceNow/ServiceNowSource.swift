// The ServiceNow Table API as an ObjectSource (docs/DESIGN.md §2 rules 2–4 and 6, §3; wire facts §1).
//
// Every read is a keyset query ordered by (cursor field, sys_id) with raw values
// (`sysparm_display_value=false`, `sysparm_exclude_reference_link=true`). Pages are never walked with offsets
// over a changing set; the one exception is stepping over a page that ACLs emptied entirely (below).
public import Core
public import Foundation

public struct ServiceNowSource: ObjectSource {
    public let descriptor: ObjectDescriptor
    public let client: ServiceNowClient
    public let table: String
    public let model: ServiceNowModel
    /// `sysparm_fields` when the object lists fields (nil = every field).
    public let fields: [String]?
    /// Read `sys_audit_delete` for this table (`delete_feed: audit`); false = reconciliation only.
    public let auditDeletes: Bool

    public init(client: ServiceNowClient, table: String, model: ServiceNowModel, fields: [String]? = nil,
                ignoreFields: [String] = [], auditDeletes: Bool = true) {
        self.client = client
        self.table = table
        self.model = model
        self.fields = fields
        self.auditDeletes = auditDeletes
        descriptor = ObjectDescriptor(
            connection: client.http.connection, provider: "servicenow", object: table, model: model.rawValue,
            volatileFields: ServiceNowModel.defaultVolatileFields.union(ignoreFields), granularity: .seconds(1))
    }

    private var context: String { "\(client.http.connection) \(table)" }

    // MARK: delta

    public func fetchDelta(_ request: DeltaRequest) async throws -> DeltaPage {
        let limit = Self.clampLimit(request.pageSize)
        var params: [(String, String)] = [
            ("sysparm_query", ServiceNowQuery.delta(field: "sys_updated_on", lowerBound: request.lowerBound,
                                                    after: request.after)),
            ("sysparm_limit", String(limit)),
            ("sysparm_display_value", "false"),
            ("sysparm_exclude_reference_link", "true"),
        ]
        if let fields { params.append(("sysparm_fields", ServiceNowQuery.fieldList(fields))) }
        let page = try await readPage(table: table, params: params, limit: limit) { row, path in
            let (id, updated) = try Self.keyset(row, path: path, timeField: "sys_updated_on")
            return SourceRecord(id: id, updatedAt: updated, raw: row,
                                record: model.normalize(row, table: table, baseURL: client.baseURL))
        }
        // Rejected rows never give a position: their sys_id or timestamp is what is wrong, and an unchecked id
        // must not reach the next query (rule 15). `next` is the last ACCEPTED row, so rejected rows after it
        // are read again first on the next page (re-rejected, counted by the quarantine) and the page still
        // advances past every accepted row. A page of nothing but rejected rows was stepped over inside
        // readPage; when nothing follows them the scan ends here, and the next scan re-reads them from the
        // watermark (at or before them): nothing is skipped, nothing stalls (docs/DESIGN.md §2 rule 16).
        guard let last = page.accepted.last, let lastUpdated = last.updatedAt else {
            return DeltaPage(records: [], next: nil, warnings: page.warnings, rejected: page.rejected)
        }
        let next = ScanPosition(timestamp: lastUpdated, recordID: last.id)
        try checkProgress(next, after: request.after)
        return DeltaPage(records: page.accepted, next: next, warnings: page.warnings, rejected: page.rejected)
    }

    /// The (sys_id, cursor time) of a row, checked: a sys_id must be 32 lower-case hex digits (rule 15) and the
    /// time a `YYYY-MM-DD HH:MM:SS` UTC value in years 1970–9999 (rule 12). Throws a `RejectedRecord`.
    static func keyset(_ row: JSONValue, path: String, timeField: String, idField: String = "sys_id") throws
        -> (id: String, at: Date)
    {
        guard case .object = row else {
            throw RecordRejection(id: nil, position: path, reason: "\(path): expected a record object, found \(row.typeName)",
                                 raw: row)
        }
        let id = row[idField]?.stringValue
        guard let id, ProviderIDs.isSysID(id) else {
            let shown = id.map { "\"\(clipped($0))\"" } ?? (row[idField]?.typeName ?? "nothing")
            throw RecordRejection(id: id.flatMap { $0.isEmpty ? nil : $0 }, position: path,
                                 reason: "\(path).\(idField): \(shown) is not a sys_id (32 lower-case hex digits)", raw: row)
        }
        guard let text = row[timeField]?.stringValue, let at = Timestamps.parseSQLStyle(text) else {
            let shown = row[timeField].map { $0.stringValue.map { "\"\($0)\"" } ?? $0.typeName } ?? "nothing"
            throw RecordRejection(id: id, position: path, reason: "\(path).\(timeField): \(shown) is not a "
                                 + "YYYY-MM-DD HH:MM:SS (UTC) time in years 1970–9999", raw: row)
        }
        return (id, at)
    }

    // MARK: single record

    /// `GET /api/now/table/{table}/{sys_id}` with the delta scan's options (raw values, no reference links, the
    /// configured `sysparm_fields`), so the record hashes as a scan would read it (docs/DESIGN.md §2 rule 6a; wire
    /// facts §1.1). The id is checked against the sys_id grammar before it reaches the URL (rule 15); a row the
    /// scan would reject is returned as rejected (rule 16). A 404 "No Record found" is `gone`: the record does not
    /// exist, or an ACL or before-query business rule hides it from the integration user — as it would hide it
    /// from a scan.
    public func fetchRecord(id: String) async throws -> RecordLookup {
        guard ProviderIDs.isSysID(id) else {
            throw ProviderError.malformed(path: "id", message: "\(context): \"\(clipped(id))\" is not a sys_id "
                                          + "(32 lower-case hex digits); not asked for")
        }
        var params: [(String, String)] = [
            ("sysparm_display_value", "false"),
            ("sysparm_exclude_reference_link", "true"),
        ]
        if let fields { params.append(("sysparm_fields", ServiceNowQuery.fieldList(fields))) }
        switch try await client.getRecord(table, sysID: id, params: params) {
        case .notFound:
            return .gone
        case .unparseable(let rejected):
            return .rejected(rejected)
        case .record(let row):
            do {
                let (rowID, updated) = try Self.keyset(row, path: "$.result", timeField: "sys_updated_on")
                guard rowID == id else {
                    throw RecordRejection(id: id, position: "$.result", reason: "$.result.sys_id: asked for \(id), "
                                          + "the instance answered \(rowID)", raw: row)
                }
                return .found(SourceRecord(id: id, updatedAt: updated, raw: row,
                                           record: model.normalize(row, table: table, baseURL: client.baseURL)))
            } catch let rejection as RecordRejection {
                return .rejected(rejection.record)
            }
        }
    }

    // MARK: deletes

    public func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? {
        guard auditDeletes else { return nil }
        let limit = Self.clampLimit(pageSize)
        // `tablename` is the record's concrete class (wire facts §1.9): deletes of rows of a child class
        // polled through a base table (cmdb_ci → cmdb_ci_linux_server) are found by reconciliation instead.
        let params: [(String, String)] = [
            ("sysparm_query", ServiceNowQuery.delta(field: "sys_created_on", lowerBound: since, after: after,
                                                    prefix: ["tablename=\(table)"])),
            ("sysparm_limit", String(limit)),
            ("sysparm_display_value", "false"),
            ("sysparm_exclude_reference_link", "true"),
            ("sysparm_fields", "sys_id,tablename,documentkey,sys_created_on"),
        ]
        let page: ScreenedPage<(notice: DeletedRecordNotice, position: ScanPosition)>
        do {
            page = try await readPage(table: "sys_audit_delete", params: params, limit: limit) { row, path in
                // The audit row's own sys_id is the keyset tiebreaker; `documentkey` names the deleted record and
                // is checked too, since a notice for an id that is no sys_id could only hit the wrong snapshot.
                let (auditID, when) = try Self.keyset(row, path: path, timeField: "sys_created_on")
                let key = row["documentkey"]?.stringValue ?? ""
                guard ProviderIDs.isSysID(key) else {
                    throw RecordRejection(id: auditID, position: path, reason: "\(path).documentkey: \"\(clipped(key))\" "
                                         + "is not a sys_id", raw: row)
                }
                return (DeletedRecordNotice(id: key, deletedAt: when), ScanPosition(timestamp: when, recordID: auditID))
            }
        } catch ProviderError.permission(let message) {
            throw ProviderError.permission(message: message + "; or set \"delete_feed\": \"none\" on \(table) to rely on "
                                           + "reconciliation sweeps alone")
        }
        report(skipped: page.rejected, what: "sys_audit_delete row")
        let last = page.accepted.last?.position
        if let last { try checkProgress(last, after: after) }
        return DeletionPage(deletions: page.accepted.map(\.notice), next: last)
    }

    // MARK: id sweep

    /// Lists sys_ids ascending. A row whose sys_id is not 32-hex is left out of the listing and never becomes the
    /// page token (rule 15): the next page asks `sys_id>` the last VALID id, so it lists the bad row again and the
    /// valid ones after it — nothing valid is skipped, and a page ending with a hostile `abc^ORsys_id>0` cannot
    /// empty the next page and make the sweep look complete. Such a row has no snapshot (the delta scan rejects
    /// it), so leaving it out deletes nothing live.
    public func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage {
        let limit = Self.clampLimit(pageSize)
        guard let query = ServiceNowQuery.idSweep(after: token) else {
            throw ProviderError.malformed(path: "token", message: "\(context): sweep token \"\(clipped(token ?? ""))\" "
                                          + "is not a sys_id; the sweep is abandoned and starts over next time")
        }
        let params: [(String, String)] = [
            ("sysparm_query", query),
            ("sysparm_limit", String(limit)),
            ("sysparm_fields", "sys_id"),
            ("sysparm_exclude_reference_link", "true"),
        ]
        let page = try await readPage(table: table, params: params, limit: limit) { row, path in
            guard let id = row["sys_id"]?.stringValue, ProviderIDs.isSysID(id) else {
                throw RecordRejection(id: row["sys_id"]?.stringValue, position: path,
                                     reason: "\(path).sys_id: not a sys_id (32 lower-case hex digits)", raw: row)
            }
            return id
        }
        report(skipped: page.rejected, what: "sweep row")
        let ids = page.accepted
        if let last = ids.last, let token, last <= token {
            throw ProviderError.malformed(path: "$.result", message: "\(context): the instance ignored sys_id>\(token) "
                                          + "(returned \(last)); refusing to loop")
        }
        return IDPage(ids: ids, next: ids.last) // an empty page ends the sweep, never a short one
    }

    /// Feed and sweep rows have no `rejected` list in their page types: they are logged instead.
    private func report(skipped: [RejectedRecord], what: String) {
        guard let logger = client.http.waits.logger else { return }
        for rejected in skipped.prefix(10) {
            logger.warning("provider row skipped", [.connection: client.http.connection, .object: table,
                                                    "DETAIL": "\(what) skipped: \(rejected.reason)"])
        }
    }

    // MARK: paging

    /// Rows of one keyset page the adapter accepted, and the ones it refused.
    struct ScreenedPage<T> {
        var accepted: [T] = []
        var rejected: [RejectedRecord] = []
        var warnings: [String] = []
    }

    /// Reads one page of a keyset query and screens its rows with `accept` (which throws a `RejectedRecord`).
    ///
    /// `sysparm_limit` applies before ACLs (wire facts §1.2), so a page may come back short or even empty while
    /// more rows match. A short page is returned as is (not the end). A page with no ACCEPTABLE row — empty
    /// because ACLs hid its rows, or holding only rejected rows — while the instance announces more rows
    /// (`X-Total-Count`, a `next` link, or a full page) is stepped over within the same keyset query with
    /// `sysparm_offset` — the only offsets we ever send — until acceptable rows or the true end appear (docs/DESIGN.md §2
    /// rules 4 and 16). Steps overlap by a tenth, so a few rows leaving the query meanwhile (updated or deleted)
    /// cannot shift a visible row past us.
    func readPage<T>(table: String, params: [(String, String)], limit: Int,
                     accept: (JSONValue, String) throws -> T) async throws -> ScreenedPage<T>
    {
        var result = ScreenedPage<T>()
        var offset = 0
        var steps = 0
        while true {
            var request = params
            if offset > 0 { request.append(("sysparm_offset", String(offset))) }
            let page = try await client.getTable(table, params: request)
            for (index, element) in page.records.enumerated() {
                let path = "$.result[\(index)]"
                switch element {
                case .unparseable(let rejected): result.rejected.append(rejected)
                case .parsed(let row):
                    do { result.accepted.append(try accept(row, path)) } catch let rejection as RecordRejection {
                        result.rejected.append(rejection.record)
                    }
                }
            }
            if !result.accepted.isEmpty {
                if offset > 0 {
                    result.warnings.append("\(client.http.connection) \(table): the first \(offset) rows of this keyset "
                        + "page are hidden by ACLs or rejected; stepped over them with sysparm_offset")
                }
                return result
            }
            let rows = page.records.count
            if page.announcesMore(offset: offset, limit: limit) || rows >= limit {
                // Hidden rows: step by most of a page. Rejected rows: step past most of what was read.
                let size = rows > 0 ? rows : limit
                offset += size > 1 ? size - max(1, size / 10) : 1
                steps += 1
                // X-Total-Count bounds the walk; a `next` link alone does not, so a broken one cannot loop us.
                if steps > Self.maxEmptySteps {
                    throw ProviderError.malformed(path: "$.result", message: "\(client.http.connection) \(table): "
                        + "\(steps) consecutive pages without an acceptable row while the instance kept announcing more")
                }
                continue
            }
            if result.rejected.isEmpty, offset > 0 || (page.totalCount ?? 0) > 0 {
                result.warnings.append("\(client.http.connection) \(table): \(page.totalCount.map(String.init) ?? "some") rows "
                                       + "match but none is visible to the integration user (ACLs)")
            }
            return result
        }
    }

    /// A page must move strictly past the position it started after, or the scan could loop forever
    /// (docs/DESIGN.md §2 rule 3: a page full of one timestamp advances by the id tiebreaker and cannot stall).
    /// A stored position whose id is no sys_id was re-read inclusively from its second (ServiceNowQuery.delta);
    /// that page may start below its id, so only checked positions are compared.
    private func checkProgress(_ next: ScanPosition, after: ScanPosition?) throws {
        guard let after, ProviderIDs.isSysID(after.recordID) else { return }
        let advanced = next.timestamp > after.timestamp
            || (next.timestamp == after.timestamp && next.recordID > after.recordID)
        if !advanced {
            throw ProviderError.malformed(
                path: "$.result", message: "\(context): the page did not advance past (\(ServiceNowQuery.literal(after.timestamp)), "
                    + "\(after.recordID)); the instance did not honour the keyset query")
        }
    }

    /// Empty pages stepped over in one read before giving up (10,000 pages of hidden rows).
    static let maxEmptySteps = 10_000

    static func clampLimit(_ pageSize: Int) -> Int { min(max(pageSize, 1), 10_000) }
}
