// The Zoho Books adapter against the Zoho Books emulator over real HTTP (libcurl ↔ loopback), alone and under the
// real engine (PollRunner + StateStore). Each test names the docs/DESIGN.md §2 rule it proves.
import Config
import Core
import Emulators
import Engine
import Foundation
import HTTPClient
import Logging
@testable import Providers
import Store
import Synchronization
import Testing
import TestSupport

private let z0 = Date(timeIntervalSince1970: 1_790_000_000)

/// An emulator, a curl client, an authenticator and a client; always torn down.
struct ZohoFixture {
    let emulator: ZohoBooksEmulator
    let transport: CurlHTTPClient
    let client: ZohoBooksClient
    let sink = MemoryLogSink()

    init(options: ZohoBooksEmulator.Options = .init(), clock: EmulatorClock = EmulatorClock(),
         limits: ConnectionLimits = .defaults, authState: (any AuthStateStore)? = nil,
         refreshToken: String? = nil, organizationID: String? = nil) throws {
        emulator = try ZohoBooksEmulator(options: options, clock: clock)
        transport = try CurlHTTPClient()
        client = try Self.client(emulator: emulator, transport: transport, clock: clock, limits: limits,
                                 authState: authState, refreshToken: refreshToken ?? options.refreshToken,
                                 organizationID: organizationID ?? options.organizationID,
                                 logger: Logger(level: .debug, sink: sink))
    }

    static func client(emulator: ZohoBooksEmulator, transport: any HTTPTransport, clock: EmulatorClock,
                       limits: ConnectionLimits = .defaults, authState: (any AuthStateStore)? = nil,
                       refreshToken: String, organizationID: String, logger: Logger? = nil) throws -> ZohoBooksClient {
        let origin = try #require(ProviderOrigin(emulator.accountsURL))
        let http = ProviderHTTP(transport: transport, connection: "zoho", limits: limits, allowedOrigins: [origin],
                                logger: logger)
        let auth = ZohoBooksAuthenticator(clientID: emulator.options.clientID,
                                          clientSecret: secret(emulator.options.clientSecret),
                                          refreshToken: secret(refreshToken),
                                          tokenURL: emulator.accountsURL + "/oauth/v2/token", http: http,
                                          now: { clock.now() }, authState: authState)
        return ZohoBooksClient(http: http, baseURL: emulator.baseURL, organizationID: organizationID, authenticator: auth)
    }

    func invoices() throws -> ZohoBooksSource {
        try ZohoBooksSource(client: client, object: "invoices", endpoint: "invoices", recordsKey: "invoices",
                            idField: "invoice_id", model: "invoice")
    }

    func customers() throws -> ZohoBooksSource {
        try ZohoBooksSource(client: client, object: "customers", endpoint: "contacts", recordsKey: "contacts",
                            idField: "contact_id", model: "customer", contactType: "customer")
    }

    func stop() {
        emulator.stop()
        transport.shutdown()
    }

    /// A whole scan from `lowerBound`, page by page, as the engine asks it.
    static func scan(_ source: ZohoBooksSource, from lowerBound: Date?, pageSize: Int = 200, maxPages: Int = 50)
        async throws -> (records: [SourceRecord], rejected: [RejectedRecord], pages: Int)
    {
        var records: [SourceRecord] = []
        var rejected: [RejectedRecord] = []
        var after: ScanPosition?
        var pages = 0
        repeat {
            let page = try await source.fetchDelta(DeltaRequest(lowerBound: lowerBound, after: after, pageSize: pageSize))
            records += page.records
            rejected += page.rejected
            pages += 1
            after = page.next
        } while after != nil && pages < maxPages
        return (records, rejected, pages)
    }
}

/// The real engine over one Zoho source and a temporary store.
final class ZohoEngine: Sendable {
    let directory: TemporaryDirectory
    let store: StateStore

    init() throws {
        directory = try TemporaryDirectory(prefix: "deltahook-zoho")
        store = try StateStore(path: directory.file(StateStore.fileName))
    }

