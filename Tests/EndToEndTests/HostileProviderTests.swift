// The real `deltahook run` binary against a hostile provider and a healthy one at the same time
// (docs/DESIGN.md §2 rules 12–18). In every scenario: the daemon keeps running, the healthy connection keeps
// delivering, and no live record gets a `deleted` event. Each test names the rule it proves.
import Core
import Emulators
import Foundation
import Glibc
import Store
import TestSupport
import Testing

private let webhookSecret = "whsec_" + Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 11 &+ 5) }).base64EncodedString()
private let githubToken = "ghp_emulatortoken"

/// A daemon polling two GitHub repositories, one served by a hostile emulator and one by a healthy one, and
/// delivering to one receiver.
final class HostileScenario {
    let directory: ScratchDirectory
    let hostile: GitHubEmulator
    let healthy: GitHubEmulator
    let receiver: ReceiverEmulator
    /// The hostile side when it is a generic REST API, ServiceNow or NetSuite instead of GitHub.
    let rest: RestEmulator?
    let servicenow: ServiceNowEmulator?
    let netsuite: NetSuiteEmulator?
    var configPath: String { directory.path + "/config.json" }
    var stateDirectory: String { directory.path + "/state" }
    private(set) var daemon: DaemonProcess?

    init(hostile: GitHubEmulator? = nil, rest: RestEmulator? = nil, servicenow: ServiceNowEmulator? = nil,
         netsuite: NetSuiteEmulator? = nil) throws {
        directory = try ScratchDirectory("hostile")
        self.hostile = try hostile ?? GitHubEmulator()
        self.rest = rest
        self.servicenow = servicenow
        self.netsuite = netsuite
        healthy = try GitHubEmulator()
        receiver = try ReceiverEmulator(secrets: [webhookSecret])
    }

    deinit {
        if let daemon, daemon.process.isRunning {
            daemon.signal(SIGTERM)
            _ = daemon.waitForExit(timeout: .seconds(10))
        }
        hostile.stop()
        rest?.stop()
        servicenow?.stop()
        netsuite?.stop()
        healthy.stop()
        receiver.stop()
    }

    /// Writes the config (`hostileExtra` goes into the hostile connection, `objectExtra` into its object,
    /// `subscriberExtra` into the subscriber) and starts the daemon.
    @discardableResult
    func start(hostileExtra: String = "", objectExtra: String = "", subscriberExtra: String = "") throws
        -> DaemonProcess
    {
        func connection(_ id: String, _ emulator: GitHubEmulator, extra: String, objectExtra: String) -> String {
            """
            {"id": "\(id)", "provider": "github", "base_url": "\(emulator.baseURL)",\(extra)
             "auth": {"type": "token", "token": {"env": "E2E_GITHUB_TOKEN"}},
             "objects": [{"name": "issues", "repository": "octo-org/hello", "model": "ticket",
                          "interval": "1s", "initial_sync": "emit"\(objectExtra)}]}
            """
        }
        var hostileConnection = connection("hostile", hostile, extra: hostileExtra, objectExtra: objectExtra)
        if let rest {
            hostileConnection = """
                {"id": "hostile", "provider": "rest", "base_url": "\(rest.baseURL)",\(hostileExtra)
                 "auth": {"type": "header", "name": "Authorization", "value": {"env": "E2E_REST_TOKEN"}},
                 "objects": [{"name": "orders", "interval": "1s", "initial_sync": "emit"\(objectExtra.contains("page_size") ? "" : #", "page_size": 2"#)\(objectExtra),
                              "request": {"path": "\(rest.pathTemplate)", "records": "data", "id_field": "id",
                                          "cursor_field": "updated_at", "pagination": \(rest.paginationConfig)}}]}
                """
        }
        if let servicenow {
            hostileConnection = """
                {"id": "hostile", "provider": "servicenow", "base_url": "\(servicenow.baseURL)",\(hostileExtra)
                 "auth": {"type": "basic", "username": "admin", "password": {"env": "E2E_SNOW_PASSWORD"}},
                 "objects": [{"name": "incident", "interval": "1s", "initial_sync": "emit"\(objectExtra)}]}
                """
        }
        if let netsuite {
            hostileConnection = """
                {"id": "hostile", "provider": "netsuite", "base_url": "\(netsuite.baseURL)", "account_id": "1234567_SB1",
                 "time_zone": "America/Los_Angeles",\(hostileExtra)
                 "auth": {"type": "tba", "consumer_key": {"env": "E2E_NS_CK"}, "consumer_secret": {"env": "E2E_NS_CS"},
                          "token_id": {"env": "E2E_NS_TID"}, "token_secret": {"env": "E2E_NS_TS"}},
                 "objects": [{"name": "customer", "interval": "1s", "initial_sync": "emit"\(objectExtra)}]}
                """
        }
        let config = """
            {"state_directory": "\(stateDirectory)", "log_level": "info", "shutdown_timeout": "5s",
             "connections": [\(hostileConnection),
                             \(connection("healthy", healthy, extra: "", objectExtra: ""))],
             "subscribers": [{"id": "crm", "url": "\(receiver.url)", "secrets": [{"env": "E2E_WEBHOOK_SECRET"}],
                              "events": ["*"], "allow_insecure_http": true, "allow_private_network": true\(subscriberExtra)}]}
            """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let process = try DaemonProcess(arguments: ["run", "--config", configPath], environment: environment,
                                        directory: directory.path)
        daemon = process
        return process
    }

