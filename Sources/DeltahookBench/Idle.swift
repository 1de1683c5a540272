// `DeltahookBench idle …` (Scripts/bench-idle, issue 17 item 4): what a daemon with many configured connections
// costs while nothing changes. One GitHub emulator with an empty repository serves CONNECTIONS connections (distinct
// connection ids, one `issues` object each, all on the same repository), polled every INTERVAL seconds: the first poll
// of each is answered 200 with an empty page and a weak ETag, later ones 304 (If-None-Match). The real release
// `deltahook run` runs as a child; its CPU (user + sys of all threads, /proc/PID/stat), VmRSS and VmHWM
// (/proc/PID/status) come from EndToEndBench.ProcessMeter. The emulator and an idle receiver run in THIS process.
// Not a test: it prints numbers, it asserts nothing.
//
//   warm-up   until every connection's first poll has arrived, then WARMUP seconds (default: one interval + 5 s,
//             so the 304 round is under way and start-up work is over)
//   measure   MEASURE seconds: CPU % of one core = CPU seconds / wall seconds × 100; requests/s seen by the emulator
import Core
import Crypto
import Emulators
import Foundation
import Glibc
import Store

enum IdleBench {
    struct Options {
        var deltahook = ".build/release/deltahook"
        var connections = 100
        var interval = 30
        var warmup: Int?
        var measure = 60

        static let usage = """
            usage: DeltahookBench idle --deltahook PATH [--connections N] [--interval SECONDS] [--warmup SECONDS]
                                       [--measure SECONDS]
            """

        init(_ arguments: [String]) throws {
            var rest = BenchArguments(arguments, usage: Self.usage)
            while let argument = rest.next() {
                switch argument {
                case "--deltahook": deltahook = try rest.value(argument)
                case "--connections": connections = try rest.number(argument)
                case "--interval": interval = try rest.number(argument)
                case "--warmup": warmup = try rest.number(argument)
                case "--measure": measure = try rest.number(argument)
                default: throw rest.unknown(argument)
                }
            }
        }
    }

    static func run(_ arguments: [String]) async throws {
        let options = try Options(arguments)
        let directory = try BenchScratch.prepare(deltahook: options.deltahook, label: "idle")
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let token = "ghp_benchtoken"
        let github = try GitHubEmulator(options: .init(tokens: [token], rateLimit: 10_000_000))
        defer { github.stop() }
        let secret = try StandardWebhooks.generateSecret()
        let receiver = try ReceiverEmulator(secrets: [secret], keepBodies: false, verifySignatures: true)
        defer { receiver.stop() }

        let configPath = directory + "/config.json"
        try Data(configJSON(directory: directory, github: github.baseURL, receiver: receiver.url,
                            connections: options.connections, interval: options.interval).utf8)
            .write(to: URL(fileURLWithPath: configPath))
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
        let meter = EndToEndBench.ProcessMeter(pid: process.processIdentifier)
        let monitor = try await Monitor.open(sqlitePath: directory + "/state/" + StateStore.fileName, postgres: nil,
                                             processes: [process], logDirectory: directory)
        defer { monitor.close() }
        let loadBefore = EndToEndBench.loadAverage()

        try await monitor.waitUntil("every connection's first poll", timeout: .seconds(120)) { _ in
            github.arrivedListRequests >= options.connections
        }
        let warmup = options.warmup ?? options.interval + 5
        log("idle: \(options.connections) connections polled once; warm-up \(warmup) s, then \(options.measure) s measured")
        try await Task.sleep(for: .seconds(warmup))
        try Monitor.checkAlive([process], logDirectory: directory)

        let requestsBefore = github.requests.count
        let cpu0 = meter.cpuSeconds()
        let t0 = ContinuousClock.now
        var rssSamples: [Double] = []
        while ContinuousClock.now - t0 < .seconds(options.measure) {
            try await Task.sleep(for: .seconds(1))
            rssSamples.append(meter.rssMiB())
        }
        let cpu = meter.cpuSeconds() - cpu0
        let wall = (ContinuousClock.now - t0).seconds
        try Monitor.checkAlive([process], logDirectory: directory)
        let window = github.requests.dropFirst(requestsBefore)
        let peak = meter.peakRSSMiB()
        let rssNow = meter.rssMiB()
        let listRequests = window.filter { $0.path.hasSuffix("/issues") }
        var byStatus: [Int: Int] = [:]
        for request in window { byStatus[request.status, default: 0] += 1 }
        let statuses = byStatus.keys.sorted().map { "\($0): \(byStatus[$0] ?? 0)" }.joined(separator: ", ")
        let events = try monitor.count("events")
        ClusterBench.stopNodes([process])

        let lines = [
            "machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; load average \(loadBefore) at start, "
                + "\(EndToEndBench.loadAverage()) at end",
            "\(options.connections) connections (one issues object each, empty repository), interval \(options.interval) s; "
                + "warm-up \(warmup) s after every first poll; measured \(format(wall)) s",
            "daemon CPU: \(format(cpu)) s = \(format3(cpu / wall * 100)) % of one core",
            "daemon RSS (VmRSS): \(format(rssNow)) MiB at end, \(format(rssSamples.max() ?? .nan)) MiB max of 1 s samples; "
                + "VmHWM (peak since start) \(format(peak)) MiB",
            "emulator saw \(window.count) requests (\(format(Double(window.count) / wall)) /s), "
                + "\(listRequests.count) issue listings (\(format(Double(listRequests.count) / wall)) /s); status \(statuses)",
            "events stored \(events); deliveries received \(receiver.receivedCount)",
        ]
        print(lines.joined(separator: "\n"))
    }

    static func configJSON(directory: String, github: String, receiver: String, connections: Int, interval: Int) -> String {
        let list: [JSONValue] = (0..<connections).map { index in
            [
                "id": .string("idle-\(String(index).leftPadded(3))"), "provider": "github", "base_url": .string(github),
                "auth": ["type": "token", "token": ["env": "DELTAHOOK_BENCH_GITHUB_TOKEN"]],
                "objects": [["name": "issues", "repository": "octo-org/hello", "model": "ticket",
                             "interval": .string("\(interval)s"), "page_size": 100, "initial_sync": "emit"]],
            ]
        }
        let config: JSONValue = .object(JSONObject([
            ("state_directory", .string(directory + "/state")), ("log_level", "warning"), ("shutdown_timeout", "10s"),
            ("connections", .array(list)),
            ("subscribers", [[
                "id": "bench", "url": .string(receiver), "secrets": [["env": "DELTAHOOK_BENCH_WEBHOOK_SECRET"]],
                "events": ["*"], "allow_insecure_http": true, "allow_private_network": true,
            ]]),
        ]))
        return config.serialized()
    }

    static func format(_ value: Double) -> String { String(format: "%.2f", value) }
    static func format3(_ value: Double) -> String { String(format: "%.3f", value) }
    static func log(_ text: String) { ClusterBench.log(text) }
}
