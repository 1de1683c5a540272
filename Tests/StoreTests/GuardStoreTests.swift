// Store side of untrusted provider answers: the quarantine written inside the page commit (docs/DESIGN.md §2
// rule 16) and the held sweeps of the mass-delete guard (rule 17).
import Foundation
import Testing
import Core
@testable import Store

private struct Injected: Error {}

private func rejected(_ id: String?, position: String = "$.result[0]", reason: String = "bad sys_id",
                      raw: String = #"{"sys_id":"a^ORb"}"#) -> RejectedRecord {
    RejectedRecord(id: id, position: position, reason: reason, rawExcerpt: raw)
}

@Suite("Quarantine store (rule 16)")
struct QuarantineStoreTests {
    @Test("rule 16: a rejected record is upserted with first/last seen and a count; only the first sighting is new", arguments: StoreBackend.all)
    func upsertCounts(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let first = try store.commitPage(PageCommit(connection: "c", object: "o", now: t0,
                                                    quarantine: [rejected("x1"), rejected(nil, position: "$.result[7]")]))
        #expect(first.newlyQuarantined == ["x1", "$.result[7]"])
        let again = try store.commitPage(PageCommit(connection: "c", object: "o", now: t0.addingTimeInterval(60),
                                                    quarantine: [rejected("x1", reason: "timestamp 2099 out of range")]))
        #expect(again.newlyQuarantined.isEmpty)
        let rows = try store.quarantine(connection: "c")
        #expect(rows.count == 2)
        let x1 = try #require(rows.first { $0.recordKey == "x1" })
        #expect(x1.recordID == "x1" && x1.seenCount == 2)
        #expect(x1.firstSeenAt == t0 && x1.lastSeenAt == t0.addingTimeInterval(60))
        #expect(x1.reason == "timestamp 2099 out of range")      // the latest sighting's reason
        let byPosition = try #require(rows.first { $0.recordKey == "$.result[7]" })
        #expect(byPosition.recordID == nil)
        #expect(try store.quarantineCounts() == [ObjectCount(connection: "c", object: "o", count: 2)])
        #expect(try store.quarantine(connection: "c", object: "other").isEmpty)
    }

    @Test("rule 16: the excerpt is at most 4 KB, cut on a character boundary", arguments: StoreBackend.all)
    func excerptLimit(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let big = String(repeating: "é", count: 5000)            // 10 000 UTF-8 bytes
        _ = try store.commitPage(PageCommit(connection: "c", object: "o", now: t0,
                                            quarantine: [rejected("x1", raw: big)]))
        let row = try #require(try store.quarantine().first)
        #expect(row.rawExcerpt.utf8.count <= RejectedRecord.excerptLimit)
        #expect(row.rawExcerpt.utf8.count > RejectedRecord.excerptLimit - 4)   // at most one character short
        #expect(row.rawExcerpt.allSatisfy { $0 == "é" })
    }

    @Test("rule 16: a quarantined record accepted valid on a later page leaves quarantine with that page", arguments: StoreBackend.all)
    func releaseOnValid(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        _ = try store.commitPage(PageCommit(connection: "c", object: "o", now: t0,
                                            quarantine: [rejected("x1"), rejected("x2")]))
        #expect(try store.quarantinedIDs(connection: "c", object: "o", among: ["x1", "y"]) == ["x1"])
        let result = try store.commitPage(PageCommit(connection: "c", object: "o", snapshots: [snapshotWrite("x1", 1)],
                                                     now: t0.addingTimeInterval(5), acceptedIDs: ["x1", "y"]))
        #expect(result.releasedFromQuarantine == 1)
        #expect(try store.quarantine().map(\.recordKey) == ["x2"])
        // Another object's row with the same id is not touched.
        _ = try store.commitPage(PageCommit(connection: "c", object: "p", now: t0, quarantine: [rejected("x2")]))
        _ = try store.commitPage(PageCommit(connection: "c", object: "o", now: t0, acceptedIDs: ["x2"]))
        #expect(try store.quarantine().map { "\($0.object)/\($0.recordKey)" } == ["p/x2"])
    }

