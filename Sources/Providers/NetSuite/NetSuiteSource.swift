// The NetSuite adapter for one object: SuiteQL delta pages with keyset pagination, adaptive time windows
// under the 100,000-row cap, the DeletedRecord feed and the id sweep (docs/DESIGN.md §2 rules 2–4, 6, 7; §3).
//
// Paging is keyset, never offset over a changing set (rule 3): every page asks for rows after the last one
// read, `(lastmodifieddate > T OR (lastmodifieddate = T AND id > N)) ORDER BY lastmodifieddate, id`, at
// offset 0. Offsets (multiples of the limit) are used only to step over rows re-read because a position inside
// a repeated DST hour cannot be written as a local literal. When an open-ended query reports a result set near
// the row cap (`totalResults`), the time range is split: an upper bound `lastmodifieddate < U` is added, U
// found by galloping up from the lower bound and then halving, until the window holds fewer rows than the cap;
// the window end rides in ScanPosition.hints so a restarted scan resumes inside the same window.
public import Foundation
public import Core

public struct NetSuiteSource: ObjectSource {
    public let descriptor: ObjectDescriptor
    public let client: NetSuiteClient
    public let sql: NetSuiteSQL
    /// false: `delete_feed` is `none`, only reconciliation finds deletes.
    public let usesDeleteFeed: Bool

    /// Hint key for the current window's exclusive end, Unix seconds.
    public static let windowEndHint = "window_end"
    /// Hint key for a second holding more rows than the cap (cannot be split by time): while the scan is
    /// still inside it, no window search is attempted again. Unix seconds.
    public static let denseSecondHint = "dense_second"

    /// - Parameters:
    ///   - object: the configured object name; it is also the SuiteQL table.
    ///   - model: `customer`, `employee`, `invoice` or `record`.
    ///   - ignoreFields: added to the default volatile fields (`lastmodifieddate`, its TO_CHAR alias, `links`).
    public init(client: NetSuiteClient, object: String, model: String, recordType: String?, fields: [String]?,
                usesDeleteFeed: Bool, ignoreFields: [String] = []) {
        self.client = client
        sql = NetSuiteSQL(table: object, recordType: recordType, fields: fields, model: model)
        self.usesDeleteFeed = usesDeleteFeed
        descriptor = ObjectDescriptor(connection: client.connection, provider: "netsuite", object: object,
                                      model: model, partition: recordType ?? "",
                                      volatileFields: NetSuiteModels.volatileFields.union(ignoreFields),
                                      granularity: .seconds(1))
    }

    // MARK: delta

