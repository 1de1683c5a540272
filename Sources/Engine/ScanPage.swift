// One page of a delta scan: fetch (or take the prefetched page), look up, diff while the previous page commits,
// build this page's commit. The scan's moving parts are one `ScanState`; when commits go to the store is decided
// by its `CommitPipeline`, and carried out here (`carryOut`).
import Core
import Foundation
import Logging
import Store

extension PollRunner {
    /// One page of the scan. Returns the next position, nil when the scan is over.
    func scanPage(_ context: ScanContext, state: inout ScanState, report: inout CycleReport) async throws
        -> ScanPosition?
    {
        let (descriptor, dryRun, log) = (context.descriptor, context.dryRun, context.log)
        try Task.checkCancellation()
        let firstPageOfFreshScan = state.position == nil
        var ifNoneMatch: String? = nil
        if firstPageOfFreshScan, let validator = context.resume.validator,
           context.resume.validatorLowerBound == context.lowerBound {
            ifNoneMatch = validator
        }
        let request = DeltaRequest(lowerBound: context.lowerBound, after: state.position,
                                   pageSize: state.budget.pageSize, ifNoneMatch: ifNoneMatch)
        let prefetched = state.prefetch
        state.prefetch = nil
        let hashed = try await fetchAdapting(request, prefetched: prefetched, context: context,
                                             budget: &state.budget, report: &report)
        let page = hashed.page
        report.pages += 1
        for warning in page.warnings {
            log.warning("provider page warning", ["DETAIL": warning])
            report.warnings.append(warning)
        }
        if page.notModified {
            // 304: nothing changed since the validator's page; no quota spent, nothing to write.
            report.notModified = true
            return nil
        }
        if let next = page.next, !state.seenPositions.insert(next).inserted {
            throw EngineError.paginationStalled(connection: descriptor.connection, object: descriptor.object,
                                                position: next.summary)
        }
        if firstPageOfFreshScan { state.freshValidator = page.validator }
        report.records += page.records.count
        if !dryRun { metrics.recordsRead(descriptor, page.records.count) }
        // Rule 18: a scan stops at max_pages_per_scan; the position is committed and the next cycle resumes there.
        let capped = page.next != nil && report.pages >= state.budget.maxPages
        let continues = page.next != nil && !capped
        noteRejected(page.rejected, dryRun: dryRun, report: &report, log: log)
        if capped {
            let warning = "stopped this scan after \(state.budget.maxPages) pages (max_pages_per_scan); the next cycle "
                + "resumes at \(page.next?.summary ?? "?")"
            log.warning("delta scan reached max_pages_per_scan; resuming next cycle",
                        ["PAGES": String(state.budget.maxPages)])
            report.warnings.append(warning)
            if !dryRun { metrics.scanCapped(descriptor) }
        }
        if continues, let next = page.next {
            let nextRequest = DeltaRequest(lowerBound: context.lowerBound, after: next,
                                           pageSize: state.budget.pageSize)
            state.prefetch = Prefetch(nextRequest, from: context.target.source, differ: context.differ)
        }

        // This page's lookup goes on the store's queue before the previous page's commit (if that still waits);
        // the diff below then runs while that commit does.
        let lookupTask = lookup(page.records, hashes: hashed.hashes, descriptor: descriptor, carry: state.carry)
        try await carryOut(state.commits.lookupQueued(), state: &state, report: &report, log: log)
        let looked = try await lookupTask.value
        let detectedAt = now()
        let diff = diffPage(hashed, lookup: looked, differ: context.differ, silent: context.silent,
                            render: !dryRun, carry: &state.carry, detectedAt: detectedAt,
                            futureLimit: state.budget.futureLimit)
        reportFuture(diff.future, descriptor: descriptor, limit: state.budget.futureLimit, dryRun: dryRun,
                     report: &report, log: log)
        try await carryOut(state.commits.pageDiffed(), state: &state, report: &report, log: log)
        // The previous page is committed now: only this page's writes need carrying to the next one.
        if !dryRun {
            state.carry = [:]
            for snapshot in diff.snapshots {
                state.carry[snapshot.recordID] = PriorState(contentHash: snapshot.contentHash, record: snapshot.record,
                                                            tombstoned: false, raw: snapshot.raw)
            }
        }
        report.unchanged += diff.unchanged
        report.suppressed += diff.suppressed
        if let newest = diff.maxTimestamp, state.watermark.map({ newest > $0 }) ?? true { state.watermark = newest }

        // A page that changed nothing need not move the cursor at once: skipping the write only means a
        // crash re-reads it (unchanged by hash). The end of the scan and every tenth page are written.
        // A page with rejected records, or with a quarantined record that now arrives valid, is always written:
        // its quarantine changes commit with it (rule 16).
        let idle = diff.snapshots.isEmpty && diff.events.isEmpty && page.rejected.isEmpty
            && looked.quarantined.isEmpty && continues
        if idle && state.unwrittenIdlePages < Self.idlePagesPerCursorWrite - 1 {
            state.unwrittenIdlePages += 1
        } else if dryRun {
            for event in diff.events { report.add(event) }
        } else {
            state.unwrittenIdlePages = 0
            let pending = pageCommit(diff, page: page, context: context, state: state, detectedAt: detectedAt)
            // The next page is not fetched yet (or there is none): commit now rather than wait for it.
            let nextPageReady = state.prefetch?.isReady ?? false
            try await carryOut(state.commits.built(pending, nextPageReady: nextPageReady), state: &state,
                               report: &report, log: log)
        }
        report.watermark = state.watermark
        return continues ? page.next : nil
    }

