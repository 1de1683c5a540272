// Request budgets through a real provider (docs/DESIGN.md §2 rule 22): the GitHub adapter built by ProviderFactory
// for a connection with a `budget`, talking to the GitHub emulator over HTTP, counted in a real SQLite store by the
// daemon's StoreRequestBudget. A 304 to a conditional request is free; a spent day refuses before sending.
import Config
import Core
import Daemon
import Emulators
import Foundation
import HTTPClient
import Logging
import Providers
import Store
import TestSupport
import Testing

@Suite("request budgets through the GitHub emulator")
struct RequestBudgetEmulatorTests {
    @Test("rule 22: each request is counted once, a 304 is given back, a spent day refuses unsent and warns once")
    func gitHubRequestsAreCounted() async throws {
        let directory = try TemporaryDirectory(prefix: "budget")
        defer { directory.remove() }
        let emulator = try GitHubEmulator()
        let transport = try CurlHTTPClient()
        defer {
            emulator.stop()
            transport.shutdown()
        }
        let config = try ConfigLoader.load(data: Data("""
            {"connections": [{"id": "gh", "provider": "github", "base_url": "\(emulator.baseURL)",
                              "auth": {"type": "token", "token": {"env": "GH_TOKEN"}},
                              "budget": {"per_day": 3},
                              "objects": [{"name": "issues", "repository": "octo-org/hello"}]}]}
            """.utf8), environment: ConfigEnvironment(variables: ["GH_TOKEN": "ghp_emulatortoken"]))
        let connection = try #require(config.connections.first)
        let store = try StateStore(path: directory.file(StateStore.fileName))
        let sink = MemoryLogSink()
        let logger = Logger(level: .debug, sink: sink)
        // A fixed "now" for the budget's windows, so the UTC day cannot roll during the test.
        let now = Date(timeIntervalSince1970: 1_790_000_100)
        let budget = StoreRequestBudget(store: store, logger: logger, now: { now })
        let source = try #require(try ProviderFactory.makeSources(for: connection, transport: transport, logger: logger,
                                                                   budget: budget).first)
        let t0 = Date(timeIntervalSince1970: 1_790_000_000)
        emulator.createIssue(title: "one", at: t0)

        /// One fetch with a fresh tally, as one scheduler cycle would count it.
        func fetch(_ validator: String? = nil) async throws -> (page: DeltaPage, tally: RequestTally) {
            let tally = RequestTally()
            let page = try await RequestMeter.$current.withValue(tally) {
                try await source.fetchDelta(DeltaRequest(lowerBound: t0, after: nil, pageSize: 100,
                                                         ifNoneMatch: validator))
            }
            return (page, tally)
        }
        func used() throws -> Int { try store.requestUsage(connection: "gh", at: now).usedToday }

        let first = try await fetch()
        #expect(first.tally.charged == 1 && first.tally.free == 0)
        #expect(try used() == 1)
        let validator = try #require(first.page.validator)
        // Idle: 304 Not Modified, not charged by GitHub, so given back.
        let idle = try await fetch(validator)
        #expect(idle.page.notModified)
        #expect(idle.tally.charged == 0 && idle.tally.free == 1)
        #expect(try used() == 1)
        // Two charged requests spend the day's 3.
        _ = try await fetch()
        _ = try await fetch()
        #expect(try used() == 3)
        let sent = emulator.listRequests.count
        // The fourth is refused before it is sent: the emulator sees nothing, twice, and one warning is logged.
        for _ in 0..<2 {
            await #expect {
                _ = try await fetch()
            } throws: { error in
                guard case ProviderError.rateLimited(let wait, let message) = error else { return false }
                // Until the next UTC midnight: 1_790_035_200 − 1_790_000_100 seconds.
                return wait == .seconds(35_100) && message.contains("budget.per_day")
            }
        }
        #expect(emulator.listRequests.count == sent)
        #expect(try used() == 3)
        let warnings = sink.records.filter { $0.level == .warning && $0.message.contains("request budget spent") }
        #expect(warnings.count == 1)
    }
}
