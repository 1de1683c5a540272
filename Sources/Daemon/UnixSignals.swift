// Signals as an async sequence, with Dispatch only (the swift-service-lifecycle UnixSignalsSequence shape).
// The default disposition is replaced by SIG_IGN so the DispatchSource alone sees the signal.
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

public enum UnixSignal: Int32, Sendable, CustomStringConvertible {
    case hangup = 1      // SIGHUP: reload
    case interrupt = 2   // SIGINT: stop (Ctrl-C)
    case terminate = 15  // SIGTERM: stop (systemctl stop)

    public var description: String {
        switch self {
        case .hangup: "SIGHUP"
        case .interrupt: "SIGINT"
        case .terminate: "SIGTERM"
        }
    }
}

/// Delivers the given signals as an AsyncStream. Sources are installed before `init` returns, so a signal
/// sent right after cannot be lost. Cancel by dropping the stream (`finish`).
///
/// - Important: create one `UnixSignals` per signal per process. On Linux a second DispatchSource for the same
///   signal starves the first (seen with `deltahook demo`, which therefore leaves SIGINT/SIGTERM to the daemon).
public final class UnixSignals: @unchecked Sendable {
    // @unchecked: `sources` is written once in init; DispatchSource.cancel() is thread-safe.
    public let stream: AsyncStream<UnixSignal>
    private let continuation: AsyncStream<UnixSignal>.Continuation
    private let sources: [any DispatchSourceSignal]

    public init(_ signals: [UnixSignal]) {
        let (stream, continuation) = AsyncStream<UnixSignal>.makeStream()
        self.stream = stream
        self.continuation = continuation
        let queue = DispatchQueue(label: "deltahook.signals")
        var installed = [any DispatchSourceSignal]()
        for sig in signals {
            signal(sig.rawValue, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig.rawValue, queue: queue)
            source.setEventHandler { continuation.yield(sig) }
            source.resume()
            installed.append(source)
        }
        sources = installed
    }

    /// Stops listening. Dispositions stay SIG_IGN on purpose: a second SIGTERM arriving while the daemon writes
    /// its final checkpoint is ignored instead of killing it mid-write.
    public func cancel() {
        for source in sources { source.cancel() }
        continuation.finish()
    }

    deinit { cancel() }
}
