// The real `deltahook run` binary against ServiceNow and NetSuite emulators whose records are deleted and
// re-created with the same id in the same second while the daemon polls every second (docs/DESIGN.md §2 rule 6a),
// and a sweep that deletes a record a before-query business rule hid, repaired by the next sweep.
import Core
import Emulators
import Foundation
import Testing

/// One delivered event of the hostile connection, as the subscriber saw it.
struct DeliveredChange {
    var webhookID: String
    var type: String
    var recordID: String
    var occurredAt: Date?
    /// The state label the test wrote into the record (`short_description`, `companyname`); nil for `deleted`.
    var state: String?
    var isDeleted: Bool { type.hasSuffix(".deleted") }
}

extension HostileScenario {
    /// The hostile connection's accepted deliveries per record id, in arrival order (deliveries of one record
    /// arrive in commit order), each webhook-id once (a retried delivery is the same event).
    func changesByRecord(stateField: String) -> [String: [DeliveredChange]] {
        var seen = Set<String>()
        var result: [String: [DeliveredChange]] = [:]
        for webhook in receiver.accepted {
            guard let id = webhook.webhookID, seen.insert(id).inserted,
                  let body = try? JSONValue.parse(webhook.body), body["data"]?["connection"]?.stringValue == "hostile",
                  let type = body["type"]?.stringValue, let record = body["data"]?["record_id"]?.stringValue
            else { continue }
            let occurred = body["data"]?["occurred_at"]?.stringValue.flatMap { Timestamps.parseRFC3339($0) }
            let state = type.hasSuffix(".deleted") ? nil : body["data"]?["record"]?[stateField]?.stringValue
            result[record, default: []].append(DeliveredChange(webhookID: id, type: type, recordID: record,
                                                               occurredAt: occurred, state: state))
        }
        return result
    }
}

/// What the test did to one provider, and what each record should finally be.
final class DeleteRecreateScript {
    let ids: [String]
    let create: (String, String, Date) throws -> Void
    let delete: (String, Date) throws -> Void
    /// id → the live state label, nil when deleted.
    private(set) var expected: [String: String?] = [:]
    /// id → every delete time.
    private(set) var deletes: [String: [Date]] = [:]

    init(ids: [String], create: @escaping (String, String, Date) throws -> Void,
         delete: @escaping (String, Date) throws -> Void) {
        self.ids = ids
        self.create = create
        self.delete = delete
    }

    func created(_ id: String, _ state: String, at: Date) throws {
        try create(id, state, at)
        expected[id] = .some(state)
    }

    func deleted(_ id: String, at: Date) throws {
        try delete(id, at)
        expected[id] = .some(nil)
        deletes[id, default: []].append(at)
    }

    /// 20 rounds: the record deleted last round comes back, then all three are deleted in one second and two of
    /// them re-created with the same id in that same second, with random pauses (the daemon polls every second)
    /// between the steps. The source clock moves one second per step, so every state has its own timestamp.
    func run(rounds: Int = 20, start: Date) async throws {
        var clock = start
        var generator = SystemRandomNumberGenerator()
        func pause(_ range: ClosedRange<Int>) async throws {
            try await Task.sleep(for: .milliseconds(Int.random(in: range, using: &generator)))
        }
        for round in 1...rounds {
            clock = clock.addingTimeInterval(1)
            for id in ids where expected[id] == .some(nil) { try created(id, "restored \(round) \(id)", at: clock) }
            try await pause(0...400)
            clock = clock.addingTimeInterval(1)
            for id in ids { try deleted(id, at: clock) }
            try await pause(0...300)
            for id in ids.shuffled(using: &generator).prefix(2) { try created(id, "round \(round) \(id)", at: clock) }
            try await pause(0...700)
        }
    }

    /// Whether the subscriber's last change of every record matches the source.
    func settled(_ changes: [String: [DeliveredChange]]) -> Bool {
        ids.allSatisfy { id in
            guard let last = changes[id]?.last, let want = expected[id] else { return false }
            return want == nil ? last.isDeleted : (!last.isDeleted && last.state == want)
        }
    }

