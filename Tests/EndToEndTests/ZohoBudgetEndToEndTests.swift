// Issue 15's case through the real binary: a Zoho Books connection (1,000 requests a day on the free plan) with a
// `budget`, polled by `deltahook poll-once` against the Zoho Books emulator. Every request the provider served —
// the OAuth grant included — is counted in the store, and a spent budget refuses the next poll before anything is
// sent (docs/DESIGN.md §2 rule 22).
import Core
import Emulators
import Foundation
import Store
import Testing
import TestSupport

@Suite("Zoho Books with a request budget (deltahook poll-once)", .serialized)
struct ZohoBudgetEndToEndTests {
    @Test("rule 22: every Zoho request is counted once in the store; a spent budget sends nothing and says why")
    func zohoRequestsAreCounted() async throws {
        let binary = try #require(BuiltBinary.deltahook(), "build first: swift build (needs .build/debug/deltahook)")
        let dir = try TestSupport.TemporaryDirectory(prefix: "deltahook-zoho-budget")
        defer { dir.remove() }
        let emulator = try ZohoBooksEmulator()
        defer { emulator.stop() }
        let base = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 100_000).rounded(.down))
        emulator.createInvoice(total: 120, at: base)
        emulator.createInvoice(total: 80, at: base + 1)
        let options = emulator.options
        func writeConfig(perDay: Int) throws -> String {
            try dir.write("config.json", """
                {"state_directory": "\(dir.file("state"))", "log_level": "warning",
                 "connections": [{"id": "books", "provider": "zoho_books", "organization_id": "\(options.organizationID)",
                   "base_url": "\(emulator.baseURL)", "accounts_url": "\(emulator.accountsURL)",
                   "auth": {"type": "oauth_refresh", "client_id": "\(options.clientID)",
                            "client_secret": {"env": "ZOHO_SECRET"}, "refresh_token": {"env": "ZOHO_REFRESH"}},
                   "budget": {"per_day": \(perDay)},
                   "objects": [{"name": "invoices", "model": "invoice", "interval": "1m", "initial_sync": "emit"}]}],
                 "subscribers": []}
                """)
        }
        let environment = ["ZOHO_SECRET": options.clientSecret, "ZOHO_REFRESH": options.refreshToken]
        func poll(_ configPath: String) async throws -> (status: Int32, text: String) {
            let result = try await ProcessRunner.run(binary, ["--config", configPath, "poll-once", "--connection", "books",
                                                              "--json"], environment: environment, timeout: .seconds(60))
            return (result.status, result.stdout + result.stderr)
        }
        func usedToday() throws -> Int {
            let store = try StateStore(path: dir.file("state") + "/" + StateStore.fileName)
            return try store.requestUsage(connection: "books", at: Date()).usedToday
        }

        let first = try await poll(try writeConfig(perDay: 1000))
        #expect(first.status == 0, "\(first.text)")
        let served = emulator.requests.count
        #expect(served >= 2, "an OAuth grant and at least one page")
        #expect(try usedToday() == served, "one count per request the provider served")

        // The day's budget is exactly what was used: the next poll is refused before it sends anything.
        let spent = try await poll(try writeConfig(perDay: served))
        #expect(spent.status != 0, "\(spent.text)")
        #expect(spent.text.contains("budget.per_day"), "\(spent.text)")
        #expect(emulator.requests.count == served)
        #expect(try usedToday() == served)
    }
}
