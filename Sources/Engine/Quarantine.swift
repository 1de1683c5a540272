// Quarantine instead of stall (docs/DESIGN.md §2 rule 16), engine side. The adapter hands back the records it
// could not accept in `DeltaPage.rejected` and steps past them; the poll runner puts them in the page's commit,
// where the store quarantines them in the page's own transaction. Here: what the cycle reports and logs about
// them. A record is logged once, when it enters quarantine, not on every re-read through the lookback.
import Core
import Logging
import Store

extension PollRunner {
    /// Counts a page's rejected records; in a dry run (nothing is stored) also logs and lists each of them, since
    /// that is all the operator will see of them.
    func noteRejected(_ rejected: [RejectedRecord], dryRun: Bool, report: inout CycleReport, log: Logger) {
        report.rejected += rejected.count
        guard dryRun else { return }
        for record in rejected {
            log.warning("record rejected by the adapter (dry run: not quarantined)",
                        ["RECORD_ID": record.key, "REASON": record.reason])
            report.warnings.append("record \(record.key) rejected: \(record.reason)")
        }
    }

    /// After a page committed: logs and counts the records that entered quarantine for the first time, and
    /// counts those that left it.
    func noteQuarantined(_ result: PageCommitResult, of pending: PendingCommit, report: inout CycleReport,
                         log: Logger) {
        report.releasedFromQuarantine += result.releasedFromQuarantine
        guard !result.newlyQuarantined.isEmpty else { return }
        report.quarantined += result.newlyQuarantined.count
        metrics.quarantined(pending.descriptor, result.newlyQuarantined.count)
        let fresh = Set(result.newlyQuarantined)
        var logged = Set<String>()
        for record in pending.commit.quarantine where fresh.contains(record.key) && logged.insert(record.key).inserted {
            log.warning("record quarantined: the adapter could not accept it; the scan goes on without it",
                        ["RECORD_ID": record.key, "POSITION": record.position, "REASON": record.reason,
                         "HINT": "see `deltahook quarantine list`; it leaves quarantine when it arrives valid"])
        }
    }
}
