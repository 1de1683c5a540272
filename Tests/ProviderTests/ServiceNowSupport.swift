// Shared fixtures for the ServiceNow adapter tests: an emulator, a real curl transport, and adapters wired
// to them. Everything is stopped when the body returns.
import Config
import Core
import Emulators
import Foundation
import HTTPClient
import Providers
import Synchronization
import Testing

/// A settable clock for token-expiry decisions (never wall time in assertions).
final class TestClock: Sendable {
    private let current: Mutex<Date>
    init(_ start: Date = Date()) { current = Mutex(start) }
    func now() -> Date { current.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

struct ServiceNowHarness {
    let emulator: ServiceNowEmulator
    let transport: CurlHTTPClient
    let client: ServiceNowClient

    func source(_ table: String, model: ServiceNowModel = .record, fields: [String]? = nil,
                ignoreFields: [String] = [], auditDeletes: Bool = true) -> ServiceNowSource {
        ServiceNowSource(client: client, table: table, model: model, fields: fields, ignoreFields: ignoreFields,
                         auditDeletes: auditDeletes)
    }
}

func secret(_ value: String) -> Secret { Secret(unredactedValue: value, reference: .environment("TEST_SECRET")) }

let basicAuth = AuthConfig.basic(username: "admin", password: secret("admin-password"))

func oauth(_ grant: OAuth2Grant, clientSecret: String = "client-secret") -> AuthConfig {
    .oauth2(grant: grant, clientID: "deltahook", clientSecret: secret(clientSecret), username: "admin",
            password: secret("admin-password"), refreshToken: secret("configured-refresh-token"))
}

/// Runs `body` with a fresh emulator and adapter client; both are always stopped.
func withServiceNow<T>(auth: AuthConfig = basicAuth, options: ServiceNowEmulator.Options = .init(),
                       clock: TestClock? = nil, connection: String = "acme-snow",
                       backoffBase: Duration = .seconds(2),
                       _ body: (ServiceNowHarness) async throws -> T) async throws -> T {
    let emulator = try ServiceNowEmulator(options: options)
    let transport: CurlHTTPClient
    do { transport = try CurlHTTPClient() } catch { emulator.stop(); throw error }
    defer {
        transport.shutdown()
        emulator.stop()
    }
    let http = ProviderHTTP(transport: transport, connection: connection, timeout: .seconds(10))
    let authenticator: ServiceNowAuthenticator
    if let clock {
        authenticator = try ServiceNowAuthenticator(auth: auth, baseURL: emulator.baseURL, http: http, now: { clock.now() })
    } else {
        authenticator = try ServiceNowAuthenticator(auth: auth, baseURL: emulator.baseURL, http: http)
    }
    let client = ServiceNowClient(http: http, baseURL: emulator.baseURL, authenticator: authenticator,
                                  backoff: RateLimitBackoff(base: backoffBase, cap: .seconds(60)))
    let harness = ServiceNowHarness(emulator: emulator, transport: transport, client: client)
    let result = try await body(harness)
    #expect(emulator.rejectedRequests.isEmpty, "the emulator refused requests it does not model")
    return result
}

/// A fixed UTC instant: `2026-11-29 06:00:00` plus `seconds`.
func at(_ seconds: Int = 0) -> Date { Date(timeIntervalSince1970: 1_795_932_000 + Double(seconds)) }

/// Walks a whole delta scan the way the engine does: follow `next` until it is nil. Bounded.
func scanAll(_ source: ServiceNowSource, lowerBound: Date? = nil, pageSize: Int,
             between: ((Int) throws -> Void)? = nil) async throws -> (records: [SourceRecord], pages: [DeltaPage]) {
    var records: [SourceRecord] = []
    var pages: [DeltaPage] = []
    var after: ScanPosition?
    for index in 0..<10_000 {
        let page = try await source.fetchDelta(DeltaRequest(lowerBound: lowerBound, after: after, pageSize: pageSize))
        pages.append(page)
        records += page.records
        guard let next = page.next else { return (records, pages) }
        after = next
        try between?(index)
    }
    Issue.record("scan did not end within 10000 pages")
    return (records, pages)
}

/// Expects `operation` to throw a ProviderError and returns it.
func expectProviderError<T>(_ operation: () async throws -> T) async -> ProviderError? {
    do {
        _ = try await operation()
        Issue.record("expected a ProviderError, got a result")
        return nil
    } catch let error as ProviderError {
        return error
    } catch {
        Issue.record("expected a ProviderError, got \(error)")
        return nil
    }
}

extension JSONValue {
    /// Array element access for assertions.
    subscript(index: Int) -> JSONValue? {
        guard case .array(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }
}
