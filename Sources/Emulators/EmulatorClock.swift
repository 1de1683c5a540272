// The injectable clock the emulators share, so tests can set timestamps exactly.
public import Foundation
import Synchronization

/// A clock tests can freeze, set and advance. Unfrozen it follows real time plus an offset.
public final class EmulatorClock: Sendable {
    private let state: Mutex<(frozen: Date?, offset: TimeInterval)>

    public init(frozenAt date: Date? = nil) { state = Mutex((date, 0)) }

    public func now() -> Date {
        state.withLock { s in s.frozen ?? Date().addingTimeInterval(s.offset) }
    }

    public func set(_ date: Date) { state.withLock { $0.frozen = date } }

    public func advance(by seconds: TimeInterval) {
        state.withLock { s in
            if let frozen = s.frozen { s.frozen = frozen.addingTimeInterval(seconds) } else { s.offset += seconds }
        }
    }
}
