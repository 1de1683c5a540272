// `DeltahookBench cluster …` (Scripts/bench-cluster): changed-records/s and deliveries/s of real `deltahook run`
// processes — one on SQLite, then 1, 2 and 3 sharing one PostgreSQL database — against the same emulated REST
// provider and loopback receiver on this machine (issue 14 item 8). Not a test: it prints numbers, it asserts
// nothing about speed.
//
// Per row, everything is fresh: OBJECTS RestEmulator servers (one `rest` connection each, so the fair share of poll
// leases spreads them over the nodes) seeded with RECORDS/OBJECTS orders, a ReceiverEmulator that verifies every
// signature, a new store (SQLite directory or PostgreSQL database), and the nodes.
//
//   warm-up (excluded)  the silent initial sync of every record (snapshots == RECORDS), the poll leases spread
//                       evenly over the nodes, then 10 changed records per object delivered end to end
//   round (RUNS times)  every record of every object changed at once at t0 (a new status and updated_at); then
//                         changed-records/s = RECORDS ÷ (event rows committed − t0)
//                         deliveries/s      = RECORDS ÷ (last signed POST acknowledged − t0)
//                       both include waiting for the next poll cycle (interval 1 s, the minimum) — the latency a
//                       user sees; the row shows the median of the rounds
//
// Counts come from outside the nodes: COUNT(*) of `events` through a read-only connection every 50 ms, and the
// receiver's request count. A round ends only when the store also shows no pending delivery (results durable).
import Core
import Crypto
import Emulators
import Foundation
import Glibc
import PostgresStore
import Store

enum ClusterBench {
    struct Options {
        var deltahook = ".build/release/deltahook"
        var records = 20_000
        var objects = 6
        var runs = 3
        var nodes: [Int] = [1, 2, 3]
        /// libpq keyword string of the server's `postgres` database; nil skips the PostgreSQL rows.
        var postgres: String?
        var maxInFlight = 64

        static let usage = """
            usage: DeltahookBench cluster --deltahook PATH [--records N] [--objects K] [--runs R] [--nodes 1,2,3]
                                          [--postgres "host=DIR port=P user=U dbname=postgres"] [--max-in-flight M]
            """

        init(_ arguments: [String]) throws {
            var rest = BenchArguments(arguments, usage: Self.usage)
            while let argument = rest.next() {
                switch argument {
                case "--deltahook": deltahook = try rest.value(argument)
                case "--records": records = try rest.number(argument)
                case "--objects": objects = try rest.number(argument)
                case "--runs": runs = try rest.number(argument)
                case "--max-in-flight": maxInFlight = try rest.number(argument)
                case "--postgres": postgres = try rest.value(argument)
                case "--nodes":
                    let text = try rest.value(argument)
                    let parsed = text.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
                    guard !parsed.isEmpty else { throw BenchFailure("--nodes: \"\(text)\" is not a list like 1,2,3") }
                    nodes = parsed
                default: throw rest.unknown(argument)
                }
            }
            guard records >= objects * 10 else { throw BenchFailure("--records must be at least 10 per object") }
        }
    }

    /// One table row: a backend and node count, with every round's figures.
    struct RowResult {
        var backend: String
        var nodes: Int
        var changedPerSecond: [Double] = []
        var deliveriesPerSecond: [Double] = []
        var wallSeconds: [Double] = []
        var duplicates = 0
        var rejected = 0
    }

    static func run(_ arguments: [String]) async throws {
        let options = try Options(arguments)
        guard FileManager.default.isExecutableFile(atPath: options.deltahook) else {
            throw BenchFailure("\(options.deltahook) is not an executable; build it with swift build -c release")
        }
        var plan: [(backend: String, nodes: Int)] = [("sqlite", 1)]
        if options.postgres != nil { plan += options.nodes.map { ("postgres", $0) } }
        else { log("no --postgres: PostgreSQL rows skipped") }
        var results: [RowResult] = []
        for (index, row) in plan.enumerated() {
            log("row \(index + 1)/\(plan.count): \(row.backend), \(row.nodes) node(s)")
            results.append(try await runRow(backend: row.backend, nodes: row.nodes, index: index, options: options))
        }
        print(table(results, options: options))
    }

    // MARK: One row

