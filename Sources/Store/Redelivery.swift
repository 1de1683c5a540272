// Operator re-arms of the `deliveries` table (`replay`, `redeliver`): a re-armed row is pending again with its
// attempts reset and a new lease token, so an attempt in flight cannot overwrite it (Deliveries.swift).
public import Foundation

extension StateStore {
    /// Events per write transaction of ``replay(subscriber:since:now:pageSize:matching:)``.
    public static let replayPageSize = 500

    private static let rearmSQL = """
        INSERT INTO deliveries (event_seq, subscriber, record_key, state, attempts, next_attempt_at, created_at,
                                updated_at)
        VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4, ?4)
        ON CONFLICT (event_seq, subscriber) DO UPDATE SET
            state = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
            updated_at = excluded.updated_at, delivered_at = NULL, lease_token = deliveries.lease_token + 1
        """

    /// `replay --subscriber S --since T`: for every event detected at or after `since` that `matches` (the
    /// caller applies the subscriber's event globs and connections), creates a pending delivery for
    /// `subscriber`, or re-arms the existing one (pending, attempts reset, due at `now`). The event id stays
    /// the same, so receivers can deduplicate. Walks the outbox in keyset pages of `pageSize`, one write
    /// transaction per page. Returns the number of deliveries created or re-armed.
    public func replay(subscriber: String, since: Date, now: Date, pageSize: Int = StateStore.replayPageSize,
                       matching matches: (EventSummary) -> Bool) throws -> Int
    {
        var afterSeq: Int64 = 0
        var total = 0
        while true {
            let page = try eventSummaries(since: since, afterSeq: afterSeq, limit: pageSize)
            guard let last = page.last else { return total }
            afterSeq = last.seq
            let selected = page.filter(matches)
            guard !selected.isEmpty else { continue }
            try database.write { db in
                for summary in selected {
                    let key = Self.recordKey(connection: summary.connection, object: summary.object,
                                             recordID: summary.recordID)
                    try db.execute(Self.rearmSQL, [.integer(summary.seq), .text(subscriber), .text(key), .date(now)])
                }
            }
            total += selected.count
        }
    }

    /// An event's seq and the columns of its record key.
    private static let eventKeyColumns = Columns<EventSummaryRow.Column>([.seq, .connection, .object, .recordID])

    /// `redeliver EVENT`: re-arms the event's deliveries (pending, attempts reset, due at `now`). With
    /// `subscribers` nil, every existing delivery of the event; otherwise exactly those subscribers (creating
    /// rows as needed). Returns the number of deliveries re-armed.
    /// - Throws: ``StoreError`` `.notFound` when the event id is unknown.
    public func redeliver(eventID: String, subscribers: [String]? = nil, now: Date) throws -> Int {
        try database.write { db in
            let columns = Self.eventKeyColumns
            guard let (seq, key) = try db.queryOne(
                "SELECT \(columns.sql) FROM events WHERE event_id = ?", [.text(eventID)],
                { row in
                    let column = columns.reader(row)
                    return (column.int64(.seq), Self.recordKey(connection: column.text(.connection),
                                                               object: column.text(.object),
                                                               recordID: column.text(.recordID)))
                })
            else {
                throw StoreError(code: .notFound, message: "no event with id \(eventID)",
                                 hint: "list events with `deltahook events list`")
            }
            if let subscribers {
                for subscriber in Set(subscribers) {
                    try db.execute(Self.rearmSQL, [.integer(seq), .text(subscriber), .text(key), .date(now)])
                }
                return Set(subscribers).count
            }
            return try db.execute("""
                UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?1, updated_at = ?1,
                    delivered_at = NULL, lease_token = lease_token + 1
                WHERE event_seq = ?2
                """, [.date(now), .integer(seq)])
        }
    }
}
