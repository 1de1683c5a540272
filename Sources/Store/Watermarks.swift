// Repairing a watermark that a record dated far in the future pushed ahead of the clock (docs/DESIGN.md §2
// rule 14). Stores written before that rule may hold such a cursor; the engine asks here for the newest source
// time it really diffed, so the scan restarts from there instead of from 2099.
public import Foundation

extension StateStore {
    /// The newest source timestamp among the object's snapshots that is not later than `notAfter`; nil when none.
    /// Every record up to it has been diffed, so a scan that starts here re-reads (and hash-suppresses) at worst.
    public func newestSourceTimestamp(connection: String, object: String, notAfter: Date) throws -> Date? {
        try database.read { db in
            try db.queryOne("""
                SELECT max(source_ts) FROM snapshots WHERE connection = ? AND object = ? AND source_ts <= ?
                """, [.text(connection), .text(object), .date(notAfter)]) { $0.date(0) } ?? nil
        }
    }
}