    public func fetchDelta(_ request: DeltaRequest) async throws -> DeltaPage {
        let limit = pageLimit(request.pageSize)
        let keyset = Keyset.delta(table: sql.table)
        let position = request.after
        var windowEnd = request.after?.hints[Self.windowEndHint].flatMap(Int64.init).map {
            Date(timeIntervalSince1970: Double($0))
        }
        let denseSecond = request.after?.hints[Self.denseSecondHint].flatMap(Int64.init)
        var warnings = [String]()
        var rejected = [RejectedRecord]()
        // Bounded: each turn either returns or drops an exhausted window.
        for _ in 0..<8 {
            let bound = try lowerBound(keyset, after: position, lowerBound: request.lowerBound)
            if let end = windowEnd {
                let result = try await readPage(keyset, bound: bound, upper: end, limit: limit, build: sql.delta)
                rejected += result.rejected
                guard let last = result.rows.last else {
                    // The window is exhausted: carry on open-ended from the same position.
                    windowEnd = nil
                    continue
                }
                return DeltaPage(records: result.rows.map(makeRecord),
                                 next: Self.position(last, windowEnd: result.hasMore ? end : nil),
                                 warnings: warnings, rejected: rejected)
            }
            let result = try await readPage(keyset, bound: bound, upper: nil, limit: limit, build: sql.delta)
            rejected += result.rejected
            let threshold = max(1, client.options.rowCap - limit)
            var dense = denseSecond.flatMap { second in
                position.map { Timestamps.unixSeconds($0.timestamp) == second } ?? false ? second : nil
            }
            if dense == nil, result.totalResults > threshold, let first = result.allRows.first {
                var denseAt: Date?
                if let (end, windowed) = try await findWindow(keyset, bound: bound, firstRow: first, limit: limit,
                                                               threshold: threshold, denseSecond: &denseAt) {
                    warnings.append("\(descriptor.connection)/\(descriptor.object): \(result.totalResults) rows from "
                        + "\(bound.context.map(Timestamps.rfc3339) ?? "the beginning") reach SuiteQL's \(client.options.rowCap)-row cap; "
                        + "reading the window before \(Timestamps.rfc3339(end)) first")
                    guard let last = windowed.rows.last else {
                        windowEnd = end
                        continue
                    }
                    return DeltaPage(records: windowed.rows.map(makeRecord),
                                     next: Self.position(last, windowEnd: windowed.hasMore ? end : nil),
                                     warnings: warnings, rejected: rejected + windowed.rejected)
                }
                let second = Timestamps.unixSeconds(denseAt ?? bound.context ?? first.instant)
                dense = second
                warnings.append("\(descriptor.connection)/\(descriptor.object): more than \(threshold) rows share one "
                    + "second at \(Timestamps.rfc3339(Date(timeIntervalSince1970: Double(second)))); the time range "
                    + "cannot be split further, paging by id")
            }
            guard let last = result.rows.last else {
                return DeltaPage(records: [], next: nil, warnings: warnings, rejected: rejected)
            }
            var next = result.hasMore ? Self.position(last, windowEnd: nil) : nil
            if let dense, Timestamps.unixSeconds(last.instant) == dense { next?.hints[Self.denseSecondHint] = String(dense) }
            return DeltaPage(records: result.rows.map(makeRecord), next: next, warnings: warnings, rejected: rejected)
        }
        throw ProviderError.malformed(path: "$", message: "\(descriptor.connection)/\(descriptor.object): SuiteQL windows kept coming back empty while announcing more rows")
    }

    /// Searches for a window end U with 0 < rows(bound, U) ≤ threshold: galloping from the lower bound (new
    /// changes usually sit just above the cursor) while windows hold under a quarter of the threshold (so
    /// windows are not needlessly small: each costs an extra query), then bisecting once one holds too many.
    /// Each probe is a real page request, so the accepted probe is the page itself. nil (with `denseSecond`
    /// set) when more than `threshold` rows share one second.
    func findWindow(_ keyset: Keyset, bound: Bound, firstRow: Row, limit: Int, threshold: Int,
                    denseSecond: inout Date?) async throws -> (Date, PageResult)?
    {
        let clock = client.clock
        var lo = NetSuiteClock.wholeSeconds(bound.context ?? firstRow.instant)
        var hi: Date?
        var fallback: (Date, PageResult)?
        var width: TimeInterval = 64
        let comfortable = max(1, threshold / 4)
        for _ in 0..<64 {
            var end: Date
            if let hi {
                guard hi.timeIntervalSince(lo) > 1 else { break }
                let mid = lo.addingTimeInterval((hi.timeIntervalSince(lo) / 2).rounded(.down))
                end = clock.upperBoundLiteral(mid).instant
                if end >= hi { end = clock.lowerBoundLiteral(mid).instant }
                guard end > lo, end < hi else { break }
            } else {
                end = clock.upperBoundLiteral(lo.addingTimeInterval(width)).instant
                width *= 4
            }
            let probe = try await readPage(keyset, bound: bound, upper: end, limit: limit, build: sql.delta)
            if probe.totalResults > threshold {
                hi = end
            } else if probe.rows.isEmpty || (hi == nil && probe.totalResults < comfortable) {
                if !probe.rows.isEmpty { fallback = (end, probe) }
                lo = end
            } else {
                return (end, probe)
            }
        }
        if let fallback { return fallback }
        if let hi, hi.timeIntervalSince(lo) <= 1 { denseSecond = lo }
        return nil
    }

