// The daemon's maintenance round (docs/DESIGN.md §6 `retention`; issue 12 item 3) in-process, on an injected
// clock: it orphans a removed subscriber's pending deliveries, prunes what is past retention, purges tombstones,
// logs what it did, and leaves pending work alone.
import Core
@testable import Daemon
import Foundation
import Logging
import Store
import Testing

@Suite("maintenance applies retention")
struct MaintenanceTests {
    @Test("one round: orphaned, pruned by class and age, tombstones purged, pending kept")
    func oneRound() async throws {
        let directory = try ScratchDirectory("maintenance")
        let store = try StateStore(path: directory.path + "/" + StateStore.fileName)
        let t0 = Date(timeIntervalSince1970: 1_764_000_000)
        func event(_ n: Int) -> ChangeEvent {
            ChangeEvent(id: "evt_maint_\(n)", model: "ticket", kind: .updated,
                        subject: .init(connection: "c", provider: "p", object: "o", recordID: "r\(n)"),
                        occurredAt: t0, detectedAt: t0, content: .init(record: ["n": .integer(Int64(n))], raw: [:]))
        }
        let dead: JSONValue = ["id": "dead"]
        _ = try store.commitPage(PageCommit(
            connection: "c", object: "o",
            snapshots: [SnapshotWrite(recordID: "dead", contentHash: ContentHash.of(dead), record: dead, raw: dead,
                                      sourceTimestamp: t0, tombstoned: true)],
            events: [OutgoingEvent(event: event(1), subscribers: ["crm"]), OutgoingEvent(event: event(2), subscribers: ["crm"]),
                     OutgoingEvent(event: event(3), subscribers: ["old"])],
            now: t0))
        let delivered = try #require(try store.deliveries(eventID: "evt_maint_1").first)
        try store.recordAttempt(AttemptResult(deliveryID: delivered.id, attemptedAt: t0, httpStatus: 204,
                                              latencyMilliseconds: 1, outcome: .delivered))
        let sink = MemoryLogSink()
        let clock = t0.addingTimeInterval(3600)
        let service = MaintenanceService(
            store: store, logger: Logger(level: .debug, sink: sink),
            settings: { .init(retention: RetentionPolicy(delivered: 60, failed: 86_400, tombstones: 60), subscribers: ["crm"]) },
            now: { clock })
        let report = await service.runOnce()
        #expect(report.orphaned == ["old": 1] && report.events == 1 && report.tombstones == 1 && report.complete)
        #expect(try store.event(id: "evt_maint_1") == nil)
        #expect(try store.deliveries(eventID: "evt_maint_2").first?.state == .pending)
        #expect(try store.deliveries(eventID: "evt_maint_3").first?.state == .orphaned)
        let messages = sink.records.map(\.message)
        #expect(messages.contains { $0.contains("orphaned") }, "\(messages)")
        #expect(messages.contains { $0.contains("pruned rows past retention") }, "\(messages)")
        // A second round finds nothing more to do.
        let again = await service.runOnce()
        #expect(again.orphaned.isEmpty && again.events == 0 && again.tombstones == 0)
    }
}