    /// Every secret the config names, as the emulators expect them.
    var environment: [String: String] {
        ["E2E_GITHUB_TOKEN": githubToken, "E2E_WEBHOOK_SECRET": webhookSecret, "E2E_REST_TOKEN": rest?.token ?? "",
         "E2E_SNOW_PASSWORD": "admin-password", "E2E_NS_CK": "ck-emulator", "E2E_NS_CS": "cs-emulator",
         "E2E_NS_TID": "token-emulator", "E2E_NS_TS": "ts-emulator"]
    }

    /// Accepted deliveries as (connection, type, record_id).
    var deliveries: [(connection: String, type: String, recordID: String)] {
        receiver.accepted.compactMap { webhook in
            guard let body = try? JSONValue.parse(webhook.body),
                  let connection = body["data"]?["connection"]?.stringValue,
                  let type = body["type"]?.stringValue,
                  let record = body["data"]?["record_id"]?.stringValue else { return nil }
            return (connection, type, record)
        }
    }

    /// Bodies of the accepted deliveries from the hostile connection for `record`, in arrival order.
    func bodies(record: String) -> [JSONValue] {
        receiver.accepted.compactMap { webhook in
            guard let body = try? JSONValue.parse(webhook.body), body["data"]?["connection"] == "hostile",
                  body["data"]?["record_id"]?.stringValue == record else { return nil }
            return body
        }
    }

    /// The raw record the running daemon has stored for `record` of the hostile connection's `object` (read
    /// beside it as the CLI does), nil until it exists.
    func storedRaw(object: String, record: String) -> JSONValue? {
        guard let store = try? StateStore(path: stateDirectory + "/" + StateStore.fileName, mode: .readOnly) else {
            return nil
        }
        return (try? store.snapshots(connection: "hostile", object: object, ids: [record]))?[record]?.raw
    }

    /// Runs `deltahook ARGS --config CONFIG` to completion: (exit status, stdout).
    func cli(_ arguments: [String]) throws -> (Int32, String) {
        let result = try runDeltahook(arguments + ["--config", configPath], environment: environment)
        return (result.status, result.stdout)
    }

    func delivered(_ connection: String, _ type: String, record: Int64) -> Bool {
        delivered(connection, type, record: String(record))
    }

    func delivered(_ connection: String, _ type: String, record: String) -> Bool {
        deliveries.contains { $0.connection == connection && $0.type == type && $0.recordID == record }
    }

    /// No `deleted` event reached the receiver from the hostile connection.
    func expectNoDeletedEvents(sourceLocation: SourceLocation = #_sourceLocation) {
        let deleted = deliveries.filter { $0.connection == "hostile" && $0.type.hasSuffix(".deleted") }
        #expect(deleted.isEmpty, "deleted events: \(deleted.map(\.recordID))", sourceLocation: sourceLocation)
    }

    /// Polls `condition` every 50 ms for at most `timeout` (the shared `Wait.until`).
    func waitUntil(_ timeout: Duration = .seconds(30), _ condition: () -> Bool) async -> Bool {
        await Wait.until(timeout: timeout, interval: .milliseconds(50), condition)
    }

    /// Waits until the daemon's stderr contains `text`.
    func waitForLog(_ text: String, timeout: Duration = .seconds(30)) async -> Bool {
        await waitUntil(timeout) { daemon?.stderr.contains(text) ?? false }
    }