    deinit { directory.remove() }

    func runner(_ source: ZohoBooksSource, pageSize: Int = 200, reconcile: Bool = false) -> PollRunner {
        let plan = ObjectPlan(descriptor: source.descriptor, interval: .milliseconds(20), lookback: .seconds(1),
                              reconcileEvery: reconcile ? .milliseconds(1) : nil, initialSync: .emit,
                              pageSize: pageSize, useDeleteFeed: false)
        return PollRunner(target: PollTarget(plan: plan, source: source), store: store, router: { _ in ["crm"] },
                          logger: Logger(level: .warning, sink: MemoryLogSink()))
    }

    func events(_ object: String) throws -> [ChangeEvent] {
        try store.events(EventQuery(connection: "zoho", object: object, limit: 100_000)).map(\.event)
    }
}

/// Auth state kept in memory (the daemon's is the store).
final class MemoryAuthState: AuthStateStore {
    private let values = Mutex<[String: String]>([:])
    func loadAuthState(connection: String, key: String) async throws -> String? {
        values.withLock { $0[connection + "/" + key] }
    }
    func saveAuthState(connection: String, key: String, value: String) async throws {
        values.withLock { $0[connection + "/" + key] = value }
    }
}

@Suite("Zoho Books adapter against the emulator", .serialized)
struct ZohoBooksSourceTests {
    @Test("Rules 5, 6: created, updated and deleted invoices and contacts become exactly the expected events")
    func createUpdateDelete() async throws {
        let f = try ZohoFixture()
        defer { f.stop() }
        let engine = try ZohoEngine()
        let a = f.emulator.createInvoice(total: 100, at: z0)
        let b = f.emulator.createInvoice(total: 200, at: z0 + 1)
        let c = f.emulator.createInvoice(total: 300, at: z0 + 2)
        let alice = f.emulator.createContact(name: "Alice", at: z0)
        f.emulator.createContact(name: "Vendor Co", type: "vendor", at: z0 + 1)
        let invoices = engine.runner(try f.invoices(), reconcile: true)
        let customers = engine.runner(try f.customers(), reconcile: true)
        _ = try await invoices.runCycle()
        _ = try await customers.runCycle()
        #expect(try engine.events("invoices").map(\.kind) == [.created, .created, .created])
        #expect(Set(try engine.events("invoices").map(\.recordID)) == [a.id, b.id, c.id])
        let created = try engine.events("customers")
        #expect(created.map(\.recordID) == [alice.id], "vendors are not customers")
        #expect(created.first?.record["name"] == "Alice")

        f.emulator.updateInvoice(a.id, at: z0 + 10) { $0["status"] = "sent" }
        f.emulator.deleteInvoice(b.id)
        f.emulator.updateContact(alice.id, at: z0 + 10) { $0["email"] = "alice@example.com" }
        _ = try await invoices.runCycle()
        _ = try await customers.runCycle()
        let firstIDs = Set(try engine.events("invoices").filter { $0.kind == .created }.map(\.id))
        let later = try engine.events("invoices").filter { !firstIDs.contains($0.id) }
        #expect(later.count == 2)
        #expect(later.contains { $0.kind == .updated && $0.recordID == a.id && $0.record["status"] == "sent" })
        #expect(later.contains { $0.kind == .deleted && $0.recordID == b.id })
        let customerUpdates = try engine.events("customers").filter { $0.kind != .created }
        #expect(customerUpdates.map(\.kind) == [.updated])
        #expect(customerUpdates.first?.record["email"] == "alice@example.com")
        // A quiet cycle emits nothing: the inclusive bound re-reads the boundary, the hash suppresses it (rule 2).
        _ = try await invoices.runCycle()
        #expect(try engine.events("invoices").count == 5)
        #expect(f.emulator.listRequests.allSatisfy { $0.query["organization_id"] == "10234695" })
        #expect(f.emulator.listRequests.allSatisfy { $0.authorization?.hasPrefix("Zoho-oauthtoken ") == true })
    }

