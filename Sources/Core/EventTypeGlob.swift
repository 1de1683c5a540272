// Subscriber `events` filters are globs over event types such as "ticket.updated" (docs/DESIGN.md §6).

/// A glob over event types: `*` matches any run of characters (dots included), everything else is literal.
///
/// Examples: `"*"` matches every type, `"ticket.*"` every ticket event, `"*.deleted"` every deletion.
/// Matching is case-sensitive because event types are always lower-case.
public struct EventTypeGlob: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String

    public init(_ pattern: String) { self.pattern = pattern }

    public var description: String { pattern }

    /// True when `eventType` matches the whole pattern.
    public func matches(_ eventType: String) -> Bool {
        EventTypeGlob.match(pattern: Array(pattern.utf8), text: Array(eventType.utf8))
    }

    /// True when any of `globs` matches `eventType` (an empty list matches nothing).
    public static func anyMatches(_ globs: [EventTypeGlob], _ eventType: String) -> Bool {
        globs.contains { $0.matches(eventType) }
    }

    /// Iterative wildcard matching with single-star backtracking: linear in practice, no recursion.
    static func match(pattern: [UInt8], text: [UInt8]) -> Bool {
        let star = UInt8(ascii: "*")
        var p = 0
        var t = 0
        var starAt = -1
        var resumeText = 0
        while t < text.count {
            if p < pattern.count, pattern[p] != star, pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == star {
                starAt = p
                resumeText = t
                p += 1
            } else if starAt >= 0 {
                p = starAt + 1
                resumeText += 1
                t = resumeText
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == star { p += 1 }
        return p == pattern.count
    }
}