    // MARK: single record

    /// `SELECT <the delta query's columns> FROM <table> WHERE [type filter AND] <table>.id = N`: the same select
    /// list, TO_CHAR time reading and normalization as the delta scan, so the record hashes as a scan would read
    /// it (docs/DESIGN.md §2 rule 6a). The id must be an internal id (an integer, rule 15) before it reaches the
    /// query. No row is `gone`; a row the scan would reject is returned as rejected (rule 16).
    public func fetchRecord(id: String) async throws -> RecordLookup {
        guard ProviderIDs.isInteger(id), let numericID = Int64(id) else {
            throw ProviderError.malformed(path: "id", message: "\(descriptor.connection)/\(descriptor.object): "
                                          + "\"\(clipped(id))\" is not a NetSuite internal id; not asked for")
        }
        let bound = Bound(conditions: ["\(sql.table).id = \(numericID)"], context: nil, skipThrough: nil)
        let result = try await readPage(Keyset.delta(table: sql.table), bound: bound, upper: nil, limit: 1,
                                        build: sql.delta)
        if let row = result.rows.first(where: { $0.numericID == numericID }) { return .found(makeRecord(row)) }
        if let rejected = result.rejected.first { return .rejected(rejected) }
        if let other = result.rows.first {
            throw ProviderError.malformed(path: "$.items[0].id", message: "\(descriptor.connection)/\(descriptor.object): "
                                          + "asked for id \(numericID), SuiteQL answered id \(other.id)")
        }
        return .gone
    }

    // MARK: id sweep and delete feed

    public func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage {
        var afterID: Int64?
        if let token {
            guard let id = Int64(token) else {
                throw ProviderError.malformed(path: "next", message: "\(descriptor.connection)/\(descriptor.object): id sweep token \"\(token)\" is not a NetSuite internal id")
            }
            afterID = id
        }
        let text = sql.ids(after: afterID)
        let limit = pageLimit(pageSize)
        var offset = 0
        while true {
            let page = try await client.query(text, limit: limit, offset: offset)
            var ids = [String]()
            ids.reserveCapacity(page.elements.count)
            for element in page.elements {
                // A row without an integer id is left out and never becomes the token (docs/DESIGN.md §2 rule 15):
                // the next page asks `id >` the last valid id, so no valid id is skipped; such a row has no
                // snapshot (the delta scan rejects it), so leaving it out deletes nothing live.
                guard case .parsed(let item) = element, let id = FieldReader(item, path: "$").optionalString("id"),
                      ProviderIDs.isInteger(id) else { continue }
                ids.append(id)
            }
            if ids.isEmpty, page.hasMore, !page.elements.isEmpty, offset + 2 * limit <= client.options.rowCap {
                offset += limit // a whole page of invalid ids: step over it inside the same query
                continue
            }
            if ids.isEmpty, page.hasMore {
                // Cannot step further (SuiteQL's row cap): fail the sweep rather than let it look complete.
                throw ProviderError.malformed(path: "$.items", message: "\(descriptor.connection)/\(descriptor.object): "
                    + "id sweep pages after \(afterID.map(String.init) ?? "the start") hold no valid internal id; sweep abandoned")
            }
            return IDPage(ids: ids, next: page.hasMore ? ids.last : nil)
        }
    }

    public func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? {
        guard usesDeleteFeed else { return nil }
        let keyset = Keyset.deletedRecord
        let bound = try lowerBound(keyset, after: after, lowerBound: since)
        let result: PageResult
        do {
            result = try await readPage(keyset, bound: bound, upper: nil, limit: pageLimit(pageSize),
                                        build: sql.deletions)
        } catch ProviderError.permission(let message) {
            throw ProviderError.permission(message: message + " — the role needs the Deleted Records permission, or set delete_feed to \"none\" to rely on reconciliation")
        }
        let notices = result.rows.map { DeletedRecordNotice(id: $0.id, deletedAt: $0.instant) }
        let next = result.hasMore ? result.rows.last.map { Self.position($0, windowEnd: nil) } : nil
        return DeletionPage(deletions: notices, next: next)
    }