    /// Sends SIGTERM and waits for the exit status.
    func stop() async -> Int32? {
        guard let daemon else { return nil }
        daemon.signal(SIGTERM)
        _ = await waitUntil(.seconds(20)) { !daemon.process.isRunning }
        return daemon.process.isRunning ? nil : daemon.process.terminationStatus
    }

    /// The healthy connection still flows: a new issue there is delivered, and the daemon is alive.
    func expectHealthyConnectionFlows(_ label: String, sourceLocation: SourceLocation = #_sourceLocation) async {
        let issue = healthy.createIssue(title: "healthy after \(label)")
        let flowed = await waitUntil { self.delivered("healthy", "ticket.created", record: issue.id) }
        #expect(flowed, "the healthy connection stopped after \(label); stderr: \(daemon?.stderr ?? "")",
                sourceLocation: sourceLocation)
        #expect(daemon?.process.isRunning == true, "the daemon died after \(label)", sourceLocation: sourceLocation)
    }

    /// No `deleted` event was delivered for a record the hostile emulator still holds.
    func expectNoLiveRecordDeleted(sourceLocation: SourceLocation = #_sourceLocation) {
        let live = Set(hostile.issues.map { String($0.id) })
        let wrong = deliveries.filter { $0.type.hasSuffix(".deleted") && $0.connection == "hostile" && live.contains($0.recordID) }
        #expect(wrong.isEmpty, "live records got deleted events: \(wrong.map(\.recordID))", sourceLocation: sourceLocation)
    }
}

@Suite("Hostile provider answers, real daemon", .serialized)
struct HostileProviderTests {
    @Test("rule 14: one issue dated 2099 does not freeze the cursor; present-day changes keep flowing")
    func futureDatedRecord() async throws {
        let scenario = try HostileScenario()
        let now = scenario.hostile.clock.now()
        let early = scenario.hostile.createIssue(title: "early", at: now.addingTimeInterval(-120))
        let future = scenario.hostile.createIssue(title: "broken import",
                                                  at: Date(timeIntervalSince1970: 4_070_908_800))  // 2099-01-01
        let daemon = try scenario.start()
        #expect(await scenario.waitUntil {
            scenario.delivered("hostile", "ticket.created", record: early.id)
                && scenario.delivered("hostile", "ticket.created", record: future.id)
        }, "initial events missing; stderr: \(daemon.stderr)")
        #expect(await scenario.waitForLog("record dated in the future", timeout: .seconds(10)), "\(daemon.stderr)")

        // Changes made now, after the 2099 record was read, are still seen.
        scenario.hostile.updateIssue(early.number) { $0.title = "edited today" }
        let later = scenario.hostile.createIssue(title: "created today")
        #expect(await scenario.waitUntil {
            scenario.delivered("hostile", "ticket.updated", record: early.id)
                && scenario.delivered("hostile", "ticket.created", record: later.id)
        }, "present-day changes after a 2099 record were never read; stderr: \(daemon.stderr)")
        await scenario.expectHealthyConnectionFlows("a 2099 record")
        scenario.expectNoLiveRecordDeleted()
    }
}

@Suite("Hostile REST answers, real daemon", .serialized)
struct HostileRestTests {
    static func order(_ id: Int64, _ secondsAgo: TimeInterval, note: String = "") -> RestEmulator.Order {
        RestEmulator.Order(id: id, status: "new", updatedAt: Date(timeIntervalSinceNow: -secondsAgo).roundedToSeconds,
                           note: note)
    }

    @Test("rule 13: a next link to another origin is refused before any request; the token never leaves",
          arguments: [RestEmulator.Pagination.nextURL, .linkHeader])
    func crossOriginNextLink(style: RestEmulator.Pagination) async throws {
        // The canary listens on a loopback alias: a request reaching it would be the credential sent elsewhere.
        let canary = try RestEmulator(pagination: style, token: "canary-never-called", host: "127.0.0.2")
        defer { canary.stop() }
        let rest = try RestEmulator(pagination: style)
        for id in 1...5 { rest.upsert(Self.order(Int64(id), 300 - Double(id))) }
        rest.updateHostility { $0.nextLinkBase = canary.baseURL }
        let scenario = try HostileScenario(rest: rest)
        let daemon = try scenario.start()
        #expect(await scenario.waitForLog("poll cycle failed connection=hostile", timeout: .seconds(30)), "\(daemon.stderr)")
        await scenario.expectHealthyConnectionFlows("a cross-origin next link")
        #expect(canary.requests.isEmpty, "the canary got \(canary.requests.map(\.target))")
        #expect(!daemon.stderr.contains(rest.token))
        scenario.expectNoLiveRecordDeleted()
    }

