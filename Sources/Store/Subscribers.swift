// The `subscribers` table: operator and automatic state of each subscriber (active, paused, disabled) and the
// start of its current failure run. A subscriber without a row is active.
public import Foundation

extension StateStore {
    /// The stored state of a subscriber; nil if never recorded (treat as active).
    public func subscriber(id: String) throws -> SubscriberStatus? {
        try database.read { db in
            try db.queryOne("SELECT \(SubscriberRow.columns.sql) FROM subscribers WHERE id = ?", [.text(id)]) {
                try SubscriberRow($0).status
            }
        }
    }

    /// Every subscriber with stored state, by id.
    public func subscribers() throws -> [SubscriberStatus] {
        try database.read { db in
            try db.queryAll("SELECT \(SubscriberRow.columns.sql) FROM subscribers ORDER BY id LIMIT 100000") {
                try SubscriberRow($0).status
            }
        }
    }

    /// Sets state and reason (pause/resume by the operator, pause after failing for days, disable on 410).
    /// Keeps `failing_since`.
    public func setSubscriberState(id: String, state: SubscriberState, reason: String?, at: Date) throws {
        try database.write { db in
            try db.execute("""
                INSERT INTO subscribers (id, state, reason, changed_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
                    changed_at = excluded.changed_at
                """, [.text(id), .text(state.rawValue), .text(reason), .date(at)])
        }
    }

    /// Sets or clears (nil) the start of the subscriber's current failure run. A new row starts `active`.
    public func setSubscriberFailingSince(id: String, _ since: Date?, at: Date) throws {
        try database.write { db in
            try db.execute("""
                INSERT INTO subscribers (id, state, changed_at, failing_since) VALUES (?, 'active', ?, ?)
                ON CONFLICT (id) DO UPDATE SET failing_since = excluded.failing_since
                """, [.text(id), .date(at), .date(since)])
        }
    }
}

/// A row of `subscribers`.
struct SubscriberRow {
    enum Column: String, ColumnList {
        case id, state, reason, changedAt = "changed_at", failingSince = "failing_since"
    }
    static let columns = Columns<Column>()

    let status: SubscriberStatus

    init(_ row: any Row) throws {
        let column = Self.columns.reader(row)
        guard let state = SubscriberState(rawValue: column.text(.state)) else {
            throw StoreError(code: .corruptData, message: "subscriber \(column.text(.id)) has unknown state")
        }
        status = SubscriberStatus(id: column.text(.id), state: state, reason: column.string(.reason),
                                  changedAt: column.date(.changedAt) ?? Date(timeIntervalSince1970: 0),
                                  failingSince: column.date(.failingSince))
    }
}