    static func runRow(backend: String, nodes: Int, index: Int, options: Options) async throws -> RowResult {
        let directory = FileManager.default.temporaryDirectory.path + "/deltahook-bench-cluster-\(getpid())-\(index)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let perObject = options.records / options.objects
        let records = perObject * options.objects
        let emulators = try (0..<options.objects).map { _ in try RestEmulator(pagination: .page) }
        defer { emulators.forEach { $0.stop() } }
        let seeded = Date().addingTimeInterval(-3600)
        for (e, emulator) in emulators.enumerated() {
            for i in 0..<perObject {
                emulator.upsert(.init(id: Int64(e * perObject + i), status: "open",
                                      updatedAt: seeded.addingTimeInterval(Double(i) / 1000), note: "seeded"))
            }
        }
        let secret = try StandardWebhooks.generateSecret()
        let receiver = try ReceiverEmulator(secrets: [secret], keepBodies: false, verifySignatures: true)
        defer { receiver.stop() }

        var storeURL: String?
        if backend == "postgres" {
            guard let admin = options.postgres else { throw BenchFailure("no --postgres") }
            let name = "bench_cluster_\(getpid())_\(index)"
            let connection = try PGConnection(url: admin, applicationName: "deltahook-bench")
            try connection.executeScript("CREATE DATABASE \(name)")
            storeURL = admin.split(separator: " ").filter { !$0.hasPrefix("dbname=") }.joined(separator: " ")
                + " dbname=\(name)"
        }

        var environment = ProcessInfo.processInfo.environment
        environment["DELTAHOOK_BENCH_REST_TOKEN"] = "rest-emulator-token"
        environment["DELTAHOOK_BENCH_WEBHOOK_SECRET"] = secret
        if let storeURL { environment["DELTAHOOK_BENCH_PG_URL"] = storeURL }
        var processes: [Process] = []
        defer { stopNodes(processes) }
        for node in 0..<nodes {
            let config = configJSON(directory: directory, node: node, postgres: storeURL != nil,
                                    emulators: emulators, receiver: receiver.url, maxInFlight: options.maxInFlight)
            let configPath = directory + "/config-\(node).json"
            try Data(config.utf8).write(to: URL(fileURLWithPath: configPath))
            let runtime = directory + "/run-\(node)"
            try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
            var nodeEnvironment = environment
            nodeEnvironment["RUNTIME_DIRECTORY"] = runtime
            let logPath = directory + "/node-\(node).log"
            guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
                throw BenchFailure("cannot create \(logPath)")
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: options.deltahook)
            process.arguments = ["run", "--config", configPath]
            process.environment = nodeEnvironment
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            try process.run()
            processes.append(process)
        }

        let monitor = try await Monitor.open(sqlitePath: storeURL == nil ? directory + "/state/" + StateStore.fileName : nil,
                                             postgres: storeURL, processes: processes, logDirectory: directory)
        var result = RowResult(backend: backend, nodes: nodes)

        // Warm-up: baseline, leases spread, a few changes delivered end to end.
        let warmStart = ContinuousClock.now
        try await monitor.waitUntil("the silent initial sync of \(records) records", timeout: .seconds(600)) {
            try $0.count("snapshots") >= records
        }
        let share = (options.objects + nodes - 1) / nodes
        try await monitor.waitUntil("poll leases spread over \(nodes) node(s)", timeout: .seconds(120)) { db in
            guard nodes > 1 else { return true }
            let owners = try db.leaseOwners()
            return Set(owners.values).count == nodes && owners.count == options.objects
                && Dictionary(grouping: owners.values, by: { $0 }).values.allSatisfy { $0.count <= share }
        }
        var round = 0
        change(emulators, perObject: perObject, limit: 10, status: "warm-up")
        var expected = 10 * options.objects
        try await monitor.waitRound(events: expected, receiver: receiver, timeout: .seconds(300))
        log("  warm-up done in \(format((ContinuousClock.now - warmStart).seconds)) s")

