// The differ's fast content hash must equal Core's canonical ContentHash exactly (docs/DESIGN.md §2 rule 5): stored
// snapshot hashes and event ids depend on it.
import Core
import Engine
import Foundation
import Testing

@Suite("Differ")
struct DifferTests {
    static let awkward: [JSONValue] = [
        .null, true, 0, -7, 1.5, 1.0, 1e300, -0.0, .double(.nan), "plain",
        "quote \" backslash \\ newline \n tab \t bell \u{07} nul \u{0} del \u{7f}",
        "ünïcödé ✓ 𝄞 emoji 🎉",
        [1, "two", [3.25, nil], ["k": "v"]],
        ["b": 1, "a": 2, "B": 3, "é": 4, "e": 5, "ab": 6, "a\u{0}": 7, "": 8],
        ["sys_updated_on": "2026-11-29 06:00:00", "sys_mod_count": 3, "state": "2",
         "nested": ["sys_updated_on": "kept: only top-level fields are volatile", "z": [], "y": [:]]],
        ["number": "INC0010001", "price": 12.30, "big": .integer(Int64.max), "neg": .integer(Int64.min)],
    ]

    @Test("Differ.contentHash equals ContentHash.of minus volatile fields on awkward values (rule 5)")
    func hashMatchesCore() {
        let descriptor = ObjectDescriptor(connection: "c", provider: "p", object: "o", model: "record",
                                          volatileFields: ["sys_updated_on", "sys_mod_count"])
        let differ = Differ(descriptor: descriptor)
        for value in Self.awkward {
            let record = SourceRecord(id: "x", updatedAt: nil, raw: value, record: value)
            #expect(differ.contentHash(of: record) == ContentHash.of(value, ignoring: descriptor.volatileFields),
                    "\(value.serialized())")
        }
        // Volatile fields do not move the hash; other fields do.
        let a: JSONValue = ["state": "1", "sys_mod_count": 1]
        let b: JSONValue = ["sys_mod_count": 2, "state": "1"]
        let c: JSONValue = ["state": "2", "sys_mod_count": 1]
        let hash = { (v: JSONValue) in differ.contentHash(of: SourceRecord(id: "x", updatedAt: nil, raw: v, record: v)) }
        #expect(hash(a) == hash(b) && hash(a) != hash(c))
    }

    @Test("Differ.contentHash of a pinned record equals a hash computed outside Swift (rule 5)")
    func pinnedHash() throws {
        // Python: json.dumps(record minus volatile, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        // then hashlib.sha256. Stored snapshot hashes and event ids must not move when the hasher gets faster.
        let text = #"{"sys_id":"9d385017c611228701d22104cc95c371","number":"INC0010001","short_description":"Printer \"3rd floor\" jams\nagain\\ – café ✓ 🎉 \u0001","priority":2,"impact":-3,"big":9223372036854775807,"price":12.3,"ratio":1e+300,"whole":4,"tiny":0.1,"active":true,"closed_at":null,"tags":["b","a",1,{},[]],"nested":{"z":1,"a":{"y":2,"x":1},"sys_updated_on":"kept"},"é":"accent key","B":"upper","a\u0000":"nul key","sys_updated_on":"2026-11-29 06:00:00","sys_mod_count":7}"#
        let value = try JSONValue.parse(text)
        let descriptor = ObjectDescriptor(connection: "c", provider: "p", object: "o", model: "record",
                                          volatileFields: ["sys_updated_on", "sys_mod_count"])
        let record = SourceRecord(id: "x", updatedAt: nil, raw: value, record: value)
        #expect(Differ(descriptor: descriptor).contentHash(of: record)
                == "f0ba99f7b91d5fba5621118a28efb3849531f03de9be48c5151deb51f56d5807")
    }

    @Test("a page of content hashes (split across cores, hashers reused) equals one-by-one hashes, in order")
    func pageHashesMatchOneByOne() {
        let descriptor = ObjectDescriptor(connection: "c", provider: "p", object: "o", model: "record",
                                          volatileFields: ["sys_updated_on", "sys_mod_count"])
        let differ = Differ(descriptor: descriptor)
        // More than the parallel threshold, mixing the awkward values with distinct records.
        let records = (0..<1300).map { i -> SourceRecord in
            let value: JSONValue = i % 7 == 0
                ? Self.awkward[i % Self.awkward.count]
                : ["id": .integer(Int64(i)), "name": .string("record \(i) \u{e9}"), "sys_mod_count": .integer(Int64(i))]
            return SourceRecord(id: String(i), updatedAt: nil, raw: value, record: value)
        }
        let hashes = differ.contentHashes(of: records)
        #expect(hashes == records.map { ContentHash.of($0.raw, ignoring: descriptor.volatileFields) })
        #expect(differ.contentHashes(of: Array(records.prefix(3))) == hashes.prefix(3).map { $0 })
        #expect(differ.contentHashes(of: []).isEmpty)
    }

    @Test("tombstoned priors diff as created; equal hashes as unchanged; changes name record fields (rules 5, 6)")
    func outcomes() {
        let descriptor = ObjectDescriptor(connection: "c", provider: "p", object: "o", model: "ticket",
                                          volatileFields: ["sys_mod_count"])
        let differ = Differ(descriptor: descriptor)
        let record = SourceRecord(id: "1", updatedAt: Date(timeIntervalSince1970: 10), raw: ["state": "2"],
                                  record: ["status": "in_progress"])
        let hash = differ.contentHash(of: record)
        #expect(differ.diff(record, prior: nil) == .created(contentHash: hash))
        #expect(differ.diff(record, prior: PriorState(contentHash: hash, record: .null, tombstoned: true))
                == .created(contentHash: hash))
        #expect(differ.diff(record, prior: PriorState(contentHash: hash, record: .null, tombstoned: false)) == .unchanged)
        let updated = differ.diff(record, prior: PriorState(contentHash: "old", record: ["status": "open"],
                                                            tombstoned: false))
        #expect(updated == .updated(contentHash: hash, changes: ["status": FieldChange(from: "open", to: "in_progress")],
                                    changedFields: nil))
        let event = differ.event(for: record, outcome: updated, detectedAt: Date(timeIntervalSince1970: 20))
        #expect(event?.type == "ticket.updated" && event?.occurredAt == Date(timeIntervalSince1970: 10))
    }

    // Rule 5a: any content change emits, for every model; `changed_fields` names the provider fields.
    static let ticket = ObjectDescriptor(connection: "acme", provider: "servicenow", object: "incident", model: "ticket",
                                         volatileFields: ["sys_updated_on", "sys_mod_count"])

    static func incident(_ workNotes: String, state: String = "2", modCount: Int64 = 1, at seconds: Double = 10)
        -> SourceRecord
    {
        SourceRecord(id: "s1", updatedAt: Date(timeIntervalSince1970: seconds),
                     raw: ["sys_id": "s1", "state": .string(state), "comments": .string(workNotes),
                           "sys_mod_count": .integer(modCount), "sys_updated_on": .string("at \(seconds)")],
                     record: ["id": "s1", "status": state == "2" ? "in_progress" : "open"])
    }

    static func prior(of record: SourceRecord, differ: Differ) -> PriorState {
        PriorState(contentHash: differ.contentHash(of: record), record: record.record, tombstoned: false,
                   raw: record.raw)
    }

    @Test("rule 5a: a typed model's change outside the model emits updated, changes {} and changed_fields [comments]")
    func changeOutsideModelEmits() throws {
        let differ = Differ(descriptor: Self.ticket)
        let before = Self.incident("first")
        let after = Self.incident("second", modCount: 2, at: 20)
        let outcome = differ.diff(after, prior: Self.prior(of: before, differ: differ))
        #expect(outcome == .updated(contentHash: differ.contentHash(of: after), changes: [:],
                                    changedFields: ["comments"]))
        let event = try #require(differ.event(for: after, outcome: outcome, detectedAt: Date(timeIntervalSince1970: 30)))
        #expect(event.type == "ticket.updated" && event.changes == [:] && event.changedFields == ["comments"])
        // The body carries the names, never the values, unless the subscriber asked for raw.
        let plain = event.webhookBody(includeRaw: false)
        #expect(plain["data"]?["changes"] == .object(JSONObject()))
        #expect(plain["data"]?["changed_fields"] == ["comments"])
        #expect(!plain.serialized().contains("second") && plain["data"]?["raw"] == nil)
        #expect(event.webhookBody(includeRaw: true)["data"]?["raw"]?["comments"] == "second")
        // Created and deleted events carry no changed_fields.
        let created = try #require(differ.event(for: after, outcome: differ.diff(after, prior: nil), detectedAt: .now))
        #expect(created.changedFields == nil && created.webhookBody(includeRaw: false)["data"]?["changed_fields"] == nil)
    }

    @Test("rule 5a: changed_fields is sorted, names model and non-model fields, skips volatile ones, sees added and removed fields")
    func changedFieldsNames() {
        let differ = Differ(descriptor: Self.ticket)
        let before = Self.incident("first", state: "1")
        var after = Self.incident("second", state: "2", modCount: 9, at: 99)
        after.raw = ["sys_id": "s1", "state": "2", "comments": "second", "sys_mod_count": 9, "sys_updated_on": "x",
                     "u_custom": .null]
        let outcome = differ.diff(after, prior: Self.prior(of: before, differ: differ))
        guard case .updated(_, let changes, let fields) = outcome else {
            Issue.record("expected updated, got \(outcome)")
            return
        }
        #expect(changes == ["status": FieldChange(from: "open", to: "in_progress")])
        #expect(fields == ["comments", "state", "u_custom"])
        #expect(ContentHash.changedFields(from: ["a": 1, "gone": 2], to: ["a": 1.0], ignoring: []) == ["gone"])
    }

    @Test("rule 5a: a volatile-only change is no change at all: no event")
    func volatileOnlyNoEvent() {
        let differ = Differ(descriptor: Self.ticket)
        let before = Self.incident("same")
        let touched = Self.incident("same", modCount: 7, at: 50)
        let outcome = differ.diff(touched, prior: Self.prior(of: before, differ: differ))
        #expect(outcome == .unchanged)
        #expect(differ.event(for: touched, outcome: outcome, detectedAt: .now) == nil)
    }

    @Test("rule 5a: emit model_changes drops an update whose model-level changes are empty, keeps model changes")
    func modelChangesPolicy() {
        let differ = Differ(descriptor: Self.ticket, emit: .modelChanges)
        let before = Self.incident("first")
        let notes = Self.incident("second", modCount: 2, at: 20)
        let outcome = differ.diff(notes, prior: Self.prior(of: before, differ: differ))
        #expect(outcome.contentHash == differ.contentHash(of: notes))   // the snapshot still moves
        #expect(differ.event(for: notes, outcome: outcome, detectedAt: .now) == nil)
        let reopened = Self.incident("second", state: "1", modCount: 3, at: 30)
        let modelOutcome = differ.diff(reopened, prior: Self.prior(of: notes, differ: differ))
        let event = differ.event(for: reopened, outcome: modelOutcome, detectedAt: .now)
        #expect(event?.changes == ["status": FieldChange(from: "in_progress", to: "open")])
        #expect(event?.changedFields == ["state"])
    }

    @Test("rule 5a: the event id does not depend on changed_fields or the emit policy (rule 8 inputs unchanged)")
    func eventIDStable() throws {
        let before = Self.incident("first")
        let after = Self.incident("second", modCount: 2, at: 20)
        let differ = Differ(descriptor: Self.ticket)
        let outcome = differ.diff(after, prior: Self.prior(of: before, differ: differ))
        let event = try #require(differ.event(for: after, outcome: outcome, detectedAt: .now))
        let hash = differ.contentHash(of: after)
        #expect(event.id == ChangeEvent.makeID(connection: "acme", object: "incident", recordID: "s1",
                                               sourceTimestamp: after.updatedAt, contentHash: hash, kind: .updated))
        // Without the prior raw (changed_fields unknown) the same change has the same id.
        let withoutRaw = differ.diff(after, prior: PriorState(contentHash: "old", record: before.record, tombstoned: false))
        #expect(differ.event(for: after, outcome: withoutRaw, detectedAt: .now)?.id == event.id)
    }
}
