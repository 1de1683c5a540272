// `deltahook redeliver` and `deltahook replay` against the real daemon and receiver: the subscriber gets the
// same picture again — the original webhook-ids and, byte for byte, the bodies of the first delivery (issue 11
// item 5; README "replay"). Only the signature headers differ (each attempt is signed with its own timestamp).
import Core
import Emulators
import Foundation
import Testing

@Suite("Replay and redeliver, real daemon", .serialized)
struct ReplayEndToEndTests {
    @Test("redeliver and replay resend the original webhook-ids with bodies byte-identical to the first delivery")
    func sameBytesOnReplay() async throws {
        let rest = try RestEmulator(pagination: .page)
        for id in 1...3 {
            rest.upsert(RestEmulator.Order(id: Int64(id), status: "new",
                                           updatedAt: Date(timeIntervalSinceNow: -300 + Double(id)).roundedToSeconds))
        }
        let scenario = try HostileScenario(rest: rest)
        let daemon = try scenario.start()
        func hostile() -> [ReceivedWebhook] {
            scenario.receiver.accepted.filter { webhook in
                (try? JSONValue.parse(webhook.body))?["data"]?["connection"]?.stringValue == "hostile"
            }
        }
        #expect(await scenario.waitUntil { hostile().count == 3 }, "first deliveries; stderr: \(daemon.stderr)")
        let first = hostile()
        let bodies = Dictionary(first.compactMap { w in w.webhookID.map { ($0, w.body) } }, uniquingKeysWith: { a, _ in a })
        #expect(bodies.count == 3, "three distinct webhook-ids")

        // redeliver: one event, same id, same bytes.
        let target = try #require(first.first?.webhookID)
        let redeliver = try scenario.cli(["redeliver", target])
        #expect(redeliver.0 == 0, "\(redeliver.1)")
        #expect(await scenario.waitUntil { hostile().count == 4 }, "redelivery; stderr: \(daemon.stderr)")
        let again = try #require(hostile().last)
        #expect(again.webhookID == target)
        #expect(again.body == bodies[target], "redelivered body differs from the first delivery")

        // replay: every event of the window again, same ids, same bytes.
        let replay = try scenario.cli(["replay", "--subscriber", "crm", "--since", "1h"])
        #expect(replay.0 == 0, "\(replay.1)")
        #expect(await scenario.waitUntil { hostile().count == 7 }, "replay; stderr: \(daemon.stderr)")
        let replayed = hostile().dropFirst(4)
        #expect(Set(replayed.compactMap(\.webhookID)) == Set(bodies.keys))
        for webhook in replayed {
            let id = try #require(webhook.webhookID)
            #expect(webhook.body == bodies[id], "replayed body of \(id) differs from the first delivery")
        }
        #expect(await scenario.stop() == 0)
    }
}