    @Test("Rule 3: 300 invoices modified in the same second over two pages are each captured exactly once")
    func sameSecondAcrossPages() async throws {
        let f = try ZohoFixture()
        defer { f.stop() }
        let engine = try ZohoEngine()
        let runner = engine.runner(try f.invoices())
        let all = f.emulator.createInvoices(count: 300, at: z0)
        _ = try await runner.runCycle()
        let events = try engine.events("invoices")
        #expect(events.count == 300)
        #expect(Set(events.map(\.recordID)) == Set(all.map(\.id)))
        #expect(f.emulator.listRequests.count >= 2)
        // All touched again in one later second: 300 updates, none twice, none missed.
        for record in all { f.emulator.updateInvoice(record.id, at: z0 + 5) { $0["status"] = "sent" } }
        _ = try await runner.runCycle()
        let updates = try engine.events("invoices").filter { $0.kind == .updated }
        #expect(updates.count == 300)
        #expect(Set(updates.map(\.recordID)).count == 300)
    }

    @Test("Rules 2, 3: updates landing mid-scan (a record jumps to page 1 while page 2 is read) are caught this or next cycle")
    func midScanUpdates() async throws {
        let f = try ZohoFixture()
        defer { f.stop() }
        let engine = try ZohoEngine()
        let runner = engine.runner(try f.invoices())
        let records = (0..<400).map { f.emulator.createInvoice(total: Double($0), at: z0 + Double($0)) }
        _ = try await runner.runCycle()
        // 300 touched at z0+500: the next scan reads two pages newest first.
        for record in records.suffix(300) { f.emulator.updateInvoice(record.id, at: z0 + 500) { $0["status"] = "sent" } }
        let alreadyRead = records[399]           // on page 1, read before the hook fires
        let old = records[10]                     // below the scan's bound, never part of this scan
        let departed = records[390..<395].map(\.id) // read on page 1, then deleted: later rows shift up
        f.emulator.queueFaults([.none, .hook({ emulator in
            emulator.updateInvoice(alreadyRead.id, at: z0 + 600) { $0["status"] = "paid" }
            emulator.updateInvoice(old.id, at: z0 + 600) { $0["status"] = "void" }
            for id in departed { emulator.deleteInvoice(id) }
        })])
        _ = try await runner.runCycle()
        let second = try engine.events("invoices").filter { $0.kind == .updated }
        #expect(Set(second.map(\.recordID)).count == 300, "departures ahead of the position skip no row (window overlap)")
        let secondIDs = Set(second.map(\.id))
        _ = try await runner.runCycle()
        let third = try engine.events("invoices").filter { !secondIDs.contains($0.id) && $0.kind == .updated }
        #expect(third.contains { $0.recordID == alreadyRead.id && $0.record["status"] == "paid" })
        #expect(third.contains { $0.recordID == old.id && $0.record["status"] == "void" })
        let all = try engine.events("invoices").filter { $0.kind == .updated }
        #expect(Set(all.map(\.id)).count == all.count, "no event twice")
    }

    @Test("Rule 11: a token that expires mid-scan is refreshed once and the scan goes on; refresh ~5 min early")
    func tokenExpiryMidScan() async throws {
        let clock = EmulatorClock(frozenAt: z0 + 10_000)
        let f = try ZohoFixture(clock: clock)
        defer { f.stop() }
        f.emulator.createInvoices(count: 450, at: z0)
        f.emulator.queueFaults([.none, .expireTokens])
        let scan = try await ZohoFixture.scan(f.invoices(), from: nil)
        #expect(Set(scan.records.map(\.id)).count == 450)
        #expect(f.emulator.grants == 2)
        #expect(await f.client.authenticator.tokenRequests == 2)
        #expect(f.emulator.listRequests.filter { $0.status == 401 }.count == 1)
        // 56 minutes later the token is renewed before it is used, without a 401.
        clock.advance(by: 56 * 60)
        _ = try await f.invoices().fetchDelta(DeltaRequest(lowerBound: z0 + 1, after: nil, pageSize: 10))
        #expect(f.emulator.grants == 3)
        #expect(f.emulator.listRequests.filter { $0.status == 401 }.count == 1)
    }

