// The real `deltahook` binary (`poll-once`, `events list|show`) against the GitHub emulator: config in a temp
// dir, secrets from environment variables, state in a temp state directory. Each test names the docs/DESIGN.md §2 rule
// it proves.
import Core
import Crypto
import Emulators
import Foundation
import Glibc
import Store
import Testing
import TestSupport

private let whsec = "whsec_" + Data((0..<32).map { UInt8($0) }).base64EncodedString()
private let token = "ghp_emulatortoken"

/// One emulator + one config + one state directory; `stop()` tears everything down.
private struct GitHubE2E {
    let dir: TestSupport.TemporaryDirectory
    let emulator: GitHubEmulator
    let binary: String
    let configPath: String
    /// Source timestamps well in the past, whole seconds, increasing per use.
    let base = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 100_000).rounded(.down))

    /// `appKeyPEM`: authenticate as a GitHub App whose private key is read from a file secret.
    init(initialSync: String = "emit", pageSize: Int = 100, options: GitHubEmulator.Options = .init(),
         appKeyPEM: String? = nil) throws {
        binary = try #require(BuiltBinary.deltahook(), "build first: swift build (needs .build/debug/deltahook)")
        dir = try TestSupport.TemporaryDirectory(prefix: "deltahook-gh-e2e")
        emulator = try GitHubEmulator(options: options)
        var auth = #"{"type": "token", "token": {"env": "GITHUB_TOKEN"}}"#
        if let appKeyPEM {
            let keyPath = try dir.write("app-key.pem", appKeyPEM)
            auth = #"{"type": "github_app", "app_id": "12345", "installation_id": "777", "private_key": {"file": "\#(keyPath)"}}"#
        }
        let config = """
            {"state_directory": "\(dir.file("state"))", "log_level": "warning",
             "connections": [{"id": "octo", "provider": "github", "base_url": "\(emulator.baseURL)",
               "auth": \(auth),
               "objects": [{"name": "issues", "repository": "octo-org/hello", "model": "ticket", "interval": "30s",
                            "initial_sync": "\(initialSync)", "page_size": \(pageSize)}]}],
             "subscribers": [{"id": "crm", "url": "https://hooks.example.com/x", "secrets": [{"env": "WHSEC"}],
                              "events": ["ticket.*"]}]}
            """
        configPath = try dir.write("config.json", config)
    }

    func stop() {
        emulator.stop()
        dir.remove()
    }

    var environment: [String: String] { ["GITHUB_TOKEN": token, "WHSEC": whsec] }

    func run(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> ProcessResult {
        try await ProcessRunner.run(binary, ["--config", configPath] + arguments, environment: environment,
                                    timeout: timeout)
    }

    func start(_ arguments: [String]) throws -> RunningProcess {
        try RunningProcess(binary, ["--config", configPath] + arguments, environment: environment)
    }

    /// `poll-once --json`; returns the exit status and the parsed report.
    func pollOnce(_ extra: [String] = []) async throws -> (status: Int32, report: JSONValue) {
        let result = try await run(["poll-once", "--connection", "octo", "--json"] + extra)
        let report = try JSONValue.parse(Array(result.stdout.utf8))
        return (result.status, report)
    }

    /// Events committed by one successful `poll-once`, as webhook bodies in commit order.
    func pollEvents(_ extra: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) async throws -> [JSONValue] {
        let (status, report) = try await pollOnce(extra)
        #expect(status == 0, "poll-once failed: \(report)", sourceLocation: sourceLocation)
        return (report["reports"]?.arrayValue ?? []).flatMap { $0["events"]?.arrayValue ?? [] }
    }

    /// Every event in the outbox, oldest first.
    func outbox() async throws -> [JSONValue] {
        let result = try await run(["events", "list", "--json", "--limit", "100000"])
        #expect(result.status == 0, "events list failed: \(result.stderr)")
        return try JSONValue.parse(Array(result.stdout.utf8)).arrayValue ?? []
    }
}

