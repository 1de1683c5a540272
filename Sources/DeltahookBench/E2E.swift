// `DeltahookBench e2e …` (Scripts/bench-e2e, issue 17 item 1): what one record costs end to end, as a user pays
// for it — the CPU seconds of the real `deltahook run` process (a child of this one; user + sys of all its threads
// from /proc/PID/stat) while it syncs GitHub issues into signed deliveries. The GitHub emulator and the verifying
// receiver run in THIS process, so their CPU is not counted. Not a test: it prints numbers, it asserts nothing.
//
//   idle         the daemon started against an empty repository, first poll answered (its start-up excluded)
//   initial      RECORDS issues (~3 KB of JSON each as served, pages of 100) appear at once; initial_sync "emit":
//                every one becomes a signed delivery. Ends when the receiver has them all and nothing is pending.
//   changed      CHANGED issues get a new title (and updated_at, 100 per second); ends as above. Latency per record: the
//                receiver's arrival − the change at the emulator (includes the wait for the next 1 s poll cycle).
//   unchanged    every issue's updated_at (volatile for GitHub; 100 per second) moves and nothing else: a full re-read that
//                emits nothing. Ends when the stored cursor reaches the new updated_at.
//   trickle      TRICKLE single changes 150 ms apart: change → delivery latency when the daemon is not busy.
//
// Raw limits measured in the same run, on the same machine load, for comparison:
//   SQLite       batched prepared upserts of ~3 KB rows (rawBaseline, Bench.swift)
//   POST         loopback POSTs of a ~3 KB body through CurlHTTPClient (64 in flight) to a non-verifying receiver
//   JSON parse   the same issue pages (as served) parsed by JSONValue.parse and by Foundation's JSONSerialization
import Core
import Crypto
import Emulators
import Foundation
import Glibc
import HTTPClient
import Store

enum EndToEndBench {
    struct Options {
        var deltahook = ".build/release/deltahook"
        var records = 6_000
        var changed = 3_000
        var trickle = 40
        var maxInFlight = 64
        var bodyBytes = 1_400
        var skipLimits = false

        static let usage = """
            usage: DeltahookBench e2e --deltahook PATH [--records N] [--changed N] [--trickle N] [--max-in-flight M]
                                      [--body-bytes B] [--skip-limits]
            """

        init(_ arguments: [String]) throws {
            var rest = BenchArguments(arguments, usage: Self.usage)
            while let argument = rest.next() {
                switch argument {
                case "--deltahook": deltahook = try rest.value(argument)
                case "--records": records = try rest.number(argument, minimum: 0)
                case "--changed": changed = try rest.number(argument, minimum: 0)
                case "--trickle": trickle = try rest.number(argument, minimum: 0)
                case "--max-in-flight": maxInFlight = try rest.number(argument, minimum: 0)
                case "--body-bytes": bodyBytes = try rest.number(argument, minimum: 0)
                case "--skip-limits": skipLimits = true
                default: throw rest.unknown(argument)
                }
            }
            guard records > 0, changed <= records, trickle <= records, maxInFlight > 0 else {
                throw BenchFailure("need records > 0, changed ≤ records, trickle ≤ records\n\(Self.usage)")
            }
        }
    }

    /// CPU and peak memory of another process, from /proc (Linux).
    struct ProcessMeter {
        let pid: pid_t
        private let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

        init(pid: pid_t) { self.pid = pid }

        /// utime + stime of every thread so far, in seconds (10 ms resolution at the usual 100 Hz).
        func cpuSeconds() -> Double {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = text.lastIndex(of: ")") else { return .nan }
            // Fields after "pid (comm)": state is field 3, utime 14, stime 15.
            let fields = text[text.index(after: close)...].split(separator: " ")
            guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
            return (user + system) / ticksPerSecond
        }

        /// VmHWM: the peak resident set, in MiB.
        func peakRSSMiB() -> Double { statusMiB("VmHWM:") }

        /// VmRSS: the resident set now, in MiB.
        func rssMiB() -> Double { statusMiB("VmRSS:") }

