// Issue 16 (many tenants): one file per connection in connections.d, with the real binary. 50 connections in 50
// files poll one RestEmulator (each connection's requests carry `tenant=cNN`, so the emulator's request log tells
// them apart); a SIGHUP after adding 5, changing 3 and removing 2 files changes exactly those connections — the
// changed ones restart at once with their new request, the removed ones stop, the others keep their schedule (no
// gap, no extra poll) — and a broken file keeps the old configuration running and names the file and JSON path.
import Core
import Emulators
import Foundation
import Glibc
import Synchronization
import TestSupport
import Testing

/// Arrival times of the emulator's requests, per tenant: sampled every 50 ms from its in-order request log
/// (coarse enough not to load a busy machine; the checks allow for it).
private final class RequestClock: Sendable {
    private let times = Mutex<[String: [ContinuousClock.Instant]]>([:])
    private let seen = Mutex(0)
    private let stop = Mutex(false)

    func run(_ rest: RestEmulator) async {
        while !stop.withLock({ $0 }) {
            let requests = rest.requests
            let now = ContinuousClock.now
            let start = seen.withLock { old in defer { old = requests.count }; return old }
            for request in requests.dropFirst(start) {
                guard let tenant = RequestClock.tenant(of: request.target) else { continue }
                let marked = tenant + (request.target.contains("v=2") ? "+v2" : "")
                times.withLock { $0[marked, default: []].append(now) }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    func finish() { stop.withLock { $0 = true } }

    static func tenant(of target: String) -> String? {
        guard let range = target.range(of: "tenant=") else { return nil }
        return String(target[range.upperBound...].prefix { $0.isLetter || $0.isNumber })
    }

    /// When each poll cycle of `tenant` started: a cycle sends a few requests back to back (pages, the id
    /// listing), so requests less than 1 s after the previous one belong to the same cycle.
    func arrivals(_ tenant: String) -> [ContinuousClock.Instant] {
        let all = times.withLock { $0[tenant] ?? [] }
        var cycles: [ContinuousClock.Instant] = []
        var last: ContinuousClock.Instant?
        for time in all {
            defer { last = time }
            if let last, time - last < .seconds(1) { continue }
            cycles.append(time)
        }
        return cycles
    }
}

@Suite("many tenants: one file per connection", .serialized)
struct ManyTenantsTests {
    static let token = "Bearer rest-emulator-token"

    static func id(_ n: Int) -> String { n < 10 ? "c0\(n)" : "c\(n)" }

    static func connection(_ n: Int, rest: RestEmulator, interval: String = "3s", marker: String = "") -> String {
        let id = id(n)
        return """
            {"id": "\(id)", "provider": "rest", "base_url": "\(rest.baseURL)",
             "auth": {"type": "header", "name": "Authorization", "value": {"env": "E2E_REST_TOKEN"}},
             "objects": [{"name": "orders", "interval": "\(interval)",
                          "request": {"path": "\(rest.pathTemplate)&tenant=\(id)\(marker)", "records": "data",
                                      "id_field": "id", "cursor_field": "updated_at",
                                      "pagination": \(rest.paginationConfig)}}]}
            """
    }

    @Test("connections list degrades to the files as written when a secret cannot be read, noting the problems")
    func listWithoutSecrets() throws {
        let directory = try ScratchDirectory("tenants-list")
        let rest = try RestEmulator()
        defer { rest.stop() }
        let configPath = directory.path + "/config.json"
        try FileManager.default.createDirectory(atPath: directory.path + "/connections.d", withIntermediateDirectories: true)
        try #"{"connections": [\#(ManyTenantsTests.connection(1, rest: rest))]}"#
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        try "[\(ManyTenantsTests.connection(2, rest: rest)), \(ManyTenantsTests.connection(3, rest: rest))]"
            .write(toFile: directory.path + "/connections.d/b.json", atomically: true, encoding: .utf8)
        // No E2E_REST_TOKEN: the operator's shell cannot resolve the secret.
        let listed = try runDeltahook(["connections", "list", "--config", configPath])
        #expect(listed.status == 0, "\(listed)")
        #expect(listed.stdout.contains("c01") && listed.stdout.contains(configPath), "\(listed.stdout)")
        #expect(listed.stdout.contains("c03") && listed.stdout.contains(directory.path + "/connections.d/b.json (2 problems)"),
                "\(listed.stdout)")
        #expect(listed.stderr.contains("$[1].auth.value") && listed.stderr.contains("E2E_REST_TOKEN"), "\(listed.stderr)")
    }

    @Test("50 files; reload adds 5, changes 3, removes 2 without touching the others; a broken file is refused")
    func reloadTouchesOnlyChangedFiles() async throws {
        let directory = try ScratchDirectory("tenants")
        let rest = try RestEmulator()
        defer { rest.stop() }
        rest.upsert(RestEmulator.Order(id: 1, status: "open", updatedAt: Date(timeIntervalSinceNow: -60)))
        let notify = try NotifySocket(directory: directory.path)
        let configPath = directory.path + "/config.json"
        let connectionsDirectory = directory.path + "/connections.d"
        try FileManager.default.createDirectory(atPath: connectionsDirectory, withIntermediateDirectories: true)
        try """
            {"state_directory": "\(directory.path)/state", "log_level": "info", "shutdown_timeout": "5s"}
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
        func write(_ n: Int, interval: String = "3s", marker: String = "") throws {
            try ManyTenantsTests.connection(n, rest: rest, interval: interval, marker: marker)
                .write(toFile: "\(connectionsDirectory)/\(ManyTenantsTests.id(n)).json", atomically: true, encoding: .utf8)
        }
        for n in 1...50 { try write(n) }
        // Ignored: hidden files and other extensions (an editor's swap file, a switched-off connection).
        try "{".write(toFile: connectionsDirectory + "/.c01.json.swp", atomically: true, encoding: .utf8)
        try ManyTenantsTests.connection(99, rest: rest)
            .write(toFile: connectionsDirectory + "/c99.json.disabled", atomically: true, encoding: .utf8)

        let environment = ["NOTIFY_SOCKET": notify.path, "E2E_REST_TOKEN": ManyTenantsTests.token,
                           "RUNTIME_DIRECTORY": directory.path]
        let listed = try runDeltahook(["connections", "list", "--json", "--config", configPath], environment: environment)
        let listing = try #require(try JSONValue.parse(listed.stdout).objectValue, "\(listed)")
        let rows = listing["connections"]?.arrayValue ?? []
        #expect(listed.status == 0 && listing["ok"]?.boolValue == true, "\(listed)")
        #expect(rows.count == 50, "\(listed.stdout)")
        #expect(rows.first?["id"]?.stringValue == "c01"
            && rows.first?["source"]?.stringValue == connectionsDirectory + "/c01.json", "\(listed.stdout)")

        let daemon = try DaemonProcess(arguments: ["run", "--config", configPath], environment: environment,
                                       directory: directory.path)
        defer { if daemon.process.isRunning { daemon.signal(SIGKILL); _ = daemon.waitForExit(timeout: .seconds(5)) } }
        let ready = await notify.waitFor(timeout: .seconds(30)) { $0.contains("READY=1") }
        #expect(ready?.contains("STATUS=50 connections") == true, "\(String(describing: ready)) \(daemon.stderr)")

        let clock = RequestClock()
        let sampler = Task { await clock.run(rest) }
        defer { clock.finish() }
        // Every tenant polled at least twice before the reload (a schedule to keep).
        let all = (1...50).map(ManyTenantsTests.id)
        let warm = await Wait.until(timeout: .seconds(25), interval: .milliseconds(100)) {
            all.allSatisfy { clock.arrivals($0).count >= 2 }
        }
        #expect(warm, "tenants without two polls: \(all.filter { clock.arrivals($0).count < 2 }) \(daemon.stderr.suffix(2000))")

        // Add c51…c55, change c01…c03 (their request gains v=2), remove c49 and c50.
        for n in 51...55 { try write(n) }
        for n in 1...3 { try write(n, marker: "&v=2") }
        for n in 49...50 { try FileManager.default.removeItem(atPath: "\(connectionsDirectory)/\(ManyTenantsTests.id(n)).json") }
        notify.drain()
        let reloadAt = ContinuousClock.now
        daemon.signal(SIGHUP)
        #expect(await daemon.waitForLog("configuration reloaded", timeout: .seconds(15)), "\(daemon.stderr.suffix(3000))")
        let reloadedAt = ContinuousClock.now
        let summary = daemon.stderr.split(separator: "\n").last { $0.contains("configuration reloaded") }.map(String.init) ?? ""
        #expect(summary.contains("added=c51,c52,c53,c54,c55"), "\(summary)")
        #expect(summary.contains("changed=c01,c02,c03"), "\(summary)")
        #expect(summary.contains("removed=c49,c50"), "\(summary)")
        #expect(summary.contains("connections=53"), "\(summary)")

        // Watch 7 s past the reload: two more intervals of every unchanged tenant.
        try await Task.sleep(for: .seconds(7))
        let settled = reloadedAt + .seconds(1)
        for n in 51...55 {
            #expect(clock.arrivals(ManyTenantsTests.id(n)).count >= 2, "added \(ManyTenantsTests.id(n)) polls")
        }
        for n in 1...3 {
            let id = ManyTenantsTests.id(n)
            // Restarted at once (start jitter < 1 s) with the new request; the old one is never sent again.
            let first = try #require(clock.arrivals(id + "+v2").first, "changed \(id) polled with its new request")
            #expect(first - reloadedAt < .seconds(2), "changed \(id) restarted at once: \(first - reloadedAt)")
            #expect(!clock.arrivals(id).contains { $0 > settled }, "changed \(id) sent its old request after the reload")
        }
        for n in 49...50 {
            let id = ManyTenantsTests.id(n)
            #expect(!clock.arrivals(id).contains { $0 > settled }, "removed \(id) still polled")
        }
        // Unchanged tenants: around the reload, consecutive polls stay about one interval (3 s ± 10 %) apart — no
        // extra poll and no gap (a lost schedule). A restarted loop would poll within 1 s of the reload, so
        // for every tenant that polled shortly before it the spacing would fall far below the interval; the bounds
        // leave room for the sampler's lateness on a loaded machine. (SchedulerTests prove it exactly.)
        var disturbed: [String] = []
        for id in (4...48).map(ManyTenantsTests.id) {
            let times = clock.arrivals(id).filter { $0 > reloadAt - .seconds(4) }
            #expect(times.count >= 3, "\(id) kept polling: \(times.count) polls")
            let spacings = zip(times.dropFirst(), times).map { $0 - $1 }
            if spacings.contains(where: { $0 < .milliseconds(1_500) || $0 > .milliseconds(5_000) }) {
                disturbed.append("\(id): \(spacings)")
            }
        }
        #expect(disturbed.isEmpty, "unchanged tenants whose schedule moved at the reload: \(disturbed)")
        #expect(!clock.arrivals("c04+v2").contains { _ in true })

        // status: the removed connections' data stays in the store, marked not configured.
        let (status, statusText) = try statusJSON(configPath: configPath)
        let objects = (status["objects"] as? [[String: Any]]) ?? []
        let removed = objects.filter { ["c49", "c50"].contains($0["connection"] as? String ?? "") }
        #expect(removed.count == 2 && removed.allSatisfy { $0["configured"] as? Bool == false
            && $0["last_success_at"] is String }, "\(statusText.prefix(3000))")
        #expect(objects.filter { $0["configured"] as? Bool == true }.count == 53)

        // A broken file: the reload is refused, the problem names the file and the JSON path, everything polls on.
        try #"{"id": "c10", "provider": "rest", "objects": [{"name": "orders", "interval": "soon"}]}"#
            .write(toFile: connectionsDirectory + "/c10.json", atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        #expect(await daemon.waitForLog("reload rejected", timeout: .seconds(15)))
        _ = await notify.waitFor(timeout: .seconds(10)) { $0.contains("READY=1") }
        let rejected = daemon.stderr.split(separator: "\n").filter { $0.contains("reload rejected") }
        #expect(rejected.contains { $0.contains(connectionsDirectory + "/c10.json") && $0.contains("$.objects[0].interval") },
                "\(rejected)")
        // check-config sees the same files: the problem with its file and path, in --json too.
        let checked = try runDeltahook(["check-config", "--json", "--config", configPath], environment: environment)
        let problems = (try JSONValue.parse(checked.stdout))["problems"]?.arrayValue ?? []
        #expect(checked.status == 78 && problems.contains {
            $0["file"]?.stringValue == connectionsDirectory + "/c10.json" && $0["path"]?.stringValue == "$.objects[0].interval"
        }, "\(checked)")
        let before = clock.arrivals("c10").count
        let addedBefore = clock.arrivals("c55").count
        try await Task.sleep(for: .seconds(4))
        #expect(clock.arrivals("c10").count > before, "the old c10 keeps polling")
        #expect(clock.arrivals("c55").count > addedBefore, "the rest of the old configuration keeps polling")
        #expect(daemon.process.isRunning)

        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0, "\(daemon.stderr.suffix(2000))")
        clock.finish()
        await sampler.value
        #expect(!daemon.stderr.contains(ManyTenantsTests.token))
    }
}
