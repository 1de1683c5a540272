// The dispatcher sends bodies spliced from the outbox's stored texts (SerializedEvent); they must be the bytes
// `ChangeEvent.webhookBody` renders, both for the event as the engine built it and for the event rebuilt by
// parsing the stored texts (what the claim path did before): receivers and byte-identical replays depend on it.
import Foundation
import Testing
import Core

@Suite struct SerializedEventTests {
    static let t0 = Date(timeIntervalSince1970: 1_795_932_000)

    static let awkward: JSONValue = [
        "zeta": "first key stays first", "id": .string("r\u{e9}c \u{1F600} \u{4E2D}\u{6587}"),
        "quote": "say \"hi\" \\ back/slash", "controls": .string("tab\there\nnl\r\u{01}\u{1F}\u{7F}\u{2028}\u{2029}"),
        "numbers": [.integer(0), .integer(-42), .integer(Int64.max), .integer(Int64.min), .double(1.5),
                    .double(1.0), .double(-0.0), .double(1e300), .double(-2.5e-8), .double(9.5e15), .double(0.1)],
        "nested": ["empty_object": .object(JSONObject()), "empty_array": [], "null": .null, "flag": true,
                   "deep": [["a": [["b": "c"]]]]],
        "": "empty key",
    ]

    static func event(kind: ChangeKind, occurred: Date?, changes: [String: FieldChange]?, changedFields: [String]?,
                      record: JSONValue = awkward, raw: JSONValue = awkward) -> ChangeEvent {
        ChangeEvent(id: "evt_0123456789abcdef0123456789abcdef", model: "ticket", kind: kind,
                    subject: .init(connection: "acme \"snow\"", provider: "servicenow", object: "inc\u{e9}dent",
                                   recordID: "r/1\\\u{1F600}"),
                    occurredAt: occurred, detectedAt: t0.addingTimeInterval(0.987),
                    content: .init(record: record, changes: changes, raw: raw, changedFields: changedFields))
    }

    static var cases: [ChangeEvent] {
        let changes: [String: FieldChange] = [
            "status": FieldChange(from: "open", to: "closed"), "\u{e9}t\u{e9}": FieldChange(from: .null, to: awkward),
            "Zed": FieldChange(from: .integer(1), to: .double(2.5)), "a\"b": FieldChange(from: [], to: ["x"]),
        ]
        var result: [ChangeEvent] = []
        for kind in ChangeKind.allCases {
            for occurred in [nil, t0] as [Date?] {
                for change in [nil, [:], changes] as [[String: FieldChange]?] {
                    for fields in [nil, [], ["comments", "u_\u{e9}", "with \"quote\""]] as [[String]?] {
                        result.append(event(kind: kind, occurred: occurred, changes: change, changedFields: fields))
                    }
                }
            }
        }
        result.append(event(kind: .updated, occurred: nil, changes: nil, changedFields: nil, record: "scalar",
                            raw: [.integer(1), .null]))
        result.append(event(kind: .deleted, occurred: t0, changes: nil, changedFields: nil,
                            record: .object(JSONObject()), raw: .object(JSONObject())))
        return result
    }

    @Test func splicedBodyIsByteIdenticalToWebhookBody() throws {
        for event in Self.cases {
            let stored = SerializedEvent(event)
            // What the claim path rendered before: the stored texts parsed back into an event.
            let reparsed = try stored.decoded()
            for includeRaw in [false, true] {
                let spliced = stored.webhookBody(includeRaw: includeRaw)
                #expect(spliced == event.webhookBody(includeRaw: includeRaw).serializedBytes())
                #expect(spliced == reparsed.webhookBody(includeRaw: includeRaw).serializedBytes())
                #expect(try JSONValue.parse(spliced) == reparsed.webhookBody(includeRaw: includeRaw))
            }
        }
    }

    @Test func decodedRebuildsTheEvent() throws {
        let event = Self.event(kind: .updated, occurred: Self.t0, changes: ["status": FieldChange(from: "a", to: "b")],
                               changedFields: ["x"], record: ["id": "1"], raw: ["id": "1", "x": .integer(2)])
        #expect(try SerializedEvent(event).decoded() == event)
        #expect(SerializedEvent(event).type == "ticket.updated")
    }
}
