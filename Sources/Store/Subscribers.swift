// The `subscribers` table: operator and automatic state of each subscriber (active, paused, disabled) and the
// start of its current failure run. A subscriber without a row is active.
public import Foundation

extension StateStore {
    /// The stored state of a subscriber; nil if never recorded (treat as active).
    public func subscriber(id: String) throws -> SubscriberStatus? {
        try database.read { db in
            try db.queryOne("SELECT id, state, reason, changed_at, failing_since FROM subscribers WHERE id = ?",
                            [.text(id)], Self.subscriberRow)
        }
    }

    /// Every subscriber with stored state, by id.
    public func subscribers() throws -> [SubscriberStatus] {
        try database.read { db in
            try db.queryAll("SELECT id, state, reason, changed_at, failing_since FROM subscribers ORDER BY id LIMIT 100000",
                            [], Self.subscriberRow)
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

    private static func subscriberRow(_ row: Row) throws -> SubscriberStatus {
        guard let state = SubscriberState(rawValue: row.text(1)) else {
            throw StoreError(code: .corruptData, message: "subscriber \(row.text(0)) has unknown state")
        }
        return SubscriberStatus(id: row.text(0), state: state, reason: row.string(2),
                                changedAt: row.date(3) ?? Date(timeIntervalSince1970: 0), failingSince: row.date(4))
    }
}