    @Test("Rules 9, 12: 429 (per minute, per day) becomes rateLimited with a wait bounded by max_provider_wait")
    func rateLimits() async throws {
        let limits = ConnectionLimits(maxProviderWait: .seconds(30), maxClockSkew: .seconds(300), maxResponseBytes: 1 << 20)
        let f = try ZohoFixture(limits: limits)
        defer { f.stop() }
        f.emulator.createInvoice(at: z0)
        f.emulator.exhaustMinute()
        let request = DeltaRequest(lowerBound: nil, after: nil, pageSize: 10)
        guard case .rateLimited(let wait, let message)? = await expectProviderError({ try await f.invoices().fetchDelta(request) })
        else { Issue.record("expected rateLimited"); return }
        #expect(wait == .seconds(30), "60 s per-minute window, clamped to max_provider_wait")
        #expect(message.contains("too many requests"))
        // A fresh emulator minute but a spent day: still 429 → rateLimited.
        let g = try ZohoFixture()
        defer { g.stop() }
        g.emulator.exhaustDay()
        guard case .rateLimited(let dayWait, _)? = await expectProviderError({ try await g.invoices().fetchDelta(request) })
        else { Issue.record("expected rateLimited"); return }
        #expect(dayWait > .zero && dayWait <= .seconds(3600))
    }