    /// The subscriber's picture per record: never `deleted` after a newer state (a same-second state only when the
    /// record was deleted again later), `created` only first or after `deleted`, `updated` never after `deleted`,
    /// no two `deleted` in a row, and no state under two webhook-ids.
    func problems(_ changes: [String: [DeliveredChange]]) -> [String] {
        var problems: [String] = []
        for id in ids {
            let sequence = changes[id] ?? []
            var states: [String: Set<String>] = [:]
            for (index, change) in sequence.enumerated() {
                let previous = index > 0 ? sequence[index - 1] : nil
                let describe = "\(id) #\(index) \(change.type) \(change.state ?? "") at \(change.occurredAt.map(Timestamps.rfc3339) ?? "?")"
                if change.isDeleted {
                    if previous?.isDeleted == true { problems.append("\(describe): deleted twice in a row") }
                    if let deletedAt = change.occurredAt {
                        for earlier in sequence[..<index] where !earlier.isDeleted {
                            guard let stamp = earlier.occurredAt else { continue }
                            let deletedAgainLater = (deletes[id] ?? []).contains { $0 > deletedAt }
                            if stamp > deletedAt || (stamp == deletedAt && !deletedAgainLater) {
                                problems.append("\(describe): deleted after the newer state \(earlier.state ?? "")")
                            }
                        }
                    }
                } else {
                    if change.type.hasSuffix(".created"), let previous, !previous.isDeleted {
                        problems.append("\(describe): created again without a delete before it")
                    }
                    if change.type.hasSuffix(".updated"), previous?.isDeleted ?? true {
                        problems.append("\(describe): updated without a live state before it")
                    }
                    if let state = change.state { states[state, default: []].insert(change.webhookID) }
                }
            }
            for (state, webhooks) in states where webhooks.count > 1 {
                problems.append("\(id): state \(state) delivered under \(webhooks.count) webhook-ids")
            }
        }
        return problems
    }
}

