// The mass-delete guard's decision (docs/DESIGN.md §2 rule 17). In Core because the config carries it as
// `delete_guard` and the engine applies it; one type serves both.

/// The mass-delete guard of one object (`delete_guard`, docs/DESIGN.md §2 rule 17).
public struct DeleteGuardPolicy: Sendable, Hashable {
    /// Hold a sweep that would tombstone more than this fraction of the live records…
    public var maxFraction: Double
    /// …and more than this many records.
    public var minRecords: Int

    public static let defaults = DeleteGuardPolicy(maxFraction: 0.2, minRecords: 10)

    public init(maxFraction: Double, minRecords: Int) {
        self.maxFraction = maxFraction
        self.minRecords = minRecords
    }

    /// Whether tombstoning `wouldDelete` of `live` records, after a listing of `listed` ids, must wait for an
    /// operator: too large a share (both thresholds), or an empty listing while live records exist.
    public func holds(wouldDelete: Int, live: Int, listed: Int) -> Bool {
        guard wouldDelete > 0, live > 0 else { return false }
        if listed == 0 { return true }
        return wouldDelete > minRecords && Double(wouldDelete) > maxFraction * Double(live)
    }
}