    // MARK: pages

    /// Which date and id columns a keyset walks, and where the reading and id come back in a row.
    struct Keyset {
        var dateColumn: String
        var idColumn: String
        var readingKey: String
        var idKey: String

        static func delta(table: String) -> Keyset {
            Keyset(dateColumn: "\(table).lastmodifieddate", idColumn: "\(table).id",
                   readingKey: NetSuiteSQL.cursorAlias, idKey: "id")
        }

        static let deletedRecord = Keyset(dateColumn: "deletedrecord.deleteddate", idColumn: "deletedrecord.recordid",
                                          readingKey: NetSuiteSQL.deletedAlias, idKey: "recordid")
    }

    /// The lower-bound conditions of a query and how to read its rows back.
    struct Bound {
        var conditions: [String]
        /// The instant the lower literal denotes: rows are at or after it (resolves ambiguous readings).
        var context: Date?
        /// Set when the literal had to step back before a repeated DST hour: rows at or before this keyset
        /// position were read already and are skipped (stepping over them with offsets).
        var skipThrough: (instant: Date, id: Int64)?
    }

    struct Row {
        var id: String
        var numericID: Int64
        var instant: Date
        var item: JSONValue
    }

    struct PageResult {
        /// Rows to hand on (after skipping re-read ones).
        var rows: [Row]
        /// Every row parsed, including skipped ones.
        var allRows: [Row]
        var hasMore: Bool
        var totalResults: Int
        /// Rows refused (bad id, unreadable time, not JSON on their own), for DeltaPage.rejected.
        var rejected: [RejectedRecord] = []
    }

    func lowerBound(_ keyset: Keyset, after: ScanPosition?, lowerBound: Date?) throws -> Bound {
        let clock = client.clock
        if let after {
            let id: Int64
            if after.recordID.isEmpty { id = 0 } else if let parsed = Int64(after.recordID) { id = parsed } else {
                throw ProviderError.malformed(path: "cursor.recordID", message: "\(descriptor.connection)/\(descriptor.object): stored position id \"\(after.recordID)\" is not a NetSuite internal id")
            }
            let literal = clock.lowerBoundLiteral(after.timestamp)
            if literal.exact {
                return Bound(conditions: [NetSuiteSQL.keyset(dateColumn: keyset.dateColumn, idColumn: keyset.idColumn,
                                                             local: literal.text, id: id)],
                             context: literal.instant, skipThrough: nil)
            }
            return Bound(conditions: ["\(keyset.dateColumn) >= \(NetSuiteSQL.timestamp(literal.text))"],
                         context: literal.instant,
                         skipThrough: (NetSuiteClock.wholeSeconds(after.timestamp), id))
        }
        if let lowerBound {
            let literal = clock.lowerBoundLiteral(lowerBound)
            return Bound(conditions: ["\(keyset.dateColumn) >= \(NetSuiteSQL.timestamp(literal.text))"],
                         context: literal.instant, skipThrough: nil)
        }
        return Bound(conditions: [], context: nil, skipThrough: nil)
    }

