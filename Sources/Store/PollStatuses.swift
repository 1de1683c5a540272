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
                VALUES (?1, ?2, ?3, CASE WHEN ?4 IS NULL THEN ?3 END, ?4, CASE WHEN ?4 IS NOT NULL THEN ?3 END,
                        ?5, ?6)
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
                SELECT connection, object, last_poll_at, last_success_at, last_error, last_error_at, events_total,
                       records_total
                FROM poll_status ORDER BY connection, object LIMIT 100000
                """) { row in
                PollStatus(connection: row.text(0), object: row.text(1), lastPollAt: row.date(2),
                           lastSuccessAt: row.date(3), lastError: row.string(4), lastErrorAt: row.date(5),
                           eventsTotal: row.int64(6), recordsTotal: row.int64(7))
            }
        }
    }
}