    @Test("rule 16: quarantine rows commit in the page's transaction: a failure before the cursor leaves none", arguments: StoreBackend.all)
    func sameTransaction(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let page = PageCommit(connection: "c", object: "o", snapshots: [snapshotWrite("ok", 1)],
                              cursor: CursorState(connection: "c", object: "o", watermark: t0), now: t0,
                              quarantine: [rejected("bad")])
        for stage in [StateStore.CommitStage.quarantine, .cursor] {
            #expect(throws: Injected.self) {
                _ = try store.commitPage(page) { if $0 == stage { throw Injected() } }
            }
            #expect(try store.quarantine().isEmpty)
            #expect(try store.cursor(connection: "c", object: "o") == nil)
        }
        // And a release rolls back with its page too.
        _ = try store.commitPage(page)
        #expect(throws: Injected.self) {
            _ = try store.commitPage(PageCommit(connection: "c", object: "o", now: t0, acceptedIDs: ["bad"])) {
                if $0 == .cursor { throw Injected() }
            }
        }
        #expect(try store.quarantine().map(\.recordKey) == ["bad"])
    }

    @Test("quarantine clear removes by connection, object and record key", arguments: StoreBackend.all)
    func clear(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        _ = try store.commitPage(PageCommit(connection: "c", object: "o", now: t0,
                                            quarantine: [rejected("a"), rejected("b")]))
        _ = try store.commitPage(PageCommit(connection: "c", object: "p", now: t0, quarantine: [rejected("a")]))
        _ = try store.commitPage(PageCommit(connection: "d", object: "o", now: t0, quarantine: [rejected("a")]))
        #expect(try store.clearQuarantine(connection: "c", object: "o", recordKey: "a") == 1)
        #expect(try store.clearQuarantine(connection: "c", object: "o") == 1)
        #expect(try store.clearQuarantine(connection: "c") == 1)
        #expect(try store.quarantine().map(\.connection) == ["d"])
    }
}

@Suite("Held sweeps store (rule 17)")
struct HeldSweepStoreTests {
    /// Live r1…r5; a sweep at t0+100 saw r1 and r2.
    private func seeded(_ store: StateStore) throws -> Date {
        _ = try store.commitPage(PageCommit(connection: "c", object: "o",
                                            snapshots: (1...5).map { snapshotWrite("r\($0)", $0) }, now: t0))
        let sweep = t0.addingTimeInterval(100)
        try store.markSeen(connection: "c", object: "o", ids: ["r1", "r2"], sweep: sweep)
        return sweep
    }

    @Test("rule 17: counts, hold with the unseen ids, request, apply filter, clear", arguments: StoreBackend.all)
    func lifecycle(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let sweep = try seeded(store)
        let counts = try store.sweepCounts(connection: "c", object: "o", sweep: sweep)
        #expect(counts.live == 5 && counts.unseen == 3)
        try store.holdSweep(HeldSweep(connection: "c", object: "o", sweepStarted: sweep, heldAt: sweep, wouldDelete: 0,
                                      live: 5, listed: 2))
        let held = try #require(try store.heldSweep(connection: "c", object: "o"))
        #expect(held.wouldDelete == 3 && held.live == 5 && held.listed == 2 && !held.applyRequested)
        #expect(try store.heldSweepIDs(connection: "c", object: "o") == ["r3", "r4", "r5"])
        #expect(try store.heldSweeps().map(\.object) == ["o"])

        // r4 is written by a page after the sweep started (it came back): no longer a deletion.
        _ = try store.commitPage(PageCommit(connection: "c", object: "o", snapshots: [snapshotWrite("r4", 40)],
                                            now: sweep.addingTimeInterval(5)))
        #expect(try store.stillUnseenLiveIDs(connection: "c", object: "o", since: sweep,
                                             among: ["r3", "r4", "r5"]) == ["r3", "r5"])

        #expect(try store.requestHeldSweepApply(connection: "c", object: "o"))
        #expect(try store.heldSweep(connection: "c", object: "o")?.applyRequested == true)
        #expect(try !store.requestHeldSweepApply(connection: "c", object: "other"))
        // A newer held sweep replaces the row and the request that was for the older verdict.
        let later = sweep.addingTimeInterval(3600)
        try store.holdSweep(HeldSweep(connection: "c", object: "o", sweepStarted: later, heldAt: later, wouldDelete: 0,
                                      live: 5, listed: 0))
        let replaced = try #require(try store.heldSweep(connection: "c", object: "o"))
        #expect(replaced.sweepStarted == later && !replaced.applyRequested && replaced.wouldDelete == 5)
        #expect(try store.clearHeldSweep(connection: "c", object: "o"))
        #expect(try store.heldSweep(connection: "c", object: "o") == nil)
        #expect(try store.heldSweepIDs(connection: "c", object: "o").isEmpty)
    }
}