@Suite("Deletes in source order, real daemon (rule 6a)", .serialized)
struct DeleteOrderEndToEndTests {
    private func exercise(_ scenario: HostileScenario, _ script: DeleteRecreateScript, stateField: String,
                          start: Date) async throws {
        let daemon = try scenario.start()
        #expect(await scenario.waitUntil {
            let changes = scenario.changesByRecord(stateField: stateField)
            return script.ids.allSatisfy { changes[$0]?.isEmpty == false }
        }, "initial sync never arrived; stderr: \(daemon.stderr)")
        try await script.run(start: start)
        let settled = await scenario.waitUntil(.seconds(30)) {
            script.settled(scenario.changesByRecord(stateField: stateField))
        }
        let changes = scenario.changesByRecord(stateField: stateField)
        #expect(settled, "the subscriber's final picture is wrong: \(changes); expected \(script.expected)")
        // The rounds really reached the subscriber: deletes and re-creates of every record, not only a final state.
        for id in script.ids {
            let types = changes[id]?.map(\.type) ?? []
            #expect(types.contains { $0.hasSuffix(".deleted") } && types.filter { $0.hasSuffix(".created") }.count > 1,
                    "\(id): \(types)")
        }
        let problems = script.problems(changes)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        #expect(daemon.process.isRunning)
    }

    @Test("rule 6a: ServiceNow incidents deleted and 2 of 3 re-created with the same sys_id in the same second, 20 rounds")
    func servicenowDeleteRecreate() async throws {
        let servicenow = try ServiceNowEmulator()
        let start = Date(timeIntervalSinceNow: -60).roundedToSeconds
        let ids = ["a", "b", "c"].map { String(repeating: $0, count: 32) }
        let script = DeleteRecreateScript(
            ids: ids,
            create: { id, state, at in
                _ = try servicenow.insert("incident", ["short_description": state], at: at, sysID: id)
            },
            delete: { id, at in try servicenow.delete("incident", id, at: at) })
        for id in ids { try script.created(id, "initial \(id)", at: start) }
        let scenario = try HostileScenario(servicenow: servicenow)
        try await exercise(scenario, script, stateField: "short_description", start: start)
    }

    @Test("rule 6a: NetSuite customers deleted (DeletedRecord) and 2 of 3 re-created with the same id in the same second, 20 rounds")
    func netsuiteDeleteRecreate() async throws {
        let zone = try #require(TimeZone(identifier: "America/Los_Angeles"))
        let netsuite = try NetSuiteEmulator(options: .init(timeZone: zone))
        let start = Date(timeIntervalSinceNow: -60).roundedToSeconds
        let script = DeleteRecreateScript(
            ids: ["101", "102", "103"],
            create: { id, state, at in
                netsuite.upsert("customer", id: Int64(id) ?? 0, modifiedAt: at, fields: [("companyname", .text(state))])
            },
            delete: { id, at in netsuite.delete("customer", id: Int64(id) ?? 0, at: at) })
        for id in script.ids { try script.created(id, "initial \(id)", at: start) }
        let scenario = try HostileScenario(netsuite: netsuite)
        try await exercise(scenario, script, stateField: "companyname", start: start)
    }

    @Test("rule 6a: a record a before-query rule hid from one sweep gets deleted; the first sweep after the rule is lifted emits created")
    func sweepRepairsHiddenRecord() async throws {
        let servicenow = try ServiceNowEmulator()
        let start = Date(timeIntervalSinceNow: -300).roundedToSeconds
        let hidden = String(repeating: "b", count: 32)
        let others = ["a", "c"].map { String(repeating: $0, count: 32) }
        // The hidden record is the oldest, so no delta re-read (watermark − lookback) brings it back on its own.
        _ = try servicenow.insert("incident", ["short_description": "hidden later"], at: start, sysID: hidden)
        for (index, id) in others.enumerated() {
            _ = try servicenow.insert("incident", ["short_description": "visible \(index)"],
                                      at: start.addingTimeInterval(Double(60 + index)), sysID: id)
        }
        let scenario = try HostileScenario(servicenow: servicenow)
        let guardOff = #", "delete_guard": false"#
        var daemon = try scenario.start(objectExtra: guardOff)
        #expect(await scenario.waitUntil { ([hidden] + others).allSatisfy { scenario.delivered("hostile", "record.created", record: $0) } },
                "initial sync never arrived; stderr: \(daemon.stderr)")
        #expect(await scenario.stop() == 0)

        // A before-query business rule hides the record from every query during one sweep: the sweep deletes it.
        servicenow.setHiddenByQueryRule("incident", [hidden])
        let first = try scenario.cli(["reconcile", "--connection", "hostile", "--object", "incident"])
        #expect(first.0 == 0 && first.1.contains("2 ids listed, 1 deleted"), "\(first.1)")
        // The rule is lifted: the first sweep after it lists the record again, reads it and emits created.
        servicenow.setHiddenByQueryRule("incident", [hidden], false)
        let second = try scenario.cli(["reconcile", "--connection", "hostile", "--object", "incident"])
        #expect(second.0 == 0 && second.1.contains("3 ids listed, 0 deleted"), "\(second.1)")

        daemon = try scenario.start(objectExtra: guardOff)
        #expect(await scenario.waitUntil {
            scenario.changesByRecord(stateField: "short_description")[hidden]?.map(\.type)
                == ["record.created", "record.deleted", "record.created"]
        }, "\(scenario.changesByRecord(stateField: "short_description")[hidden] ?? []); stderr: \(daemon.stderr)")
        let sequence = scenario.changesByRecord(stateField: "short_description")[hidden] ?? []
        #expect(Set(sequence.map(\.webhookID)).count == 3)
        #expect(sequence.last?.state == "hidden later")
        await scenario.expectHealthyConnectionFlows("a sweep repair")
        let othersDeleted = scenario.deliveries.contains { $0.type.hasSuffix(".deleted") && others.contains($0.recordID) }
        #expect(!othersDeleted)
    }
}
