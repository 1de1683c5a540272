// docs/DESIGN.md §4: "Standard Webhooks is the contract; its reference libraries must verify us." These tests hand
// real deliveries — captured by the receiver exactly as they arrived — to the spec's own Python library
// (`standardwebhooks` on PyPI, installed by Scripts/test), not to our verifier.
import Core
import Crypto
import Delivery
import Emulators
import Foundation
import Testing

/// Runs `Webhook(secret).verify(body, headers)` from the reference library; returns its error text on failure.
func referenceVerify(body: [UInt8], headers: [(name: String, value: String)], secret: String) throws -> String? {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-stdwh-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let bodyFile = dir.appendingPathComponent("body")
    try Data(body).write(to: bodyFile)
    var headerObject = JSONObject()
    for (name, value) in headers { headerObject[name.lowercased()] = .string(value) }
    let headersFile = dir.appendingPathComponent("headers.json")
    try Data(JSONValue.object(headerObject).serializedBytes()).write(to: headersFile)
    let script = """
        import json, sys
        from standardwebhooks.webhooks import Webhook
        body = open(sys.argv[1], "rb").read()
        headers = json.load(open(sys.argv[2]))
        Webhook(sys.argv[3]).verify(body, headers)
        print("verified")
        """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script, bodyFile.path, headersFile.path, secret]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    process.waitUntilExit()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return process.terminationStatus == 0 && text.contains("verified") ? nil : text
}

@Suite("Standard Webhooks reference library")
struct ReferenceVerifierTests {
    @Test("the reference Python library verifies every delivery, with either rotation secret alone (docs/DESIGN.md §4)")
    func referenceLibraryVerifiesDeliveries() async throws {
        let old = try StandardWebhooks.generateSecret()
        let new = try StandardWebhooks.generateSecret()
        var setup = Harness.Setup()
        setup.subscriberSecrets = [new, old]
        setup.receiverSecrets = [new]
        setup.includeRaw = true
        try await withHarness(setup) { h in
            try h.enqueue([sampleEvent("ref", 1), sampleEvent("ref", 2), sampleEvent("other", 1)])
            #expect(await h.receiver.waitUntil(timeout: .seconds(30)) { $0.count == 3 })  // a bound, not a speed check
            for delivery in h.receiver.received {
                for secret in [old, new] {
                    let failure = try referenceVerify(body: delivery.body, headers: delivery.headers, secret: secret)
                    #expect(failure == nil, "reference library rejected \(delivery.webhookID ?? "?"): \(failure ?? "")")
                }
                // And it is not a verifier that accepts anything: a tampered body fails.
                var tampered = delivery.body
                tampered.append(UInt8(ascii: " "))
                #expect(try referenceVerify(body: tampered, headers: delivery.headers, secret: new) != nil)
            }
        }
    }
}
