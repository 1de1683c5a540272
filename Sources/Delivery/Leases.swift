// Ending a claim's lease early. The store's claim API moves `next_attempt_at` to the lease end; when the
// dispatcher gives a claimed delivery back unsent (shutdown, subscriber removed), waiting out the lease would
// delay it for no reason.
import Foundation
import Store

extension StateStore {
    /// Makes still-pending deliveries due at `now` again (ends their lease). Delivered or failed ones are left
    /// alone. Belongs next to `claimDueDeliveries` in Store; kept here until Store grows it.
    func releaseLeases(_ ids: [Int64], now: Date) throws {
        guard !ids.isEmpty else { return }
        let millis = Int64((now.timeIntervalSince1970 * 1000).rounded())
        try database.write { db in
            for id in ids {
                _ = try db.execute(
                    "UPDATE deliveries SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'pending'",
                    [.integer(millis), .integer(millis), .integer(id)])
            }
        }
    }
}