    @Test("rule 18: an API that ignores the page parameter ends each scan with an error, not 10,000 requests")
    func pageParameterIgnored() async throws {
        let rest = try RestEmulator(pagination: .page)
        // Five orders in one second: a full page of one timestamp, the one place the walk asks page 2 (rule 3).
        for id in 1...5 { rest.upsert(Self.order(Int64(id), 300)) }
        rest.updateHostility { $0.ignoresPaging = true }
        let scenario = try HostileScenario(rest: rest)
        let daemon = try scenario.start()
        #expect(await scenario.waitForLog("poll cycle failed connection=hostile", timeout: .seconds(30)), "\(daemon.stderr)")
        await scenario.expectHealthyConnectionFlows("a page parameter ignored")
        let requests = rest.requests.count
        #expect(requests < 50, "\(requests) requests: the scan did not stop on a repeated page")
        #expect(await scenario.waitUntil { scenario.delivered("hostile", "record.created", record: 1) })
        scenario.expectNoLiveRecordDeleted()
    }

    @Test("rule 3: 50 orders becoming visible between two page requests are each delivered exactly once")
    func ordersVisibleBetweenPageRequests() async throws {
        let rest = try RestEmulator(pagination: .page)
        let base = Date(timeIntervalSinceNow: -600).roundedToSeconds
        for id in 1...3 { rest.upsert(RestEmulator.Order(id: Int64(id), status: "new", updatedAt: base + Double(id))) }
        // The newest order, which the walk re-reads from its own second. Right after that page is answered, a bulk
        // job makes 50 orders visible, dated over the following minutes: a page 2 from the same second would begin
        // at the 10th of them and the walk would step over the first nine.
        let newest = base + 3
        rest.betweenPages(.init(matches: { request in
            request.queryValue("updated_since").flatMap(Timestamps.parseRFC3339) == newest
                && (request.queryValue("page") ?? "1") == "1"
        }, run: { emulator in
            for id in 4...53 {
                emulator.upsert(RestEmulator.Order(id: Int64(id), status: "bulk", updatedAt: newest + Double(id) * 5))
            }
        }))
        let scenario = try HostileScenario(rest: rest)
        let daemon = try scenario.start(objectExtra: #", "page_size": 10"#)
        let all = Set((1...53).map(String.init))
        func created() -> [String] {
            scenario.deliveries.filter { $0.connection == "hostile" && $0.type == "record.created" }.map(\.recordID)
        }
        #expect(await scenario.waitUntil { all.isSubset(of: created()) },
                "never delivered: \(all.subtracting(created()).compactMap { Int($0) }.sorted()); stderr: \(daemon.stderr)")
        // A few more poll cycles re-read the newest orders: no state arrives twice.
        try await Task.sleep(for: .seconds(3))
        let hostile = scenario.deliveries.filter { $0.connection == "hostile" }
        #expect(hostile.count == 53, "\(hostile.count) deliveries for 53 orders: \(hostile.map { "\($0.type) \($0.recordID)" })")
        #expect(Set(hostile.map(\.recordID)) == all)
        await scenario.expectHealthyConnectionFlows("orders visible between page requests")
    }

    @Test("rule 12: 429 with Retry-After: 99999999999999999999 is clamped; the daemon neither dies nor waits forever")
    func absurdRetryAfter() async throws {
        let rest = try RestEmulator(pagination: .page)
        rest.upsert(Self.order(1, 100))
        rest.updateHostility {
            $0.rateLimitHeaders = [("Retry-After", "99999999999999999999")]
            $0.rateLimitedRequests = 1
        }
        let scenario = try HostileScenario(rest: rest)
        let daemon = try scenario.start(hostileExtra: #" "max_provider_wait": "2s","#)
        await scenario.expectHealthyConnectionFlows("an absurd Retry-After")
        // Clamped to max_provider_wait (2 s): the connection resumes and delivers.
        #expect(await scenario.waitUntil { scenario.delivered("hostile", "record.created", record: 1) },
                "the REST connection never resumed; stderr: \(daemon.stderr)")
        #expect(daemon.process.isRunning)
    }