    @Test("Rules 12, 15, 16: hostile ids and times are rejected per record; the rest flows and the scan ends")
    func hostileValues() async throws {
        let f = try ZohoFixture()
        defer { f.stop() }
        let good = f.emulator.createInvoice(at: z0 + 5)
        let badID = f.emulator.createInvoice(at: z0 + 4)
        let future = f.emulator.createInvoice(at: z0 + 3)
        let notJSON = f.emulator.createInvoice(at: z0 + 2)
        let noTime = f.emulator.createInvoice(at: z0 + 1)
        f.emulator.poison("invoices", badID.id, rawJSON: #"{"invoice_id":"1&organization_id=666","last_modified_time":"2026-09-21T10:00:00+0530"}"#)
        f.emulator.poison("invoices", future.id, rawJSON: #"{"invoice_id":"\#(future.id)","last_modified_time":"10000-01-01T00:00:00+0000"}"#)
        f.emulator.poison("invoices", notJSON.id, rawJSON: #"{"invoice_id":1e999,"last_modified_time":"2026-09-21T10:00:00+0530"}"#)
        f.emulator.poison("invoices", noTime.id, rawJSON: #"{"invoice_id":"\#(noTime.id)","last_modified_time":null}"#)
        let scan = try await ZohoFixture.scan(f.invoices(), from: nil, pageSize: 2)
        #expect(scan.records.map(\.id) == [good.id])
        #expect(Set(scan.rejected.map(\.key)).count == 4)
        #expect(scan.rejected.contains { $0.reason.contains("is not a Zoho id") })
        #expect(scan.rejected.contains { $0.reason.contains("years 1970–9999") })
        #expect(scan.rejected.contains { $0.reason.contains("not valid JSON on its own") })
    }

    @Test("Rule 7: Zoho's offset form is parsed into the UTC instant; other forms and absurd offsets are refused")
    func timeParsing() {
        #expect(ZohoBooksTime.parse("2026-11-29T10:15:30+0530") == Timestamps.parseRFC3339("2026-11-29T04:45:30Z"))
        #expect(ZohoBooksTime.parse("2026-11-29T10:15:30-0800") == Timestamps.parseRFC3339("2026-11-29T18:15:30Z"))
        #expect(ZohoBooksTime.parse("2026-11-29T10:15:30+05:30") == Timestamps.parseRFC3339("2026-11-29T04:45:30Z"))
        #expect(ZohoBooksTime.parse("2026-11-29T10:15:30+9999") == nil)
        #expect(ZohoBooksTime.parse("1969-12-31T23:59:59+0000") == nil)
        #expect(ZohoBooksTime.parse("29/11/2026 10:15") == nil)
        #expect(ZohoBooksTime.parse(String(repeating: "9", count: 10_000)) == nil)
        #expect(ZohoBooksIDs.isValid("460000000012345"))
        #expect(!ZohoBooksIDs.isValid("0123") && !ZohoBooksIDs.isValid("-1") && !ZohoBooksIDs.isValid("1 OR 1"))
        #expect(!ZohoBooksIDs.isValid(String(repeating: "1", count: 31)))
    }

    @Test("Rule 11: a refresh token works only at its own data center; a rotated one is kept and used after restart")
    func dataCentersAndRotation() async throws {
        var eu = ZohoBooksEmulator.Options()
        eu.dataCenter = "eu"
        eu.refreshToken = "1000.eu.refresh"
        eu.rotateRefreshTokens = true
        let euEmulator = try ZohoBooksEmulator(options: eu)
        defer { euEmulator.stop() }
        // The com instance does not know the eu refresh token.
        let f = try ZohoFixture(refreshToken: "1000.eu.refresh")
        defer { f.stop() }
        let request = DeltaRequest(lowerBound: nil, after: nil, pageSize: 10)
        guard case .authentication(let message, let hint)? = await expectProviderError({ try await f.invoices().fetchDelta(request) })
        else { Issue.record("expected an authentication error"); return }
        #expect(message.contains("invalid_code"))
        #expect(hint.contains("data_center"))
        // Rotation at the eu instance: the new refresh token is persisted and used by a "restarted" client.
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let state = MemoryAuthState()
        let clock = EmulatorClock()
        euEmulator.createInvoice(at: z0)
        let first = try ZohoFixture.client(emulator: euEmulator, transport: transport, clock: clock, authState: state,
                                           refreshToken: eu.refreshToken, organizationID: eu.organizationID)
        func source(_ client: ZohoBooksClient) throws -> ZohoBooksSource {
            try ZohoBooksSource(client: client, object: "invoices", endpoint: "invoices", recordsKey: "invoices",
                                idField: "invoice_id", model: "record")
        }
        #expect(try await source(first).fetchDelta(request).records.count == 1)
        let stored = try #require(try await state.loadAuthState(connection: "zoho", key: ZohoBooksAuthenticator.refreshTokenKey))
        #expect(stored.contains("\"sealed\""))
        let restarted = try ZohoFixture.client(emulator: euEmulator, transport: transport, clock: clock, authState: state,
                                               refreshToken: eu.refreshToken, organizationID: eu.organizationID)
        #expect(try await source(restarted).fetchDelta(request).records.count == 1)
        let forgetful = try ZohoFixture.client(emulator: euEmulator, transport: transport, clock: clock,
                                               refreshToken: eu.refreshToken, organizationID: eu.organizationID)
        await #expect(throws: ProviderError.self) { try await source(forgetful).fetchDelta(request) }
    }

    @Test("The emulator requires organization_id; a wrong one is refused, the adapter names the hint")
    func organizationRequired() async throws {
        let f = try ZohoFixture(organizationID: "999")
        defer { f.stop() }
        let request = DeltaRequest(lowerBound: nil, after: nil, pageSize: 10)
        #expect(await expectProviderError({ try await f.invoices().fetchDelta(request) }) != nil)
        let transport = try CurlHTTPClient()
        defer { transport.shutdown() }
        let bare = try await transport.send(HTTPRequest(url: f.emulator.baseURL + "/invoices", headers: []))
        #expect(bare.status == 401)
    }
}