    /// Reads one page of `build(conditions)`. When the bound stepped back, pages that hold only re-read rows
    /// are stepped over with offsets (multiples of the limit) so a full repeated hour cannot stall the scan.
    func readPage(_ keyset: Keyset, bound: Bound, upper: Date?, limit: Int,
                  build: (_ conditions: [String]) -> String) async throws -> PageResult {
        var conditions = bound.conditions
        if let upper {
            conditions.append("\(keyset.dateColumn) < \(NetSuiteSQL.timestamp(client.clock.local(upper)))")
        }
        let text = build(conditions)
        var offset = 0
        var context = bound.context
        var rejected = [RejectedRecord]()
        while true {
            let page = try await client.query(text, limit: limit, offset: offset)
            var rows = [Row](), all = [Row]()
            rows.reserveCapacity(page.elements.count)
            var rejectedHere = 0
            for (i, element) in page.elements.enumerated() {
                let row: Row
                switch element {
                case .unparseable(let record):
                    rejected.append(record)
                    rejectedHere += 1
                    continue
                case .parsed(let item):
                    do {
                        row = try parseRow(item, keyset: keyset, path: "$.items[\(i)]", context: context)
                    } catch let rejection as RecordRejection {
                        rejected.append(rejection.record)
                        rejectedHere += 1
                        continue
                    }
                }
                context = row.instant
                all.append(row)
                if let skip = bound.skipThrough,
                   row.instant < skip.instant || (row.instant == skip.instant && row.numericID <= skip.id) {
                    continue
                }
                rows.append(row)
            }
            // A page of only re-read or only rejected rows is stepped over (offsets are multiples of the limit, as
            // SuiteQL requires): the next position is always an accepted row, so rejected rows never block the
            // scan, and a scan whose last rows are all rejected ends with them re-read by the next scan
            // (docs/DESIGN.md §2 rule 16).
            if rows.isEmpty, page.hasMore, !page.elements.isEmpty, bound.skipThrough != nil || rejectedHere > 0,
               offset + 2 * limit <= client.options.rowCap {
                offset += limit
                continue
            }
            return PageResult(rows: rows, allRows: all, hasMore: page.hasMore, totalResults: page.totalResults,
                              rejected: rejected)
        }
    }

    /// One row, checked: the id must be a NetSuite internal id (an integer, docs/DESIGN.md §2 rule 15) and the
    /// reading a local time in the account zone within years 1970–9999. Throws a `RecordRejection` otherwise.
    func parseRow(_ item: JSONValue, keyset: Keyset, path: String, context: Date?) throws -> Row {
        let where_ = "\(descriptor.connection)/\(descriptor.object)"
        guard case .object = item else {
            throw RecordRejection(id: nil, position: path, reason: "\(path): expected a row object, found \(item.typeName) (\(where_))",
                                  raw: item)
        }
        let id = FieldReader(item, path: path).optionalString(keyset.idKey)
        guard let id, ProviderIDs.isInteger(id), let numericID = Int64(id) else {
            throw RecordRejection(id: id, position: path, reason: "\(path).\(keyset.idKey): "
                                  + "\(id.map { "\"\(clipped($0))\"" } ?? "missing") is not a NetSuite internal id (\(where_))", raw: item)
        }
        let reading = FieldReader(item, path: path).optionalString(keyset.readingKey)
        guard let reading, let instant = client.clock.instant(of: reading, notBefore: context),
              Timestamps.isInRange(instant) else {
            throw RecordRejection(id: id, position: path, reason: "\(path).\(keyset.readingKey): "
                + "\(reading.map { "\"\(clipped($0))\"" } ?? "missing") is not a YYYY-MM-DD HH24:MI:SS time in years 1970–9999 in "
                + "\(client.clock.zone.identifier) (a time skipped by DST means time_zone does not match the NetSuite "
                + "account's time-zone preference)", raw: item)
        }
        return Row(id: id, numericID: numericID, instant: instant, item: item)
    }

    func makeRecord(_ row: Row) -> SourceRecord {
        SourceRecord(id: row.id, updatedAt: row.instant, raw: row.item,
                     record: NetSuiteModels.normalize(model: descriptor.model, row: row.item, id: row.id,
                                                      updatedAt: row.instant))
    }

    static func position(_ row: Row, windowEnd: Date?) -> ScanPosition {
        var hints = [String: String]()
        if let windowEnd { hints[windowEndHint] = String(Timestamps.unixSeconds(windowEnd)) }
        return ScanPosition(timestamp: row.instant, recordID: row.id, hints: hints)
    }

    func pageLimit(_ requested: Int) -> Int { min(max(1, requested), 1000, max(1, client.options.rowCap)) }
}
