// Event ids (docs/DESIGN.md §2 rule 8) and the subscriber body (docs/DESIGN.md §4).
import Foundation
import Testing
import Core

@Suite struct ChangeEventTests {
    static let t0 = Date(timeIntervalSince1970: 1_795_932_000)

    static func id(_ stamp: Date?, _ hash: String, kind: ChangeKind = .updated, connection: String = "acme-snow",
                   object: String = "incident", record: String = "9d38") -> String {
        ChangeEvent.makeID(connection: connection, object: object, recordID: record, sourceTimestamp: stamp,
                           contentHash: hash, kind: kind)
    }

    @Test func rule8IDsAreDeterministicAcrossRePolls() {
        let first = Self.id(Self.t0, "hashA")
        #expect(first == Self.id(Self.t0, "hashA"))
        #expect(first.hasPrefix("evt_"))
        #expect(first.count == 36)
        #expect(first.dropFirst(4).allSatisfy { $0.isHexDigit })
        #expect(Self.id(nil, "hashA") == Self.id(nil, "hashA"))
    }

    @Test func rule8IDsArePinned() {
        // Computed outside Swift (Python hashlib over the length-prefixed, 0x1F-separated parts), so a faster
        // makeID cannot change the webhook-ids of events already delivered.
        #expect(ChangeEvent.makeID(connection: "octo", object: "issues", recordID: "12345",
                                   sourceTimestamp: Date(timeIntervalSince1970: 1_764_000_000.5),
                                   contentHash: String(repeating: "ab", count: 32), kind: .updated)
                == "evt_2d930ef219f35db14b2e505935da1763")
        #expect(ChangeEvent.makeID(connection: "sn", object: "incident", recordID: "café✓", sourceTimestamp: nil,
                                   contentHash: String(repeating: "cd", count: 32), kind: .created)
                == "evt_b4c01325a80bf7852c38642e41640fe3")
    }

    @Test func rule8ABABYieldsDistinctEvents() {
        // A → B → A → B: same two contents, each at a new source timestamp.
        let ids = [("hashA", 0.0), ("hashB", 60), ("hashA", 120), ("hashB", 180)]
            .map { Self.id(Self.t0.addingTimeInterval($0.1), $0.0) }
        #expect(Set(ids).count == 4)
    }

    @Test func rule8EveryComponentMattersAndFieldsCannotBleed() {
        let base = Self.id(Self.t0, "h")
        #expect(base != Self.id(Self.t0, "h", kind: .created))
        #expect(base != Self.id(Self.t0, "h", connection: "other"))
        #expect(base != Self.id(Self.t0, "h", object: "problem"))
        #expect(base != Self.id(Self.t0, "h", record: "9d39"))
        #expect(base != Self.id(Self.t0.addingTimeInterval(0.001), "h"))
        #expect(base != Self.id(nil, "h"))
        #expect(base != Self.id(Self.t0, "h2"))
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        #expect(Self.id(Self.t0, "h", connection: "ab", object: "c") != Self.id(Self.t0, "h", connection: "a", object: "bc"))
    }

    static func event(_ kind: ChangeKind, changes: [String: FieldChange]? = nil) -> ChangeEvent {
        ChangeEvent(id: "evt_1", model: "ticket", kind: kind,
                    subject: .init(connection: "acme-snow", provider: "servicenow", object: "incident", recordID: "9d38"),
                    occurredAt: Self.t0, detectedAt: Self.t0.addingTimeInterval(1),
                    content: .init(record: ["id": "9d38", "status": "in_progress"], changes: changes,
                                   raw: ["sys_id": "9d38", "state": "2"]))
    }

    @Test func webhookBodyShapeForUpdated() {
        let event = Self.event(.updated, changes: ["status": FieldChange(from: "open", to: "in_progress")])
        #expect(event.type == "ticket.updated")
        #expect(event.webhookBody(includeRaw: false).serialized()
            == #"{"type":"ticket.updated","timestamp":"2026-11-29T06:00:01Z","data":{"event_id":"evt_1","connection":"acme-snow","provider":"servicenow","object":"incident","record_id":"9d38","occurred_at":"2026-11-29T06:00:00Z","record":{"id":"9d38","status":"in_progress"},"changes":{"status":{"from":"open","to":"in_progress"}}}}"#)
        let withRaw = event.webhookBody(includeRaw: true)
        #expect(withRaw["data"]?["raw"] == ["sys_id": "9d38", "state": "2"])
        #expect(withRaw["data"]?.objectValue?.keys.last == "raw")
    }

    @Test func webhookBodyHasRawOnlyWithIncludeRawAndChangesOnlyOnUpdated() {
        for kind in ChangeKind.allCases {
            let event = Self.event(kind, changes: ["status": FieldChange(from: "open", to: "in_progress")])
            let data = event.webhookBody(includeRaw: false)["data"]
            #expect(data?["raw"] == nil)
            #expect((data?["changes"] != nil) == (kind == .updated), "\(kind)")
            #expect(event.webhookBody(includeRaw: true)["data"]?["raw"] != nil)
            #expect(event.webhookBody(includeRaw: false)["type"] == .string("ticket.\(kind.rawValue)"))
        }
        // A deleted event carries the last known record.
        #expect(Self.event(.deleted).webhookBody(includeRaw: false)["data"]?["record"]?["status"] == "in_progress")
    }

    @Test func webhookBodyWithoutSourceTimestampHasNullOccurredAt() {
        var event = Self.event(.created)
        event.occurredAt = nil
        #expect(event.webhookBody(includeRaw: false)["data"]?["occurred_at"] == .null)
    }
}
