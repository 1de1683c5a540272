// Quarantine (docs/DESIGN.md §2 rule 16): records an adapter could not accept are kept here instead of failing
// their page on every cycle. Rows are written and released only inside a page's commit (``StateStore/commitPage(_:)``),
// so the cursor that steps past a rejected record never becomes durable without the record's quarantine row.
// `quarantine list` and `status` read them; `quarantine clear` removes them for an operator who fixed the source.
public import Foundation
import Core

/// One quarantined record.
public struct QuarantineEntry: Sendable, Hashable {
    public var connection: String
    public var object: String
    /// The provider id when it could be read, else the record's position in its page (`$.result[3]`).
    public var recordKey: String
    public var recordID: String?
    /// What the adapter refused, from the latest sighting.
    public var reason: String
    /// The first 4 KB of the record's raw text, from the latest sighting.
    public var rawExcerpt: String
    public var firstSeenAt: Date
    public var lastSeenAt: Date
    /// How many times a scan read the record and rejected it.
    public var seenCount: Int64
}

/// A count per (connection, object), for `status` and the store-derived gauges.
public struct ObjectCount: Sendable, Hashable {
    public var connection: String
    public var object: String
    public var count: Int
}

extension StateStore {
    /// Quarantined records, oldest first (by first sighting), optionally of one connection and object.
    public func quarantine(connection: String? = nil, object: String? = nil, limit: Int = 1000) throws
        -> [QuarantineEntry]
    {
        var conditions: [String] = []
        var arguments: [SQLValue] = []
        if let connection { conditions.append("connection = ?"); arguments.append(.text(connection)) }
        if let object { conditions.append("object = ?"); arguments.append(.text(object)) }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments.append(.integer(Int64(max(0, limit))))
        return try database.read { db in
            try db.queryAll("""
                SELECT \(QuarantineRow.columns.sql)
                FROM quarantine \(whereClause)
                ORDER BY first_seen_at, connection, object, record_key LIMIT ?
                """, arguments) { QuarantineRow($0).entry }
        }
    }

    /// Quarantined records per (connection, object) that has any.
    public func quarantineCounts() throws -> [ObjectCount] {
        try database.read { db in
            try db.queryAll("""
                SELECT connection, object, COUNT(*) FROM quarantine GROUP BY connection, object
                ORDER BY connection, object LIMIT 100000
                """) { ObjectCount(connection: $0.text(0), object: $0.text(1), count: $0.int(2)) }
        }
    }

    /// `quarantine clear`: removes the rows of `connection` (of one object, of one record key). The record is read
    /// again only when a later scan reaches it; a row removed while the source still serves the bad record comes
    /// back (and is logged again) at that point. Returns the number of rows removed.
    public func clearQuarantine(connection: String, object: String? = nil, recordKey: String? = nil) throws -> Int {
        var sql = "DELETE FROM quarantine WHERE connection = ?"
        var arguments: [SQLValue] = [.text(connection)]
        if let object { sql += " AND object = ?"; arguments.append(.text(object)) }
        if let recordKey { sql += " AND record_key = ?"; arguments.append(.text(recordKey)) }
        return try database.write { db in try db.execute(sql, arguments) }
    }

    /// Which of `ids` are quarantined under `connection`/`object`. Costs one primary-key probe when the object
    /// has nothing in quarantine (the usual case), so the poll runner can ask for every page.
    public func quarantinedIDs(connection: String, object: String, among ids: [String]) throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        return try database.read { db in
            guard try Self.hasQuarantine(connection: connection, object: object, db) else { return [] }
            var found = Set<String>()
            try db.query("""
                SELECT record_id FROM quarantine
                WHERE connection = ? AND object = ? AND record_id IN (\(db.dialect.textsOfJSONArray()))
                """, [.text(connection), .text(object), .text(Self.jsonArray(ids))]) { found.insert($0.text(0)) }
            return found
        }
    }

    // MARK: - Inside the page commit

    /// Releases the accepted ids, then upserts the rejected records (first/last seen, count, latest reason and
    /// excerpt). Releasing first keeps a record that a page both accepted and rejected (it moved during the
    /// page) in quarantine: the operator sees it rather than losing it.
    static func writeQuarantine(of commit: PageCommit, now: Int64, into result: inout PageCommitResult,
                                _ db: any SQLConnection) throws {
        let (connection, object) = (commit.connection, commit.object)
        if !commit.acceptedIDs.isEmpty, try hasQuarantine(connection: connection, object: object, db) {
            result.releasedFromQuarantine = try db.execute("""
                DELETE FROM quarantine
                WHERE connection = ? AND object = ? AND record_id IN (\(db.dialect.textsOfJSONArray()))
                """, [.text(connection), .text(object), .text(jsonArray(commit.acceptedIDs))])
        }
        for rejected in commit.quarantine {
            let inserted = try db.execute("""
                INSERT INTO quarantine (connection, object, record_key, record_id, reason, raw_excerpt, first_seen_at,
                                        last_seen_at, seen_count)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)
                ON CONFLICT (connection, object, record_key) DO NOTHING
                """, [
                    .text(connection), .text(object), .text(rejected.key), .text(rejected.id), .text(rejected.reason),
                    .text(truncateUTF8(rejected.rawExcerpt, to: RejectedRecord.excerptLimit)), .integer(now),
                    .integer(now),
                ])
            if inserted == 1 {
                result.newlyQuarantined.append(rejected.key)
                continue
            }
            try db.execute("""
                UPDATE quarantine SET reason = ?, raw_excerpt = ?, record_id = COALESCE(?, record_id),
                    last_seen_at = \(db.dialect.greatest("last_seen_at", "?")), seen_count = seen_count + 1
                WHERE connection = ? AND object = ? AND record_key = ?
                """, [
                    .text(rejected.reason), .text(truncateUTF8(rejected.rawExcerpt, to: RejectedRecord.excerptLimit)),
                    .text(rejected.id), .integer(now), .text(connection), .text(object), .text(rejected.key),
                ])
        }
    }

    private static func hasQuarantine(connection: String, object: String, _ db: any SQLConnection) throws -> Bool {
        try db.queryOne("SELECT 1 FROM quarantine WHERE connection = ? AND object = ? LIMIT 1",
                        [.text(connection), .text(object)]) { _ in true } ?? false
    }
}

/// A row of `quarantine`.
struct QuarantineRow {
    enum Column: String, ColumnList {
        case connection, object, recordKey = "record_key", recordID = "record_id", reason, rawExcerpt = "raw_excerpt"
        case firstSeenAt = "first_seen_at", lastSeenAt = "last_seen_at", seenCount = "seen_count"
    }
    static let columns = Columns<Column>()

    let entry: QuarantineEntry

    init(_ row: any Row) {
        let column = Self.columns.reader(row)
        entry = QuarantineEntry(connection: column.text(.connection), object: column.text(.object),
                                recordKey: column.text(.recordKey), recordID: column.string(.recordID),
                                reason: column.text(.reason), rawExcerpt: column.text(.rawExcerpt),
                                firstSeenAt: column.date(.firstSeenAt) ?? Date(timeIntervalSince1970: 0),
                                lastSeenAt: column.date(.lastSeenAt) ?? Date(timeIntervalSince1970: 0),
                                seenCount: column.int64(.seenCount))
    }
}