        for _ in 0..<options.runs {
            round += 1
            let t0 = ContinuousClock.now
            change(emulators, perObject: perObject, limit: perObject, status: "round-\(round)")
            expected += records
            let times = try await monitor.waitRound(events: expected, receiver: receiver, timeout: .seconds(1800),
                                                    since: t0)
            let eventsSeconds = (times.events - t0).seconds
            let deliveredSeconds = (times.delivered - t0).seconds
            result.changedPerSecond.append(Double(records) / eventsSeconds)
            result.deliveriesPerSecond.append(Double(records) / deliveredSeconds)
            result.wallSeconds.append((times.durable - t0).seconds)
            log("  round \(round): events after \(format(eventsSeconds)) s, acknowledged after "
                + "\(format(deliveredSeconds)) s, durable after \(format((times.durable - t0).seconds)) s")
        }
        let received = receiver.received
        result.rejected = received.filter { !$0.accepted }.count
        result.duplicates = received.count - Set(received.compactMap(\.webhookID)).count
        stopNodes(processes)
        processes = []
        monitor.close()
        return result
    }

    /// Changes the first `limit` orders of every emulator: a new status and `updated_at` now.
    static func change(_ emulators: [RestEmulator], perObject: Int, limit: Int, status: String) {
        let now = Date()
        for (e, emulator) in emulators.enumerated() {
            for i in 0..<limit {
                emulator.upsert(.init(id: Int64(e * perObject + i), status: status,
                                      updatedAt: now.addingTimeInterval(Double(i) / 1_000_000), note: status))
            }
        }
    }

    /// SIGTERM (drain and leave the cluster), then SIGKILL after 30 s.
    static func stopNodes(_ processes: [Process]) {
        for process in processes where process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(30)
        for process in processes {
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }

    static func configJSON(directory: String, node: Int, postgres: Bool, emulators: [RestEmulator], receiver: String,
                           maxInFlight: Int) -> String {
        let connections: [JSONValue] = emulators.enumerated().map { e, emulator in
            [
                "id": .string("bench-\(e)"), "provider": "rest", "base_url": .string(emulator.baseURL),
                "auth": ["type": "token", "token": ["env": "DELTAHOOK_BENCH_REST_TOKEN"]],
                "objects": [[
                    "name": "orders", "interval": "1s", "page_size": 1000, "initial_sync": "silent",
                    "reconcile_every": "6h",
                    "request": ["path": .string(emulator.pathTemplate), "records": "data", "id_field": "id",
                                "cursor_field": "updated_at", "cursor_format": "rfc3339",
                                "pagination": ["style": "page", "start": 1]],
                ]],
            ]
        }
        var config: [(String, JSONValue)] = [
            ("state_directory", .string(directory + "/state")), ("log_level", "warning"), ("shutdown_timeout", "10s"),
            ("connections", .array(connections)),
            ("subscribers", [[
                "id": "bench", "url": .string(receiver), "secrets": [["env": "DELTAHOOK_BENCH_WEBHOOK_SECRET"]],
                "max_in_flight": .integer(Int64(maxInFlight)), "allow_insecure_http": true,
                "allow_private_network": true,
            ]]),
        ]
        if postgres {
            config.append(("store", ["backend": "postgres", "url": ["env": "DELTAHOOK_BENCH_PG_URL"],
                                     "lease_ttl": "10s", "node_id": .string("bench-node-\(node)")]))
        }
        return JSONValue.object(JSONObject(config)).serialized()
    }

    // MARK: Output

    static func table(_ results: [RowResult], options: Options) -> String {
        var lines = [
            "records per round: \(options.records / options.objects * options.objects) over \(options.objects) objects; "
                + "rounds: \(options.runs) (median shown); max_in_flight \(options.maxInFlight); poll interval 1s",
            pad("backend", 10) + pad("nodes", 7) + pad("records", 9) + pad("changed-records/s", 19)
                + pad("deliveries/s", 14) + pad("wall s", 8) + "duplicates  rejected",
        ]
        for row in results {
            lines.append(pad(row.backend, 10) + pad("\(row.nodes)", 7)
                + pad("\(options.records / options.objects * options.objects)", 9)
                + pad("\(Int(median(row.changedPerSecond)))", 19) + pad("\(Int(median(row.deliveriesPerSecond)))", 14)
                + pad(format(median(row.wallSeconds)), 8) + pad("\(row.duplicates)", 12) + "\(row.rejected)")
        }
        lines.append("""
            changed-records/s: records ÷ (all event rows committed − change at the provider); deliveries/s: records ÷
            (last signed POST acknowledged − change); wall: change → no delivery pending in the store. Each includes
            the wait for the next 1 s poll cycle. Warm-up (initial sync, lease spread, 10 changes/object) excluded.
            """)
        return lines.joined(separator: "\n")
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    static func format(_ seconds: Double) -> String { String(format: "%.2f", seconds) }

    static func log(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }
}

/// A read-only view of the nodes' store from outside them, and the liveness of the node processes.
final class Monitor {
    private let database: any SQLDatabase
    private let store: StateStore
    private let processes: [Process]
    private let logDirectory: String

    private init(database: any SQLDatabase, processes: [Process], logDirectory: String) {
        self.database = database
        self.store = StateStore(backend: database)
        self.processes = processes
        self.logDirectory = logDirectory
    }

    /// Opens the store once the first node has created it (SQLite: the file with its schema).
    static func open(sqlitePath: String?, postgres: String?, processes: [Process], logDirectory: String) async throws
        -> Monitor {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            do {
                let database: any SQLDatabase
                if let sqlitePath {
                    database = try Database(path: sqlitePath, mode: .readOnly)
                } else if let postgres {
                    database = try PostgresDatabase(url: postgres, poolSize: 1, readOnly: true)
                } else {
                    throw BenchFailure("no store")
                }
                let monitor = Monitor(database: database, processes: processes, logDirectory: logDirectory)
                _ = try monitor.count("events")
                return monitor
            } catch {
                try checkAlive(processes, logDirectory: logDirectory)
                guard ContinuousClock.now < deadline else { throw BenchFailure("the store never opened: \(error)") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func close() {}

    func count(_ table: String) throws -> Int {
        try database.read { db in try db.queryOne("SELECT COUNT(*) FROM \(table)") { $0.int(0) } } ?? 0
    }

    /// (connection, object) → owner of every unexpired poll lease.
    func leaseOwners() throws -> [String: String] {
        var owners: [String: String] = [:]
        for lease in try store.pollLeases() where !lease.expired { owners[lease.connection + "/" + lease.object] = lease.owner }
        return owners
    }

    func pendingCount() throws -> Int { try store.pendingCount() }

    /// The stored watermark of (connection, object), nil before the first committed page.
    func watermark(connection: String, object: String) throws -> Date? {
        try store.cursor(connection: connection, object: object)?.watermark
    }

    func waitUntil(_ what: String, timeout: Duration, _ done: (Monitor) throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try !done(self) {
            try Self.checkAlive(processes, logDirectory: logDirectory)
            guard ContinuousClock.now < deadline else { throw BenchFailure("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits until `events` event rows exist, the receiver has answered that many requests, and nothing is pending;
    /// returns when each happened first.
    @discardableResult
    func waitRound(events: Int, receiver: ReceiverEmulator, timeout: Duration, since: ContinuousClock.Instant = .now)
        async throws -> (events: ContinuousClock.Instant, delivered: ContinuousClock.Instant,
                         durable: ContinuousClock.Instant) {
        let deadline = since + timeout
        var eventsAt: ContinuousClock.Instant?
        var deliveredAt: ContinuousClock.Instant?
        while true {
            let now = ContinuousClock.now
            if eventsAt == nil, try count("events") >= events { eventsAt = now }
            if deliveredAt == nil, receiver.receivedCount >= events { deliveredAt = now }
            if let eventsAt, let deliveredAt, try pendingCount() == 0 {
                return (eventsAt, deliveredAt, ContinuousClock.now)
            }
            try Self.checkAlive(processes, logDirectory: logDirectory)
            guard now < deadline else {
                throw BenchFailure("timed out: \(try count("events")) of \(events) events, \(receiver.receivedCount) "
                                   + "requests, \(try pendingCount()) pending")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// A node that exited is a failed run: its log tail says why.
    static func checkAlive(_ processes: [Process], logDirectory: String) throws {
        for (node, process) in processes.enumerated() where !process.isRunning {
            let log = (try? String(contentsOfFile: logDirectory + "/node-\(node).log", encoding: .utf8)) ?? ""
            throw BenchFailure("node \(node) exited with status \(process.terminationStatus):\n"
                               + log.split(separator: "\n").suffix(20).joined(separator: "\n"))
        }
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
