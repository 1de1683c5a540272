// The commit pipelining of one delta scan, as a state machine with no I/O: it decides when a page's commit is
// handed to the store (`submit`) and when the runner waits for it (`settle`); `PollRunner` carries the actions
// out. Unit-tested without a store (Tests/EngineTests/CommitPipelineTests).
//
// The rule: when the next page is already fetched, a page's commit waits (`pending`) until that page's snapshot
// lookup is on the store's queue, then follows it (`inFlight`): the store commits while the next page is diffed,
// and the lookup, which ran first, is completed by the scan's carried states. When the next page is not there
// yet, the commit goes to the store at once: a slow provider never holds back a finished page. Either way each
// page is its own transaction, committed in page order, and at most one commit runs at a time.

/// What the runner must do next, in order.
enum CommitAction<Commit>: CustomStringConvertible {
    /// Hand this commit to the store (after whatever is on its queue).
    case submit(Commit)
    /// Wait for this commit (the one submitted last) to finish and report it.
    case settle(Commit)

    var description: String {
        switch self {
        case .submit(let commit): "submit(\(commit))"
        case .settle(let commit): "settle(\(commit))"
        }
    }
}

/// The previous page's commit: built but not handed to the store yet (`pending`), or handed over and running
/// (`inFlight`). Generic over the commit so tests can drive it with plain values.
struct CommitPipeline<Commit> {
    private(set) var pending: Commit?
    private(set) var inFlight: Commit?

    init() {}

    /// This page's lookup is on the store's queue: a commit waiting for it goes now.
    mutating func lookupQueued() -> [CommitAction<Commit>] {
        submitPending()
    }

    /// This page is diffed and its commit is about to be built: the previous page's commit must be done first
    /// (its writes leave the carried states, and reports stay in page order).
    mutating func pageDiffed() -> [CommitAction<Commit>] {
        guard let running = inFlight else { return [] }
        inFlight = nil
        return [.settle(running)]
    }

    /// A page's commit is built. `nextPageReady`: the next page has been fetched already, so the commit waits
    /// behind that page's lookup; otherwise (not fetched yet, or no next page) it goes at once.
    mutating func built(_ commit: Commit, nextPageReady: Bool) -> [CommitAction<Commit>] {
        precondition(pending == nil, "a page's commit was built before the previous one was handed over")
        pending = commit
        return nextPageReady ? [] : submitPending()
    }

    /// The scan is over (or failed): everything outstanding is committed and waited for.
    mutating func finish() -> [CommitAction<Commit>] {
        var actions = pageDiffed()
        actions += submitPending()
        actions += pageDiffed()
        return actions
    }

    private mutating func submitPending() -> [CommitAction<Commit>] {
        guard let waiting = pending else { return [] }
        precondition(inFlight == nil, "two page commits in flight")
        pending = nil
        inFlight = waiting
        return [.submit(waiting)]
    }
}
