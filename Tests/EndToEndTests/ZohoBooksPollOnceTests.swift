// The real `deltahook` binary (`poll-once --json`) against the Zoho Books emulator: a zoho_books connection with
// explicit base_url and accounts_url (the emulator plays one data center), OAuth secrets from environment
// variables, state in a temp directory. Proves the config, the factory wiring, the OAuth grant, the newest-first
// scan and the engine together (docs/DESIGN.md §2 rules 1, 2, 5).
import Core
import Emulators
import Foundation
import Testing
import TestSupport

@Suite("Zoho Books end to end (deltahook poll-once)", .serialized)
struct ZohoBooksPollOnceTests {
    @Test("Rules 1, 2, 5: poll-once emits created invoices, then only the update, with the OAuth secrets never printed")
    func pollOnceAgainstTheEmulator() async throws {
        let binary = try #require(BuiltBinary.deltahook(), "build first: swift build (needs .build/debug/deltahook)")
        let dir = try TestSupport.TemporaryDirectory(prefix: "deltahook-zoho-e2e")
        defer { dir.remove() }
        let emulator = try ZohoBooksEmulator()
        defer { emulator.stop() }
        let base = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 100_000).rounded(.down))
        let first = emulator.createInvoice(total: 120, at: base)
        emulator.createInvoice(total: 80, at: base + 1)
        let options = emulator.options
        let config = """
            {"state_directory": "\(dir.file("state"))", "log_level": "warning",
             "connections": [{"id": "books", "provider": "zoho_books", "organization_id": "\(options.organizationID)",
               "base_url": "\(emulator.baseURL)", "accounts_url": "\(emulator.accountsURL)",
               "auth": {"type": "oauth_refresh", "client_id": "\(options.clientID)",
                        "client_secret": {"env": "ZOHO_SECRET"}, "refresh_token": {"env": "ZOHO_REFRESH"}},
               "objects": [{"name": "invoices", "model": "invoice", "interval": "5m", "initial_sync": "emit"}]}],
             "subscribers": [{"id": "crm", "url": "https://hooks.example.com/x", "secrets": [{"env": "WHSEC"}],
                              "events": ["invoice.*"]}]}
            """
        let configPath = try dir.write("config.json", config)
        let environment = ["ZOHO_SECRET": options.clientSecret, "ZOHO_REFRESH": options.refreshToken,
                           "WHSEC": "whsec_" + Data((0..<32).map { UInt8($0) }).base64EncodedString()]
        func poll() async throws -> (status: Int32, events: [JSONValue], text: String) {
            let result = try await ProcessRunner.run(binary, ["--config", configPath, "poll-once", "--connection", "books",
                                                              "--json"], environment: environment, timeout: .seconds(60))
            let report = try JSONValue.parse(Array(result.stdout.utf8))
            let events = (report["reports"]?.arrayValue ?? []).flatMap { $0["events"]?.arrayValue ?? [] }
            return (result.status, events, result.stdout + result.stderr)
        }
        let initial = try await poll()
        #expect(initial.status == 0, "\(initial.text)")
        #expect(initial.events.count == 2)
        #expect(initial.events.allSatisfy { $0["type"]?.stringValue == "invoice.created" })
        #expect(!initial.text.contains(options.clientSecret) && !initial.text.contains(options.refreshToken))

        emulator.updateInvoice(first.id, at: base + 30) { $0["status"] = "sent" }
        let second = try await poll()
        #expect(second.status == 0, "\(second.text)")
        #expect(second.events.count == 1)
        #expect(second.events.first?["type"]?.stringValue == "invoice.updated")
        #expect(second.events.first?["data"]?["record"]?["status"]?.stringValue == "sent")
        #expect(emulator.grants >= 1)
    }
}
