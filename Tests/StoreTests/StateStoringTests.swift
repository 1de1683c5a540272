// The store's surface as a protocol (issue 13, item 2): callers that hold `any StateStoring` can commit a page,
// hop onto the store's queue with `perform`, claim and record a delivery, as the engine and the dispatcher do.
import Foundation
import Testing
import Core
import Store

@Suite struct StateStoringTests {
    @Test func aPageRoundTripsThroughTheProtocol() async throws {
        let dir = try TempDir()
        let store: any StateStoring = try StateStore(path: dir.dbPath)
        let event = makeEvent("r1", 1, kind: .created)
        let commit = PageCommit(connection: "c", object: "o", snapshots: [snapshotWrite("r1", 1)],
                                events: [OutgoingEvent(event: event, subscribers: ["crm"])],
                                cursor: CursorState(connection: "c", object: "o", watermark: t0), now: t0)
        let result = try await store.perform { try $0.commitPage(commit) }
        #expect(result.inserted.map(\.id) == [event.id])

        let claimed = try await store.perform {
            try $0.claimDueDeliveries(subscriber: "crm", now: t0, leaseUntil: t0.addingTimeInterval(30), limit: 10,
                                      inFlight: [])
        }
        #expect(claimed.map(\.event) == [SerializedEvent(event)])
        #expect(try claimed.map { try $0.event.decoded() } == [event])
        let delivery = try #require(claimed.first?.delivery)
        let superseded = try store.recordAttempts([
            AttemptResult(deliveryID: delivery.id, attemptedAt: t0, httpStatus: 204, latencyMilliseconds: 1,
                          outcome: .delivered, leaseToken: delivery.leaseToken),
        ])
        #expect(superseded.isEmpty)
        #expect(try store.nextDueAt(subscriber: "crm") == nil)
        #expect(try store.cursor(connection: "c", object: "o", partition: "")?.watermark == t0)
        #expect(try store.deliveries(eventID: event.id).map(\.state) == [.delivered])
    }
}