private func types(_ events: [JSONValue]) -> [String] { events.compactMap { $0["type"]?.stringValue } }
private func recordIDs(_ events: [JSONValue]) -> [String] { events.compactMap { $0["data"]?["record_id"]?.stringValue } }

@Suite("deltahook poll-once against the GitHub emulator", .serialized)
struct GitHubPollOnceTests {
    @Test("Rules 2, 5, 6, 8: create/update/close/reopen/delete/re-create → exactly the expected events, nothing for re-reads")
    func lifecycle() async throws {
        let e = try GitHubE2E()
        defer { e.stop() }
        let one = e.emulator.createIssue(title: "first", body: "hello", labels: ["bug"], at: e.base)
        let two = e.emulator.createIssue(title: "second", at: e.base + 1)
        e.emulator.createIssue(title: "a pull request", pullRequest: true, at: e.base + 2)

        let created = try await e.pollEvents()
        #expect(types(created) == ["ticket.created", "ticket.created"], "pull requests emit nothing by default")
        #expect(recordIDs(created) == [String(one.id), String(two.id)])
        #expect(created.first?["data"]?["record"]?["title"] == "first")
        #expect(created.first?["data"]?["occurred_at"] == .string(Timestamps.rfc3339(e.base)))
        #expect(created.first?["data"]?["raw"] == nil, "raw only for include_raw subscribers")

        #expect(try await e.pollEvents().isEmpty, "re-reading unchanged records emits nothing (rule 2)")

        e.emulator.updateIssue(1, at: e.base + 10) { $0.title = "first, edited" }
        let updated = try await e.pollEvents()
        #expect(types(updated) == ["ticket.updated"])
        #expect(updated.first?["data"]?["changes"] == ["title": ["from": "first", "to": "first, edited"]])

        e.emulator.close(1, at: e.base + 20)
        let closed = try await e.pollEvents()
        #expect(closed.first?["data"]?["changes"] == [
            "status": ["from": "open", "to": "closed"],
            "closed_at": ["from": .null, "to": .string(Timestamps.rfc3339(e.base + 20))],
        ])

        e.emulator.reopen(1, at: e.base + 30)
        let reopened = try await e.pollEvents()
        #expect(reopened.first?["data"]?["changes"] == [
            "status": ["from": "closed", "to": "open"],
            "closed_at": ["from": .string(Timestamps.rfc3339(e.base + 20)), "to": .null],
        ])

        // A change in volatile bookkeeping alone (comment count, updated_at) emits nothing (rule 5).
        e.emulator.updateIssue(1, at: e.base + 35) { $0.comments += 1 }
        #expect(try await e.pollEvents().isEmpty)

        let deletedIssue = try #require(e.emulator.issue(number: 2))
        e.emulator.delete(2)
        let deleted = try await e.pollEvents(["--reconcile"])
        #expect(types(deleted) == ["ticket.deleted"])
        #expect(recordIDs(deleted) == [String(two.id)])
        #expect(deleted.first?["data"]?["record"]?["title"] == "second", "a delete carries the last known record")

        e.emulator.restore(deletedIssue, at: e.base + 40)
        let recreated = try await e.pollEvents()
        #expect(types(recreated) == ["ticket.created"], "a tombstoned id seen again is created again (rule 6)")
        #expect(recordIDs(recreated) == [String(two.id)])

        let outbox = try await e.outbox()
        #expect(outbox.compactMap { $0["type"]?.stringValue } == [
            "ticket.created", "ticket.created", "ticket.updated", "ticket.updated", "ticket.updated",
            "ticket.deleted", "ticket.created",
        ])
        #expect(Set(outbox.compactMap { $0["id"]?.stringValue }).count == 7)

        // `events show` prints the body as a subscriber receives it, and its delivery state.
        let id = try #require(outbox[2]["id"]?.stringValue)
        let shown = try await e.run(["events", "show", id, "--json"])
        #expect(shown.status == 0)
        let detail = try JSONValue.parse(Array(shown.stdout.utf8))
        #expect(detail["body"] == updated.first)
        #expect(detail["deliveries"]?.arrayValue?.first?["subscriber"] == "crm")
        #expect(detail["deliveries"]?.arrayValue?.first?["state"] == "pending")
        let raw = try await e.run(["events", "show", id, "--raw", "--json"])
        #expect(try JSONValue.parse(Array(raw.stdout.utf8))["body"]?["data"]?["raw"]?["number"] == 1)
        let listed = try await e.run(["events", "list", "--type", "ticket.deleted"])
        #expect(listed.stdout.split(separator: "\n").count == 1)
        #expect(try await e.run(["events", "show", "evt_nope"]).status == 1)
    }

    @Test("Rules 3, 4: 250 issues updated within one second, over 3 pages, are captured exactly once")
    func sameSecondRun() async throws {
        let e = try GitHubE2E()
        defer { e.stop() }
        for i in 0..<250 { e.emulator.createIssue(title: "bulk \(i)", at: e.base) }
        let events = try await e.pollEvents()
        #expect(events.count == 250)
        #expect(Set(recordIDs(events)).count == 250)
        #expect(e.emulator.listRequests.contains { $0.query["page"] == "3" })
        #expect(try await e.pollEvents().isEmpty)
        #expect(try await e.outbox().count == 250)
    }

    @Test("Rule 3: an update landing while a scan is between pages is captured in this or the next cycle")
    func updateBetweenPages() async throws {
        let e = try GitHubE2E(initialSync: "silent", pageSize: 2)
        defer { e.stop() }
        for i in 0..<6 { e.emulator.createIssue(title: "issue \(i)", at: e.base + Double(i)) }
        #expect(try await e.pollEvents().isEmpty, "silent baseline")
        e.emulator.updateIssue(1, at: e.base + 50) { $0.title = "edit A" }
        e.emulator.updateIssue(5, at: e.base + 51) { $0.title = "edit 5" }
        e.emulator.updateIssue(6, at: e.base + 52) { $0.title = "edit 6" }
        e.emulator.queueFaults([.none, .hook { emulator in
            emulator.updateIssue(1, at: e.base + 60) { $0.title = "edit B" }
        }])
        let events = try await e.pollEvents() + e.pollEvents()
        let titles = events.compactMap { $0["data"]?["record"]?["title"]?.stringValue }
        #expect(titles.contains("edit B"), "the mid-scan update is captured")
        #expect(titles.contains("edit 5") && titles.contains("edit 6"))
        #expect(titles.filter { $0 == "edit B" }.count == 1)
        #expect(types(events).allSatisfy { $0 == "ticket.updated" })
    }

    @Test("Rules 1, 8: SIGKILL between pages, then a restart: no lost, no doubled events, the same event ids")
    func killBetweenPages() async throws {
        let e = try GitHubE2E(pageSize: 2)
        defer { e.stop() }
        for i in 0..<6 { e.emulator.createIssue(title: "issue \(i)", at: e.base + Double(i)) }
        let preview = try await e.pollEvents(["--dry-run"])
        #expect(preview.count == 6)
        #expect(try await e.outbox().isEmpty, "a dry run writes nothing")
        e.emulator.clearLog()

        e.emulator.queueFaults([.none, .delay(.seconds(30))])
        let process = try e.start(["poll-once", "--connection", "octo", "--json"])
        let reachedPage2 = await Wait.until(timeout: .seconds(30)) { e.emulator.arrivedListRequests >= 2 }
        #expect(reachedPage2)
        // The first page's request has been answered and the second is being delayed: page 1 is committed
        // (rule 1: the engine commits a page before asking for the next).
        let pageOneCommitted = await Wait.until(timeout: .seconds(20), interval: .milliseconds(100)) {
            ((try? await e.outbox()) ?? []).count == 2
        }
        #expect(pageOneCommitted)
        process.kill(signal: SIGKILL)
        let killed = await process.wait(timeout: .seconds(10))
        #expect(killed.status != 0)
        let afterKill = try await e.outbox()
        #expect(afterKill.count == 2, "page 1 was committed before the kill")
        e.emulator.clearFaults()

        let (status, report) = try await e.pollOnce()
        #expect(status == 0)
        #expect(report["reports"]?.arrayValue?.first?["resumed"] == true)
        let outbox = try await e.outbox()
        #expect(outbox.count == 6, "no lost and no doubled events")
        #expect(Set(outbox.compactMap { $0["id"]?.stringValue }) == Set(preview.compactMap { $0["data"]?["event_id"]?.stringValue }),
                "event ids are deterministic (rule 8): the dry run predicted them")
        #expect(try await e.pollEvents().isEmpty)
    }

    @Test("Rule 9: idle polls send If-None-Match, get 304 and cost no quota")
    func idlePollsAreConditional() async throws {
        let e = try GitHubE2E()
        defer { e.stop() }
        e.emulator.createIssue(title: "only", at: e.base)
        _ = try await e.pollEvents()
        _ = try await e.pollEvents()
        let before = e.emulator.rateLimitRemaining
        let (status, report) = try await e.pollOnce()
        #expect(status == 0)
        #expect(report["reports"]?.arrayValue?.first?["not_modified"] == true)
        let last = try #require(e.emulator.listRequests.last)
        #expect(last.ifNoneMatch?.hasPrefix("W/\"") == true)
        #expect(last.status == 304)
        #expect(e.emulator.rateLimitRemaining == before, "304 is free")

        e.emulator.updateIssue(1, at: e.base + 5) { $0.title = "changed" }
        let changed = try await e.pollEvents()
        #expect(types(changed) == ["ticket.updated"], "a change after the validator is still seen")
    }

    @Test("Rules 9, 10: rate-limit exhaustion is reported with the wait until reset, without spinning; polling resumes after")
    func rateLimitWaitsForReset() async throws {
        let e = try GitHubE2E()
        defer { e.stop() }
        e.emulator.createIssue(title: "x", at: e.base)
        _ = try await e.pollEvents()
        e.emulator.createIssue(title: "y", at: e.base + 1)
        e.emulator.clearLog()
        e.emulator.exhaustRateLimit(until: Date() + 2)
        let (status, report) = try await e.pollOnce()
        #expect(status == 1)
        let wait = try #require(report["retry_after_seconds"]?.doubleValue)
        #expect(wait >= 1 && wait <= 5)
        #expect(e.emulator.listRequests.count == 1, "one refused request, no retry loop")
        #expect(try await e.outbox().count == 1)

        // Wait out the announced reset (bounded: at most 5 s), then the next cycle goes through.
        try await Task.sleep(for: .seconds(wait))
        let events = try await e.pollEvents()
        #expect(types(events) == ["ticket.created"])
    }

    @Test("Rule 1: a 500 or a malformed page leaves the cursor where it was; the next cycle resumes without loss or doubles")
    func errorsKeepTheCursor() async throws {
        let e = try GitHubE2E(initialSync: "silent", pageSize: 2)
        defer { e.stop() }
        e.emulator.createIssue(title: "old", at: e.base)
        #expect(try await e.pollEvents().isEmpty)
        for i in 0..<4 { e.emulator.createIssue(title: "new \(i)", at: e.base + 10 + Double(i)) }

        e.emulator.queueFaults([.status(500)])
        let (failed500, _) = try await e.pollOnce()
        #expect(failed500 == 1)
        #expect(try await e.outbox().isEmpty, "nothing committed from a failed first page")

        e.emulator.queueFaults([.none, .malformedJSON])
        let (failedMalformed, report) = try await e.pollOnce()
        #expect(failedMalformed == 1)
        #expect(report["error"]?.stringValue?.contains("malformed") == true)
        let partial = try await e.outbox()
        #expect(partial.count <= 2, "at most the pages before the bad one were committed")

        let rest = try await e.pollEvents()
        let outbox = try await e.outbox()
        #expect(outbox.count == 4, "every new issue exactly once")
        #expect(Set(outbox.compactMap { $0["record_id"]?.stringValue }).count == 4)
        #expect(rest.count == 4 - partial.count)
    }

    @Test("Rule 11: GitHub App auth from a PEM file: the binary mints an installation token the emulator verifies")
    func appAuthentication() async throws {
        let key = try RSAKey.generate()
        let options = GitHubEmulator.Options(tokens: [], app: .init(appID: "12345", installationID: "777",
                                                                    appPublicKey: try RSAKey.publicKey(pem: key.publicKeyPEM())))
        let e = try GitHubE2E(options: options, appKeyPEM: try key.privateKeyPEM())
        defer { e.stop() }
        e.emulator.createIssue(title: "app", at: e.base)
        let events = try await e.pollEvents()
        #expect(types(events) == ["ticket.created"])
        #expect(e.emulator.mintedTokens == 1)
        #expect(e.emulator.listRequests.allSatisfy { $0.authorization?.hasPrefix("Bearer ghs_") == true })

        // A key that is not the App's: the JWT is refused, poll-once fails with an auth error naming no secret.
        let wrong = try GitHubE2E(options: options, appKeyPEM: try RSAKey.generate().privateKeyPEM())
        defer { wrong.stop() }
        let (status, report) = try await wrong.pollOnce()
        #expect(status == 1)
        let error = try #require(report["error"]?.stringValue)
        #expect(error.contains("authentication failed") && error.contains("JWT"))
        #expect(!error.contains("PRIVATE KEY"))
    }

    @Test("poll-once refuses to write while another process polls the state directory; --dry-run still runs")
    func pollOnceRespectsThePollerLock() async throws {
        let e = try GitHubE2E()
        defer { e.stop() }
        _ = e.emulator.createIssue(title: "locked", at: e.base)
        try FileManager.default.createDirectory(atPath: e.dir.file("state"), withIntermediateDirectories: true)
        // Stands in for a running `deltahook run` (a separate process: flock locks are per open file).
        var held = try PollerLock.acquire(directory: e.dir.file("state"))
        #expect(held != nil)
        let refused = try await e.run(["poll-once", "--connection", "octo"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("--dry-run"))
        let dry = try await e.run(["poll-once", "--connection", "octo", "--dry-run"])
        #expect(dry.status == 0)
        held = nil
        let written = try await e.run(["poll-once", "--connection", "octo"])
        #expect(written.status == 0)
        #expect(written.stdout.contains("ticket.created"))
    }

    @Test("poll-once without --json prints one line per object and one per event with its changed fields")
    func humanOutput() async throws {
        let e = try GitHubE2E()
        defer { e.stop() }
        let issue = e.emulator.createIssue(title: "human", at: e.base)
        let first = try await e.run(["poll-once", "--connection", "octo"])
        #expect(first.status == 0)
        #expect(first.stdout.hasPrefix("octo/issues: 1 page, 1 records (0 unchanged), 1 event (ticket.created 1)"))
        #expect(first.stdout.contains("initial sync"))
        #expect(first.stdout.contains("ticket.created  record \(issue.id)"))
        e.emulator.updateIssue(1, at: e.base + 3) { $0.labels = ["triage"] }
        let second = try await e.run(["poll-once", "--connection", "octo", "--object", "issues"])
        #expect(second.stdout.contains("ticket.updated  record \(issue.id)  changed: labels"))
        let dry = try await e.run(["poll-once", "--connection", "octo", "--dry-run"])
        #expect(dry.status == 0)
        let unknown = try await e.run(["poll-once", "--connection", "nope"])
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("configured: octo"))
    }
}