    @Test("rule 18: pages over max_response_bytes halve the page size until they fit; every record arrives")
    func pageOverTheCap() async throws {
        let rest = try RestEmulator(pagination: .page)
        let note = String(repeating: "x", count: 30_000)
        for id in 1...6 { rest.upsert(Self.order(Int64(id), 300 - Double(id), note: note)) }
        let scenario = try HostileScenario(rest: rest)
        // 65536 bytes hold two 30 KB orders but not the four a page asks for.
        let daemon = try scenario.start(hostileExtra: #" "max_response_bytes": 65536,"#, objectExtra: #", "page_size": 4"#)
        #expect(await scenario.waitUntil { (1...6).allSatisfy { scenario.delivered("hostile", "record.created", record: Int64($0)) } },
                "stderr: \(daemon.stderr)")
        #expect(daemon.stderr.contains("halving the page size"))
        await scenario.expectHealthyConnectionFlows("a page over the cap")
    }
}

extension Date {
    /// Whole seconds, as most APIs print them.
    var roundedToSeconds: Date { Date(timeIntervalSince1970: timeIntervalSince1970.rounded(.down)) }
}

@Suite("Mass-delete guard, real daemon", .serialized)
struct MassDeleteGuardEndToEndTests {
    @Test("rule 17: an empty sweep listing is held (no deleted events, status says so) until --apply-held")
    func emptySweepListingIsHeld() async throws {
        let scenario = try HostileScenario()
        let issues = (1...12).map { scenario.hostile.createIssue(title: "issue \($0)") }
        var daemon = try scenario.start()
        #expect(await scenario.waitUntil { issues.allSatisfy { scenario.delivered("hostile", "ticket.created", record: $0.id) } },
                "initial sync never arrived; stderr: \(daemon.stderr)")
        #expect(await scenario.stop() == 0)

        // A token scope change: the repository now lists nothing, although every issue still exists.
        let hidden = scenario.hostile.issues
        for issue in hidden { scenario.hostile.delete(issue.number) }
        let sweep = try scenario.cli(["reconcile", "--connection", "hostile", "--object", "issues"])
        #expect(sweep.0 == 0 && sweep.1.contains("held"), "\(sweep.1)")
        let status = try scenario.cli(["status"])
        #expect(status.1.contains("hostile/issues: sweep held: would delete 12 of 12"), "\(status.1)")

        // The daemon runs on with the hold in place: other connections flow, nothing is deleted.
        daemon = try scenario.start()
        await scenario.expectHealthyConnectionFlows("an empty sweep listing")
        #expect(!scenario.deliveries.contains { $0.type.hasSuffix(".deleted") })

        // The operator decides the source really lost them: applied once, by the running daemon.
        let apply = try scenario.cli(["reconcile", "--connection", "hostile", "--object", "issues", "--apply-held"])
        #expect(apply.0 == 0 && apply.1.contains("requested"), "\(apply.1)")
        #expect(await scenario.waitUntil {
            scenario.deliveries.filter { $0.connection == "hostile" && $0.type == "ticket.deleted" }.count == 12
        }, "stderr: \(daemon.stderr)")
        #expect(daemon.process.isRunning)
    }
}

/// 2099-01-01T00:00:00Z.
private let farFuture = Date(timeIntervalSince1970: 4_070_908_800)

