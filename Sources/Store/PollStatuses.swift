// The `poll_status` table: the outcome of the last poll of every (connection, object) and running counters,
// read by `status`, the health endpoint and metrics.
public import Foundation

extension StateStore {
    /// Adds one poll's outcome: sets last poll time, last success or last error (a success clears the error),
    /// and adds to the counters.
    public func recordPoll(_ report: PollReport) throws {
        try database.write { db in
            try db.execute("""
                INSERT INTO poll_status (connection, object, last_poll_at, last_success_at, last_error, last_error_at,
                                         events_total, records_total)
                VALUES (?1, ?2, ?3, CASE WHEN CAST(?4 AS TEXT) IS NULL THEN CAST(?3 AS BIGINT) END, ?4,
                        CASE WHEN CAST(?4 AS TEXT) IS NOT NULL THEN CAST(?3 AS BIGINT) END, ?5, ?6)
                ON CONFLICT (connection, object) DO UPDATE SET
                    last_poll_at = excluded.last_poll_at,
                    last_success_at = COALESCE(excluded.last_success_at, poll_status.last_success_at),
                    last_error = excluded.last_error,
                    last_error_at = COALESCE(excluded.last_error_at, poll_status.last_error_at),
                    events_total = poll_status.events_total + excluded.events_total,
                    records_total = poll_status.records_total + excluded.records_total
                """, [
                    .text(report.connection), .text(report.object), .date(report.at), .text(report.error),
                    .integer(Int64(report.events)), .integer(Int64(report.records)),
                ])
        }
    }

    /// Poll status of every (connection, object) ever polled, ordered by connection and object.
    public func pollStatuses() throws -> [PollStatus] {
        try database.read { db in
            try db.queryAll("""
                SELECT \(PollStatusRow.columns.sql)
                FROM poll_status ORDER BY connection, object LIMIT 100000
                """) { PollStatusRow($0).status }
        }
    }
}

/// A row of `poll_status`.
struct PollStatusRow {
    enum Column: String, ColumnList {
        case connection, object, lastPollAt = "last_poll_at", lastSuccessAt = "last_success_at"
        case lastError = "last_error", lastErrorAt = "last_error_at", eventsTotal = "events_total"
        case recordsTotal = "records_total"
    }
    static let columns = Columns<Column>()

    let status: PollStatus

    init(_ row: any Row) {
        let column = Self.columns.reader(row)
        status = PollStatus(connection: column.text(.connection), object: column.text(.object),
                            lastPollAt: column.date(.lastPollAt), lastSuccessAt: column.date(.lastSuccessAt),
                            lastError: column.string(.lastError), lastErrorAt: column.date(.lastErrorAt),
                            eventsTotal: column.int64(.eventsTotal), recordsTotal: column.int64(.recordsTotal))
    }
}
