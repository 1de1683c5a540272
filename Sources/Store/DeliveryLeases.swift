// Ending a claim's lease early. The store's claim API moves `next_attempt_at` to the lease end; when the
// dispatcher gives a claimed delivery back unsent (shutdown, subscriber removed), waiting out the lease would
// delay it for no reason.
public import Foundation

extension StateStore {
    /// Makes still-pending deliveries due at `now` again (ends the lease `claimDueDeliveries` set). Delivered or
    /// failed ones are left alone.
    public func releaseLeases(_ ids: [Int64], now: Date) throws {
        guard !ids.isEmpty else { return }
        let millis = Millis.from(now)
        try database.write { db in
            for id in ids {
                _ = try db.execute(
                    "UPDATE deliveries SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'pending'",
                    [.integer(millis), .integer(millis), .integer(id)])
            }
        }
    }
}