    /// The page's transaction: its snapshots, its events routed to their subscribers, its quarantine changes and
    /// the cursor (watermark and resume state) that covers it.
    private func pageCommit(_ diff: PageDiff, page: DeltaPage, context: ScanContext, state: ScanState,
                            detectedAt: Date) -> PendingCommit {
        let descriptor = context.descriptor
        var resumeOut = ResumeState()
        if let next = page.next {
            resumeOut.position = next
            resumeOut.scanLowerBound = context.lowerBound
            resumeOut.initial = context.initial
        } else if let freshValidator = state.freshValidator {
            resumeOut.validator = freshValidator
            resumeOut.validatorLowerBound = context.lowerBound
        }
        var cursor = context.base ?? CursorState(connection: descriptor.connection, object: descriptor.object,
                                                 partition: descriptor.partition)
        cursor.watermark = state.watermark
        cursor.resumeState = resumeOut.encoded()
        // A complete initial scan listed every record: the first sweep is due one period later.
        if context.initial && page.next == nil && cursor.lastReconcileAt == nil {
            cursor.lastReconcileAt = context.scanStart
        }
        let router = context.router
        let routed = zip(diff.events, diff.eventTexts).map { event, texts in
            OutgoingEvent(event: event, subscribers: router(event), recordText: texts.record, rawText: texts.raw)
        }
        return PendingCommit(
            commit: PageCommit(connection: descriptor.connection, object: descriptor.object,
                               snapshots: diff.snapshots, events: routed, cursor: cursor, now: detectedAt,
                               quarantine: page.rejected, acceptedIDs: page.records.map(\.id)),
            events: diff.events, descriptor: descriptor)
    }

    /// Carries out the commit pipeline's actions in order: `submit` hands a commit to the store (after whatever is
    /// on its queue), `settle` waits for it and reports it.
    func carryOut(_ actions: [CommitAction<PendingCommit>], state: inout ScanState, report: inout CycleReport,
                  log: Logger) async throws {
        for action in actions {
            switch action {
            case .submit(let waiting):
                let commit = waiting.commit
                state.committing = store.enqueue { try $0.commitPage(commit) }
            case .settle(let running):
                guard let task = state.committing else { continue }
                state.committing = nil
                record(try await task.value, of: running, report: &report, log: log)
            }
        }
    }

    private func record(_ result: PageCommitResult, of commit: PendingCommit, report: inout CycleReport, log: Logger) {
        report.snapshotsWritten += result.snapshotsWritten
        let duplicates = Set(result.duplicateEventIDs)
        for event in commit.events where !duplicates.contains(event.id) {
            report.add(event)
            metrics.eventCommitted(commit.descriptor, type: event.type)
        }
        report.duplicates += result.duplicateEventIDs
        if !result.duplicateEventIDs.isEmpty {
            log.info("re-read events already committed (skipped)", ["COUNT": String(result.duplicateEventIDs.count)])
        }
        noteQuarantined(result, of: commit, report: &report, log: log)
    }

    /// Fetches one page (or takes the prefetched one). A page over `max_response_bytes` halves the page size for
    /// the rest of the scan and asks again, down to one record (docs/DESIGN.md §2 rule 18); a single record over
    /// the cap fails the page with the provider's hint to raise `max_response_bytes`.
    private func fetchAdapting(_ request: DeltaRequest, prefetched: Prefetch?, context: ScanContext,
                               budget: inout ScanBudget, report: inout CycleReport) async throws -> HashedPage {
        var request = request
        var pending = prefetched
        while true {
            do {
                if let running = pending {
                    pending = nil
                    return try await running.task.value
                }
                return try await Self.fetch(request, from: context.target.source, differ: context.differ)
            } catch ProviderError.responseTooLarge(let limit, _) where min(budget.pageSize, request.pageSize) > 1 {
                budget.pageSize = min(budget.pageSize, request.pageSize) / 2
                request.pageSize = budget.pageSize
                metrics.pageSizeHalved(context.descriptor)
                context.log.warning("provider page larger than max_response_bytes; halving the page size for the rest of this scan",
                                    ["PAGE_SIZE": String(budget.pageSize), "MAX_RESPONSE_BYTES": String(limit)])
                report.warnings.append("a page exceeded max_response_bytes (\(limit)); page size halved to "
                    + "\(budget.pageSize) for the rest of this scan")
            }
        }
    }

    /// Records dated beyond scan start + `max_clock_skew` that changed: emitted like any change, but left out of the
    /// watermark (rule 14). Logged per record (only when it changed, so a re-read does not repeat the warning).
    private func reportFuture(_ future: [(id: String, at: Date)], descriptor: ObjectDescriptor, limit: Date,
                              dryRun: Bool, report: inout CycleReport, log: Logger) {
        guard !future.isEmpty else { return }
        report.futureRecords += future.count
        if !dryRun { metrics.futureRecords(descriptor, future.count) }
        for record in future.prefix(20) {
            log.warning("record dated in the future; emitted, but the cursor does not move to its timestamp",
                        [.recordID: record.id, "SOURCE_TIMESTAMP": Timestamps.rfc3339(record.at),
                         "LIMIT": Timestamps.rfc3339(limit)])
        }
    }
}