@Suite("Hostile rate-limit headers and ids, real daemon", .serialized)
struct HostileHeadersAndIDsTests {
    /// Waits for `ready`, then proves the clamp was logged, the healthy connection flowed and nothing was deleted.
    private func expectSurvivesRateLimit(_ scenario: HostileScenario, _ label: String,
                                         ready: @escaping () -> Bool) async {
        #expect(await scenario.waitUntil(.seconds(40), ready),
                "\(label): the hostile connection never resumed; stderr: \(scenario.daemon?.stderr ?? "")")
        #expect(scenario.daemon?.stderr.contains("provider wait clamped to max_provider_wait") == true,
                "\(label): \(scenario.daemon?.stderr ?? "")")
        await scenario.expectHealthyConnectionFlows(label)
        scenario.expectNoDeletedEvents()
    }

    @Test("rule 12: GitHub x-ratelimit-reset 9223372036854775807 and Retry-After of 20 digits are clamped")
    func githubHostileRateLimitHeaders() async throws {
        let scenario = try HostileScenario()
        let issue = scenario.hostile.createIssue(title: "behind a hostile limit")
        scenario.hostile.queueFaults([
            .rateLimitHeaders(status: 403, remaining: "0", reset: "9223372036854775807", retryAfter: nil),
            .rateLimitHeaders(status: 429, remaining: nil, reset: nil, retryAfter: "99999999999999999999"),
        ])
        try scenario.start(hostileExtra: #" "max_provider_wait": "2s","#)
        await expectSurvivesRateLimit(scenario, "GitHub") {
            scenario.delivered("hostile", "ticket.created", record: issue.id)
        }
    }

    @Test("rule 12: ServiceNow 429 with Retry-After of 20 digits and X-RateLimit-Reset Int64.max is clamped")
    func servicenowHostileRateLimitHeaders() async throws {
        let servicenow = try ServiceNowEmulator()
        let id = try servicenow.insert("incident", ["short_description": "behind a hostile limit"],
                                       at: Date(timeIntervalSinceNow: -60).roundedToSeconds)
        servicenow.failNext(.rateLimitedWith(retryAfter: "99999999999999999999", reset: "9223372036854775807"),
                            times: 2)
        let scenario = try HostileScenario(servicenow: servicenow)
        try scenario.start(hostileExtra: #" "max_provider_wait": "2s","#)
        await expectSurvivesRateLimit(scenario, "ServiceNow") {
            scenario.delivered("hostile", "record.created", record: id)
        }
    }

    @Test("rule 12: NetSuite 429 with Retry-After of 20 digits is clamped")
    func netsuiteHostileRateLimitHeaders() async throws {
        let zone = try #require(TimeZone(identifier: "America/Los_Angeles"))
        let netsuite = try NetSuiteEmulator(options: .init(timeZone: zone))
        netsuite.upsert("customer", id: 101, modifiedAt: Date(timeIntervalSinceNow: -120).roundedToSeconds,
                        fields: [("companyname", .text("Acme"))])
        netsuite.rateLimitNext(retryAfter: "99999999999999999999", times: 2)
        let scenario = try HostileScenario(netsuite: netsuite)
        try scenario.start(hostileExtra: #" "max_provider_wait": "2s","#)
        await expectSurvivesRateLimit(scenario, "NetSuite") {
            scenario.delivered("hostile", "record.created", record: "101")
        }
    }

    @Test("rule 15: a sys_id holding ^OR at a sweep page end neither rewrites the next query nor deletes anything")
    func servicenowInjectionAtSweepPageEnd() async throws {
        let servicenow = try ServiceNowEmulator()
        let at = Date(timeIntervalSinceNow: -300).roundedToSeconds
        let valid = ["1", "2", "7", "8", "9"].map { String(repeating: $0, count: 32) }
        for (index, id) in valid.enumerated() {
            _ = try servicenow.insert("incident", ["short_description": "incident \(index)"],
                                      at: at.addingTimeInterval(Double(index)), sysID: id)
        }
        // Sorted by sys_id it ends the sweep's first page (page_size 3): 111…, 222…, 2zzz^OR….
        let hostileID = "2zzz^ORsys_idISNOTEMPTY^NQsys_id=0"
        _ = try servicenow.insert("incident", ["short_description": "hostile"], at: at.addingTimeInterval(10),
                                  sysID: hostileID)
        let scenario = try HostileScenario(servicenow: servicenow)
        try scenario.start(objectExtra: #", "page_size": 3"#)
        #expect(await scenario.waitUntil { valid.allSatisfy { scenario.delivered("hostile", "record.created", record: $0) } },
                "stderr: \(scenario.daemon?.stderr ?? "")")
        #expect(await scenario.stop() == 0)

        let sweep = try scenario.cli(["reconcile", "--connection", "hostile", "--object", "incident"])
        // The sweep steps past the rejected id (never its page token) and completes: five live ids, none deleted.
        #expect(sweep.0 == 0 && sweep.1.contains("swept hostile/incident: 5 ids listed, 0 deleted"),
                "\(sweep.0) \(sweep.1)")
        let quarantine = try scenario.cli(["quarantine", "list", "--json"])
        #expect(quarantine.1.contains("2zzz"), "the hostile record is not in quarantine: \(quarantine.1)")

        try scenario.start(objectExtra: #", "page_size": 3"#)
        await scenario.expectHealthyConnectionFlows("a sys_id with ^OR")
        scenario.expectNoDeletedEvents()
    }
}

@Suite("Poison records, real daemon", .serialized)
struct PoisonRecordTests {
    @Test("rule 16: poison records as the newest rows are quarantined; the rest flows; a fixed record leaves quarantine")
    func poisonAsNewestRecord() async throws {
        let rest = try RestEmulator(pagination: .page)
        for id in 1...3 { rest.upsert(HostileRestTests.order(Int64(id), 300 - Double(id))) }
        let now = Timestamps.rfc3339(Date())
        rest.updateHostility {
            $0.poisonRecords = [
                #"{"id": 98, "status": 1e999, "updated_at": "\#(now)", "note": ""}"#,
                #"{"id": 99, "status": "new", "updated_at": "10000-01-01T00:00:00Z", "note": ""}"#,
            ]
        }
        let scenario = try HostileScenario(rest: rest)
        let daemon = try scenario.start()
        #expect(await scenario.waitUntil { (1...3).allSatisfy { scenario.delivered("hostile", "record.created", record: Int64($0)) } },
                "stderr: \(daemon.stderr)")
        var listed = ""
        #expect(await scenario.waitUntil {
            listed = (try? scenario.cli(["quarantine", "list", "--json"]).1) ?? ""
            return listed.contains("\"98\"") && listed.contains("\"99\"")
        }, "quarantine: \(listed); stderr: \(daemon.stderr)")
        await scenario.expectHealthyConnectionFlows("poison records")

        // The source fixes record 99: it flows as a normal record and leaves quarantine.
        rest.updateHostility { $0.poisonRecords = [] }
        rest.upsert(RestEmulator.Order(id: 99, status: "fixed", updatedAt: Date().roundedToSeconds))
        #expect(await scenario.waitUntil { scenario.delivered("hostile", "record.created", record: 99) },
                "stderr: \(daemon.stderr)")
        #expect(await scenario.waitUntil {
            listed = (try? scenario.cli(["quarantine", "list", "--json"]).1) ?? ""
            return !listed.contains("\"99\"")
        }, "record 99 is still quarantined: \(listed)")
        #expect(daemon.process.isRunning)
        scenario.expectNoDeletedEvents()
    }
}

