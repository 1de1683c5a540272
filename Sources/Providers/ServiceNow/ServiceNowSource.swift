// The ServiceNow Table API as an ObjectSource (DESIGN §2 rules 2–4 and 6, §3; wire facts §1).
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
        let (rows, warnings) = try await readPage(table: table, params: params, limit: limit)
        var records: [SourceRecord] = []
        records.reserveCapacity(rows.count)
        for (index, row) in rows.enumerated() {
            let reader = FieldReader(row, path: "$.result[\(index)]")
            let id = try reader.requiredString("sys_id")
            let updated = try reader.requiredTimestamp("sys_updated_on", format: "YYYY-MM-DD HH:MM:SS (UTC)") {
                Timestamps.parseSQLStyle($0)
            }
            records.append(SourceRecord(id: id, updatedAt: updated, raw: row,
                                        record: model.normalize(row, table: table, baseURL: client.baseURL)))
        }
        guard let last = records.last, let lastUpdated = last.updatedAt else {
            return DeltaPage(records: [], next: nil, warnings: warnings) // only an empty page ends a scan (rule 4)
        }
        let next = ScanPosition(timestamp: lastUpdated, recordID: last.id)
        try checkProgress(next, after: request.after)
        return DeltaPage(records: records, next: next, warnings: warnings)
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
        let rows: [JSONValue]
        do {
            rows = try await readPage(table: "sys_audit_delete", params: params, limit: limit).rows
        } catch ProviderError.permission(let message) {
            throw ProviderError.permission(message: message + "; or set \"delete_feed\": \"none\" on \(table) to rely on "
                                           + "reconciliation sweeps alone")
        }
        var notices: [DeletedRecordNotice] = []
        var last: ScanPosition?
        for (index, row) in rows.enumerated() {
            let reader = FieldReader(row, path: "$.result[\(index)]")
            let auditID = try reader.requiredString("sys_id")
            let key = try reader.requiredString("documentkey")
            let when = try reader.requiredTimestamp("sys_created_on", format: "YYYY-MM-DD HH:MM:SS (UTC)") {
                Timestamps.parseSQLStyle($0)
            }
            notices.append(DeletedRecordNotice(id: key, deletedAt: when))
            last = ScanPosition(timestamp: when, recordID: auditID)
        }
        if let last { try checkProgress(last, after: after) }
        return DeletionPage(deletions: notices, next: last)
    }

    // MARK: id sweep

    public func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage {
        let limit = Self.clampLimit(pageSize)
        let params: [(String, String)] = [
            ("sysparm_query", ServiceNowQuery.idSweep(after: token)),
            ("sysparm_limit", String(limit)),
            ("sysparm_fields", "sys_id"),
            ("sysparm_exclude_reference_link", "true"),
        ]
        let rows = try await readPage(table: table, params: params, limit: limit).rows
        var ids: [String] = []
        ids.reserveCapacity(rows.count)
        for (index, row) in rows.enumerated() {
            ids.append(try FieldReader(row, path: "$.result[\(index)]").requiredString("sys_id"))
        }
        if let last = ids.last, let token, last <= token {
            throw ProviderError.malformed(path: "$.result", message: "\(context): the instance ignored sys_id>\(token) "
                                          + "(returned \(last)); refusing to loop")
        }
        return IDPage(ids: ids, next: ids.last) // an empty page ends the sweep, never a short one
    }

    // MARK: paging

    /// Reads one page of a keyset query. `sysparm_limit` applies before ACLs (wire facts §1.2), so a page may
    /// come back short or even empty while more rows match. A short page is returned as is (not the end).
    /// An EMPTY page while the instance announces more rows (`X-Total-Count`, a `next` link) is stepped over
    /// within the same keyset query with `sysparm_offset` — the only offsets we ever send — until rows or the
    /// true end appear (DESIGN §2 rule 4). Steps overlap by a tenth of a page, so a few hidden rows leaving
    /// the query meanwhile (updated or deleted) cannot shift a visible row past us.
    func readPage(table: String, params: [(String, String)], limit: Int) async throws
        -> (rows: [JSONValue], warnings: [String])
    {
        let step = limit > 1 ? limit - max(1, limit / 10) : 1
        var offset = 0
        var steps = 0
        while true {
            var request = params
            if offset > 0 { request.append(("sysparm_offset", String(offset))) }
            let page = try await client.getTable(table, params: request)
            if !page.records.isEmpty {
                let warnings = offset > 0
                    ? ["\(client.http.connection) \(table): the first \(offset) rows of this keyset page are hidden by "
                        + "ACLs; stepped over them with sysparm_offset"]
                    : []
                return (page.records, warnings)
            }
            if page.announcesMore(offset: offset, limit: limit) {
                offset += step
                steps += 1
                // X-Total-Count bounds the walk; a `next` link alone does not, so a broken one cannot loop us.
                if steps > Self.maxEmptySteps {
                    throw ProviderError.malformed(path: "$.result", message: "\(client.http.connection) \(table): "
                        + "\(steps) consecutive empty pages while the instance kept announcing more rows")
                }
                continue
            }
            var warnings: [String] = []
            if offset > 0 || (page.totalCount ?? 0) > 0 {
                warnings.append("\(client.http.connection) \(table): \(page.totalCount.map(String.init) ?? "some") rows "
                                + "match but none is visible to the integration user (ACLs)")
            }
            return ([], warnings)
        }
    }

    /// A page must move strictly past the position it started after, or the scan could loop forever
    /// (DESIGN §2 rule 3: a page full of one timestamp advances by the id tiebreaker and cannot stall).
    private func checkProgress(_ next: ScanPosition, after: ScanPosition?) throws {
        guard let after else { return }
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