        /// A "kB" line of /proc/PID/status (e.g. "VmHWM:"), in MiB; NaN when absent.
        private func statusMiB(_ field: String) -> Double {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return .nan }
            for line in text.split(separator: "\n") where line.hasPrefix(field) {
                let kib = line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? .nan
                return kib / 1024
            }
            return .nan
        }
    }

    struct Phase {
        var name: String
        var records: Int
        var cpu: Double
        var wall: Double
        var latencies: [Double] = []
    }

    static func run(_ arguments: [String]) async throws {
        let options = try Options(arguments)
        let directory = try BenchScratch.prepare(deltahook: options.deltahook, label: "e2e")
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let token = "ghp_benchtoken"
        let github = try GitHubEmulator(options: .init(tokens: [token], rateLimit: 10_000_000))
        defer { github.stop() }
        let secret = try StandardWebhooks.generateSecret()
        // Bodies kept: the record id of each delivery (for latency) is read from the body.
        let receiver = try ReceiverEmulator(secrets: [secret], keepBodies: true, verifySignatures: true)
        defer { receiver.stop() }

        let configPath = directory + "/config.json"
        try Data(configJSON(directory: directory, github: github.baseURL, receiver: receiver.url,
                            maxInFlight: options.maxInFlight).utf8).write(to: URL(fileURLWithPath: configPath))
        let runtime = directory + "/run"
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        environment["DELTAHOOK_BENCH_GITHUB_TOKEN"] = token
        environment["DELTAHOOK_BENCH_WEBHOOK_SECRET"] = secret
        environment["RUNTIME_DIRECTORY"] = runtime
        let logPath = directory + "/node-0.log"
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else { throw BenchFailure("cannot create \(logPath)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: options.deltahook)
        process.arguments = ["run", "--config", configPath]
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try process.run()
        defer { ClusterBench.stopNodes([process]) }
        let meter = ProcessMeter(pid: process.processIdentifier)
        let monitor = try await Monitor.open(sqlitePath: directory + "/state/" + StateStore.fileName, postgres: nil,
                                             processes: [process], logDirectory: directory)
        let loadBefore = loadAverage()

        // Idle: the first (empty) poll answered, then a moment for start-up work to settle.
        try await monitor.waitUntil("the first poll", timeout: .seconds(60)) { _ in github.arrivedListRequests >= 1 }
        try await Task.sleep(for: .seconds(2))
        let idleCPU0 = meter.cpuSeconds()
        try await Task.sleep(for: .seconds(3))
        let idlePerSecond = (meter.cpuSeconds() - idleCPU0) / 3

        var phases: [Phase] = []
        let body = String(repeating: "Steps to reproduce: open the printer tray, press print, watch it jam. ", count: 64)
            .prefix(options.bodyBytes)

        // Initial: every issue appears at once (whole seconds in the past, spread so pages have distinct times).
        let seeded = Date().addingTimeInterval(-86_400)
        var cpu0 = meter.cpuSeconds()
        var t0 = ContinuousClock.now
        for i in 0..<options.records {
            github.createIssue(title: "Printer on floor \(i % 40) jams", body: String(body), labels: ["bug", "printer"],
                               assignees: i % 3 == 0 ? ["hubot"] : [], at: seeded.addingTimeInterval(Double(i / 10)))
        }
        try await monitor.waitRound(events: options.records, receiver: receiver, timeout: .seconds(1800))
        phases.append(Phase(name: "initial", records: options.records, cpu: meter.cpuSeconds() - cpu0,
                            wall: (ContinuousClock.now - t0).seconds))
        log("initial: \(options.records) delivered")

        // Changed: a new title on the first CHANGED issues. Their updated_at values are spread 100 to a second (a page
        // per second), after the cursor but in the past: thousands of records in ONE second send GitHub's
        // same-second window walk (GitHubIssuesSource) down its slow path, and future stamps are re-read every cycle
        // until the clock reaches them (max_clock_skew) — neither is what this measures.
        var expected = options.records
        cpu0 = meter.cpuSeconds()
        t0 = ContinuousClock.now
        var changedAt: [String: Date] = [:]
        let changeTime = Date()
        let stampBase = seeded.addingTimeInterval(Double(options.records / 10) + 10)
        var latestStamp = stampBase
        for number in 1...Int64(max(1, options.changed)) where options.changed > 0 {
            let stamp = stampBase.addingTimeInterval(Double(number - 1) / 100)
            latestStamp = max(latestStamp, stamp)
            if let issue = github.updateIssue(number, at: stamp, { $0.title += " (changed)" }) {
                changedAt[String(issue.id)] = changeTime
            }
        }
        expected += options.changed
        let receivedBefore = receiver.receivedCount
        try await monitor.waitRound(events: expected, receiver: receiver, timeout: .seconds(1800))
        var changedPhase = Phase(name: "changed", records: options.changed, cpu: meter.cpuSeconds() - cpu0,
                                 wall: (ContinuousClock.now - t0).seconds)
        changedPhase.latencies = latencies(receiver.received.dropFirst(receivedBefore), changedAt: changedAt)
        phases.append(changedPhase)
        log("changed: \(options.changed) delivered")

        // Unchanged: updated_at alone moves (volatile), every issue re-read, nothing emitted. Spread like the changes,
        // after the latest updated_at so far.
        let touchBase = latestStamp.addingTimeInterval(2)
        cpu0 = meter.cpuSeconds()
        t0 = ContinuousClock.now
        for number in 1...Int64(options.records) {
            let stamp = touchBase.addingTimeInterval(Double(number - 1) / 100)
            latestStamp = max(latestStamp, stamp)
            github.updateIssue(number, at: stamp) { _ in }
        }
        let touchSecond = Date(timeIntervalSince1970: latestStamp.timeIntervalSince1970.rounded(.down))
        // Done when the emulator has served at least a full listing's worth of pages since the touch, then one more
        // 1 s cycle. (The stored cursor is not a usable signal here: it stayed short of the newest updated_at.)
        let pagesBefore = github.arrivedListRequests
        _ = touchSecond
        try await monitor.waitUntil("the unchanged re-read", timeout: .seconds(300)) { _ in
            github.arrivedListRequests - pagesBefore >= (options.records + 99) / 100 + 1
        }
        try await Task.sleep(for: .seconds(1.5))
        phases.append(Phase(name: "unchanged", records: options.records, cpu: meter.cpuSeconds() - cpu0,
                            wall: (ContinuousClock.now - t0).seconds))
        log("phases so far: " + phases.map { "\($0.name) \(format3($0.cpu * 1000 / Double(max($0.records, 1)))) ms CPU/record" }
            .joined(separator: ", "))
        let eventsAfterTouch = try monitor.count("events")
        log("unchanged: re-read (events now \(eventsAfterTouch), expected \(expected))")

        // Trickle: single changes while idle.
        var trickleAt: [String: Date] = [:]
        let trickleStart = receiver.receivedCount
        cpu0 = meter.cpuSeconds()
        t0 = ContinuousClock.now
        for k in 0..<options.trickle {
            let number = Int64(options.records - k)
            let at = Date()
            // updated_at past everything earlier (the cursor is there), one second each.
            let stamp = latestStamp.addingTimeInterval(1 + Double(k))
            if let issue = github.updateIssue(number, at: stamp, { $0.title += " (trickle)" }) { trickleAt[String(issue.id)] = at }
            try await Task.sleep(for: .milliseconds(150))
        }
        expected += options.trickle
        try await monitor.waitRound(events: expected, receiver: receiver, timeout: .seconds(600))
        var tricklePhase = Phase(name: "trickle", records: options.trickle, cpu: meter.cpuSeconds() - cpu0,
                                 wall: (ContinuousClock.now - t0).seconds)
        tricklePhase.latencies = latencies(receiver.received.dropFirst(trickleStart), changedAt: trickleAt)
        phases.append(tricklePhase)
        let peak = meter.peakRSSMiB()
        let received = receiver.received
        let rejected = received.filter { !$0.accepted }.count
        let duplicates = received.count - Set(received.compactMap(\.webhookID)).count
        ClusterBench.stopNodes([process])
        monitor.close()

        var lines = [
            "machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; load average \(loadBefore) at start, "
                + "\(loadAverage()) at end",
            "daemon idle: \(format(idlePerSecond * 1000)) ms CPU/s (1 s poll interval, empty repository)",
            pad("phase", 11) + pad("records", 9) + pad("CPU ms/record", 15) + pad("CPU s", 8) + pad("wall s", 8)
                + pad("records/s", 11) + "latency p50 / p99 ms",
        ]
        for phase in phases {
            let latency = phase.latencies.isEmpty ? "-"
                : "\(format(percentile(phase.latencies, 0.5) * 1000)) / \(format(percentile(phase.latencies, 0.99) * 1000))"
            lines.append(pad(phase.name, 11) + pad("\(phase.records)", 9)
                + pad(format3(phase.cpu * 1000 / Double(max(phase.records, 1))), 15) + pad(format(phase.cpu), 8)
                + pad(format(phase.wall), 8) + pad(format(Double(phase.records) / max(phase.wall, 1e-9)), 11) + latency)
        }
        lines.append("daemon peak RSS (VmHWM): \(format(peak)) MiB; deliveries received \(received.count), "
                     + "rejected \(rejected), duplicates \(duplicates)")
        print(lines.joined(separator: "\n"))

        if !options.skipLimits {
            print(try await limits(directory: directory, github: github, token: token, records: options.records))
        }
    }

    /// Receiver arrival − change time, for the first delivery of each changed record.
    static func latencies(_ received: ArraySlice<ReceivedWebhook>, changedAt: [String: Date]) -> [Double] {
        var seen = Set<String>()
        var result: [Double] = []
        for webhook in received {
            guard let id = webhook.recordID, let at = changedAt[id], seen.insert(id).inserted else { continue }
            result.append(webhook.receivedAt.timeIntervalSince(at))
        }
        return result
    }

    // MARK: Raw limits

    static func limits(directory: String, github: GitHubEmulator, token: String, records: Int) async throws -> String {
        var lines = ["raw limits in the same run (this process; CPU is this process's, emulator and receiver included):"]
        // SQLite: one row write per record and per event.
        let rows = records
        let cpuSQL = cpuSeconds()
        let sql = try rawBaseline(path: directory + "/raw.sqlite", rows: rows, payload: 3000, pragma: nil)
        lines.append("  SQLite upserts (3 KB rows, 1000/txn): \(rate(rows, sql).trimmingCharacters(in: .whitespaces)) rows/s, "
                     + "\(format3((cpuSeconds() - cpuSQL) * 1000 / Double(rows))) ms CPU/row")

        // Loopback POSTs.
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        let sink = try ReceiverEmulator(secrets: [try StandardWebhooks.generateSecret()], keepBodies: false,
                                        verifySignatures: false)
        defer { sink.stop() }
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: 3000)
        let posts = records
        let postStart = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            var sent = 0
            func next() {
                guard sent < posts else { return }
                sent += 1
                group.addTask {
                    _ = try await client.send(HTTPRequest(method: "POST", url: sink.url,
                                                          headers: [("Content-Type", "application/json")], body: payload))
                }
            }
            for _ in 0..<64 { next() }
            while try await group.next() != nil { next() }
        }
        lines.append("  loopback POSTs (3 KB, 64 in flight): "
                     + "\(rate(posts, ContinuousClock.now - postStart).trimmingCharacters(in: .whitespaces)) POSTs/s")

        // JSON parse of the pages as served.
        var pages: [[UInt8]] = []
        for page in 1...max(1, (records + 99) / 100) {
            let response = try await client.send(HTTPRequest(
                url: github.baseURL + "/repos/octo-org/hello/issues?state=all&sort=updated&direction=asc&per_page=100&page=\(page)",
                headers: [("Authorization", "Bearer \(token)"), ("Accept", "application/vnd.github+json")]))
            guard response.status == 200 else { throw BenchFailure("page \(page): HTTP \(response.status)") }
            pages.append(response.body)
        }
        let bytes = pages.reduce(0) { $0 + $1.count }
        var cpu0 = cpuSeconds()
        for page in pages { _ = try JSONValue.parse(page) }
        let ours = cpuSeconds() - cpu0
        cpu0 = cpuSeconds()
        for page in pages { _ = try JSONSerialization.jsonObject(with: Data(page)) }
        let foundation = cpuSeconds() - cpu0
        lines.append("  JSON parse of the \(pages.count) pages (\(format(Double(bytes) / Double(max(records, 1)) / 1024)) KB/record): "
                     + "JSONValue.parse \(format3(ours * 1000 / Double(records))) ms/record, "
                     + "JSONSerialization \(format3(foundation * 1000 / Double(records))) ms/record")
        return lines.joined(separator: "\n")
    }

    static func configJSON(directory: String, github: String, receiver: String, maxInFlight: Int) -> String {
        let config: JSONValue = .object(JSONObject([
            ("state_directory", .string(directory + "/state")), ("log_level", "warning"), ("shutdown_timeout", "10s"),
            ("connections", [[
                "id": "bench-github", "provider": "github", "base_url": .string(github),
                "auth": ["type": "token", "token": ["env": "DELTAHOOK_BENCH_GITHUB_TOKEN"]],
                "objects": [["name": "issues", "repository": "octo-org/hello", "model": "ticket", "interval": "1s",
                             "page_size": 100, "initial_sync": "emit"]],
            ]]),
            ("subscribers", [[
                "id": "bench", "url": .string(receiver), "secrets": [["env": "DELTAHOOK_BENCH_WEBHOOK_SECRET"]],
                "events": ["*"], "max_in_flight": .integer(Int64(maxInFlight)), "allow_insecure_http": true,
                "allow_private_network": true,
            ]]),
        ]))
        return config.serialized()
    }

    static func loadAverage() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3)
            .joined(separator: " ")
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }

    static func pad(_ text: String, _ width: Int) -> String { ClusterBench.pad(text, width) }
    static func format(_ value: Double) -> String { String(format: "%.2f", value) }
    static func format3(_ value: Double) -> String { String(format: "%.3f", value) }
    static func log(_ text: String) { ClusterBench.log(text) }
}