/// docs/DESIGN.md §2 rule 5a with the real binary: a change confined to provider fields the typed model does not
/// carry is one `updated` with `changes` `{}` and `changed_fields` naming the field, and a current `raw` for an
/// `include_raw` subscriber; `emit: "model_changes"` turns such changes off.
@Suite("Any content change emits, real daemon", .serialized)
struct AnyChangeEmitsTests {
    /// The one `<model>.updated` body delivered for `record`, after waiting for it (and a little longer, so a
    /// second one would have arrived too).
    private func singleUpdate(_ scenario: HostileScenario, _ type: String, record: String) async -> JSONValue? {
        let arrived = await scenario.waitUntil { scenario.delivered("hostile", type, record: record) }
        #expect(arrived, "no \(type) for \(record); stderr: \(scenario.daemon?.stderr ?? "")")
        await scenario.expectHealthyConnectionFlows("rule 5a \(type)")
        let updates = scenario.bodies(record: record).filter { $0["type"]?.stringValue == type }
        #expect(updates.count == 1, "\(type) for \(record): \(updates.map { $0.serialized() })")
        return updates.first
    }

    /// `changes` is `{}`, `changed_fields` names exactly `field`, `raw` carries its new value.
    private func expectFieldOnlyUpdate(_ body: JSONValue?, field: String, value: String,
                                       sourceLocation: SourceLocation = #_sourceLocation) {
        let data = body?["data"]
        #expect(data?["changes"] == .object(JSONObject()), "\(body?.serialized() ?? "nil")", sourceLocation: sourceLocation)
        #expect(data?["changed_fields"] == .array([.string(field)]), "\(body?.serialized() ?? "nil")",
                sourceLocation: sourceLocation)
        #expect(data?["raw"]?[field]?.stringValue == value, "\(body?.serialized() ?? "nil")", sourceLocation: sourceLocation)
    }

    private static func netsuite() throws -> NetSuiteEmulator {
        let zone = try #require(TimeZone(identifier: "America/Los_Angeles"))
        let netsuite = try NetSuiteEmulator(options: .init(timeZone: zone))
        netsuite.upsert("customer", id: 301, modifiedAt: Date(timeIntervalSinceNow: -120).roundedToSeconds,
                        fields: [("companyname", .text("Acme")), ("comments", .text("first call"))])
        return netsuite
    }

    private static func servicenow() throws -> (ServiceNowEmulator, String) {
        let servicenow = try ServiceNowEmulator()
        let id = try servicenow.insert("incident", ["short_description": "printer jams", "state": "1",
                                                    "u_vendor_ticket": "V-1"],
                                       at: Date(timeIntervalSinceNow: -120).roundedToSeconds)
        return (servicenow, id)
    }

    @Test("rule 5a: a NetSuite customer whose comments change → one customer.updated, changes {}, changed_fields [comments]")
    func netsuiteCommentsChange() async throws {
        let netsuite = try Self.netsuite()
        let scenario = try HostileScenario(netsuite: netsuite)
        try scenario.start(objectExtra: #", "model": "customer""#, subscriberExtra: #", "include_raw": true"#)
        #expect(await scenario.waitUntil { scenario.delivered("hostile", "customer.created", record: "301") },
                "stderr: \(scenario.daemon?.stderr ?? "")")
        netsuite.upsert("customer", id: 301, modifiedAt: Date().roundedToSeconds,
                        fields: [("comments", .text("second call"))])
        let body = await singleUpdate(scenario, "customer.updated", record: "301")
        expectFieldOnlyUpdate(body, field: "comments", value: "second call")
        scenario.expectNoDeletedEvents()
    }

    @Test("rule 5a: a ServiceNow incident (ticket) whose u_ field changes → one ticket.updated, changes {}, changed_fields names it")
    func servicenowCustomFieldChange() async throws {
        let (servicenow, id) = try Self.servicenow()
        let scenario = try HostileScenario(servicenow: servicenow)
        try scenario.start(objectExtra: #", "model": "ticket""#, subscriberExtra: #", "include_raw": true"#)
        #expect(await scenario.waitUntil { scenario.delivered("hostile", "ticket.created", record: id) },
                "stderr: \(scenario.daemon?.stderr ?? "")")
        try servicenow.update("incident", id, ["u_vendor_ticket": "V-2"], at: Date().roundedToSeconds)
        let body = await singleUpdate(scenario, "ticket.updated", record: id)
        expectFieldOnlyUpdate(body, field: "u_vendor_ticket", value: "V-2")
        scenario.expectNoDeletedEvents()
    }

    @Test("rule 5a: emit model_changes → no event for a NetSuite comments or ServiceNow u_ change; model changes still emit")
    func modelChangesOptOut() async throws {
        // NetSuite customer: comments changes (snapshot moves, nothing delivered), then the company name does.
        let netsuite = try Self.netsuite()
        let ns = try HostileScenario(netsuite: netsuite)
        try ns.start(objectExtra: #", "model": "customer", "emit": "model_changes""#)
        #expect(await ns.waitUntil { ns.delivered("hostile", "customer.created", record: "301") },
                "stderr: \(ns.daemon?.stderr ?? "")")
        let later = Date().roundedToSeconds
        netsuite.upsert("customer", id: 301, modifiedAt: later, fields: [("comments", .text("second call"))])
        #expect(await ns.waitUntil { ns.storedRaw(object: "customer", record: "301")?["comments"] == "second call" },
                "the daemon never stored the comments change; stderr: \(ns.daemon?.stderr ?? "")")
        netsuite.upsert("customer", id: 301, modifiedAt: later.addingTimeInterval(1),
                        fields: [("companyname", .text("Acme Corp"))])
        let renamed = await singleUpdate(ns, "customer.updated", record: "301")
        #expect(renamed?["data"]?["changed_fields"] == ["companyname"], "\(renamed?.serialized() ?? "nil")")
        #expect(renamed?["data"]?["changes"]?["company_name"]?["to"] == "Acme Corp")
        #expect(renamed?["data"]?["raw"] == nil)
        #expect(await ns.stop() == 0)

        // ServiceNow ticket: the u_ field changes, then the state does.
        let (servicenow, id) = try Self.servicenow()
        let sn = try HostileScenario(servicenow: servicenow)
        try sn.start(objectExtra: #", "model": "ticket", "emit": "model_changes""#)
        #expect(await sn.waitUntil { sn.delivered("hostile", "ticket.created", record: id) },
                "stderr: \(sn.daemon?.stderr ?? "")")
        let now = Date().roundedToSeconds
        try servicenow.update("incident", id, ["u_vendor_ticket": "V-2"], at: now)
        #expect(await sn.waitUntil { sn.storedRaw(object: "incident", record: id)?["u_vendor_ticket"] == "V-2" },
                "the daemon never stored the u_ change; stderr: \(sn.daemon?.stderr ?? "")")
        try servicenow.update("incident", id, ["state": "2"], at: now.addingTimeInterval(1))
        let progressed = await singleUpdate(sn, "ticket.updated", record: id)
        #expect(progressed?["data"]?["changed_fields"] == ["state"], "\(progressed?.serialized() ?? "nil")")
        #expect(progressed?["data"]?["changes"]?["status"]?["to"] == "in_progress")
    }
}
