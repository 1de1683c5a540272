// The values one delta scan works with: what stays fixed for the scan (`ScanContext`) and what moves page by
// page (`ScanState`). `PollRunner.scanPage` takes the context and the state (inout) and nothing else.
import Core
import Foundation
import Logging
import Store

/// What one delta scan is about; fixed from its first page to its last.
struct ScanContext {
    var target: PollTarget
    var router: EventRouter
    var dryRun: Bool
    var differ: Differ
    /// The inclusive lower bound of every request of this scan (watermark − lookback − one granule, or the
    /// resumed scan's bound).
    var lowerBound: Date?
    /// An initial sync (no cursor yet, or resuming one); `silent`: one that writes snapshots but emits nothing.
    var initial: Bool
    var silent: Bool
    /// The stored cursor the scan started from (nil: never polled).
    var base: CursorState?
    var scanStart: Date
    /// The resume state read with the cursor (its validator is offered on a fresh scan's first page).
    var resume: ResumeState
    var log: Logger

    var descriptor: ObjectDescriptor { target.plan.descriptor }

    /// A scan resuming `resume.position` keeps that scan's bound and initial flag; a fresh one starts from
    /// `lowerBound` and is initial when nothing was ever stored.
    init(target: PollTarget, router: @escaping EventRouter, dryRun: Bool, base: CursorState?, resume: ResumeState,
         lowerBound: Date?, scanStart: Date, log: Logger) {
        let plan = target.plan
        self.target = target
        self.router = router
        self.dryRun = dryRun
        differ = Differ(descriptor: plan.descriptor, emit: plan.emit)
        let resuming = resume.position != nil
        self.lowerBound = resuming ? resume.scanLowerBound : lowerBound
        initial = resuming ? resume.initial : base == nil
        silent = initial && plan.initialSync == .silent
        self.base = base
        self.scanStart = scanStart
        self.resume = resume
        self.log = log
    }
}

/// Where one delta scan stands between two pages.
struct ScanState {
    /// The provider position of the next page (nil: the scan's first page).
    var position: ScanPosition?
    /// Every position seen in this scan: a provider that repeats one stalls (rule 3).
    var seenPositions = Set<ScanPosition>()
    /// The newest source timestamp committed or about to be (not beyond the future limit, rule 14).
    var watermark: Date?
    /// The validator (ETag) of a fresh scan's first page, kept once the scan completes.
    var freshValidator: String?
    /// Decided states not (yet) readable from the store: the previous page's writes, whose commit may still be
    /// running while this page is diffed, plus this page's own (a record read twice); in a dry run, the scan's.
    var carry: [String: PriorState] = [:]
    var budget: ScanBudget
    /// The next page, fetched (and hashed) while this page is diffed and committed.
    var prefetch: PollRunner.Prefetch?
    /// Unchanged pages since the last cursor write (at most `PollRunner.idlePagesPerCursorWrite` − 1).
    var unwrittenIdlePages = 0
    /// When the previous page's commit goes to the store, and when the scan waits for it.
    var commits = CommitPipeline<PendingCommit>()
    /// The store job of the page in commit (`commits.inFlight`).
    var committing: Task<PageCommitResult, any Error>?

    init(position: ScanPosition?, watermark: Date?, budget: ScanBudget) {
        self.position = position
        if let position { seenPositions.insert(position) }
        self.watermark = watermark
        self.budget = budget
    }
}

/// What bounds one delta scan against hostile answers (docs/DESIGN.md §2 rules 14 and 18).
struct ScanBudget {
    /// Records per request; halved for the rest of the scan by a page over `max_response_bytes`.
    var pageSize: Int
    /// Pages this cycle may read before it stops and leaves the rest to the next cycle.
    let maxPages: Int
    /// Records dated after this instant (scan start + `max_clock_skew`) do not move the watermark.
    let futureLimit: Date

    init(plan: ObjectPlan, scanStart: Date) {
        pageSize = plan.pageSize
        maxPages = plan.maxPagesPerScan
        futureLimit = scanStart.addingTimeInterval(max(0, plan.maxClockSkew.seconds))
    }
}

/// A page's commit waiting to be handed to the store, with the events it reports once committed.
struct PendingCommit: Sendable {
    var commit: PageCommit
    var events: [ChangeEvent]
    var descriptor: ObjectDescriptor
}
