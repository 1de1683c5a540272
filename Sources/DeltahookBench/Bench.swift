// deltahook-bench: the diff engine's throughput beside the local SQLite limit, measured in the same run
// (docs/DESIGN.md §9). Not a test: it prints numbers for people to compare; it asserts nothing about speed.
// `DeltahookBench soak …` runs the retention soak instead (Soak.swift, Scripts/soak); `DeltahookBench cluster …`
// the multi-node benchmark (Cluster.swift, Scripts/bench-cluster); `DeltahookBench e2e …` one real daemon's CPU per
// record against the GitHub emulator (E2E.swift, Scripts/bench-e2e).
//
//   phase 0  source only      — generating the synthetic pages (the cost every phase below includes)
//   phase 1  initial load     — silent initial sync: snapshot upserts + cursor per page, no events
//   phase 2  unchanged        — every record re-read with the same content: hash compare, no writes
//   phase 3  changed          — every record changed: snapshot upsert + event + delivery row per record
//   baseline raw SQLite       — batched prepared upserts of the same number of rows, random 32-hex keys,
//                               WAL, synchronous=NORMAL, 1000-row transactions, same file system
//   peak RSS                  — getrusage(RUSAGE_SELF).ru_maxrss; records are generated page by page, so it
//                               should not grow with the record count
import Core
import Crypto
import Engine
import Foundation
import Glibc
import Logging
import Store
import Synchronization

/// A provider of `count` synthetic ticket-like records, generated page by page (never held all at once).
/// Record i has source time base + i seconds and a 32-hex id; `version` changes every record's content.
final class SyntheticSource: ObjectSource {
    let descriptor: ObjectDescriptor
    let count: Int
    private let version = Mutex(0)
    private let base = Date(timeIntervalSince1970: 1_764_000_000)

    init(count: Int) {
        self.count = count
        descriptor = ObjectDescriptor(connection: "bench", provider: "synthetic", object: "incident", model: "record",
                                      volatileFields: ["sys_updated_on", "sys_mod_count"])
    }

    func bump() { version.withLock { $0 += 1 } }

    static func id(_ i: Int) -> String {
        // Deterministic, well-spread 32-hex ids (like ServiceNow sys_ids), without hashing cost per page.
        var x = UInt64(i) &* 0x9E37_79B9_7F4A_7C15
        x ^= x >> 29
        let y = (x &* 0xBF58_476D_1CE4_E5B9) ^ UInt64(i)
        return String(x, radix: 16).leftPadded(16) + String(y, radix: 16).leftPadded(16)
    }

    func record(_ i: Int, version v: Int) -> SourceRecord {
        let id = Self.id(i)
        let updated = base.addingTimeInterval(TimeInterval(i) + TimeInterval(v) * 1e6)
        let raw: JSONValue = .object(JSONObject([
            ("sys_id", .string(id)),
            ("number", .string("INC\(1_000_000 + i)")),
            ("short_description", .string("Printer on floor \(i % 40) jams (rev \(v))")),
            ("state", .string(String(1 + (i + v) % 7))),
            ("priority", .string(String(1 + i % 5))),
            ("assigned_to", .string(Self.id(i % 997))),
            ("category", .string(["hardware", "software", "network", "inquiry"][i % 4])),
            ("impact", .integer(Int64(i % 3 + 1))),
            ("active", .bool(i % 9 != 0)),
            ("sys_mod_count", .integer(Int64(v))),
            // Cheap stand-in for the formatted time (volatile, so its form does not matter to the diff).
            ("sys_updated_on", .string(String(Int64(updated.timeIntervalSince1970)))),
        ]))
        return SourceRecord(id: id, updatedAt: updated, raw: raw, record: raw)
    }

    /// Pages by record index (kept in the position's hints); ignores the lower bound so every phase reads
    /// every record, as a lookback re-read of the whole table would.
    func fetchDelta(_ request: DeltaRequest) async throws -> DeltaPage {
        let v = version.withLock { $0 }
        let start = request.after.flatMap { $0.hints["i"] }.flatMap { Int($0) }.map { $0 + 1 } ?? 0
        let end = min(count, start + request.pageSize)
        let records = (start..<end).map { record($0, version: v) }
        let next: ScanPosition? = end < count && !records.isEmpty
            ? ScanPosition(timestamp: records[records.count - 1].updatedAt ?? base, recordID: Self.id(end - 1),
                           hints: ["i": String(end - 1)])
            : nil
        return DeltaPage(records: records, next: next)
    }

    func fetchIDs(after token: String?, pageSize: Int) async throws -> IDPage { IDPage(ids: [], next: nil) }
    func fetchDeletions(since: Date?, after: ScanPosition?, pageSize: Int) async throws -> DeletionPage? { nil }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// Profiling only the changed phase: with BENCH_PERF_CTL=FIFO the bench writes `enable`/`disable` to a
/// `perf record --control fifo:FIFO -D -1` control FIFO around phase 3.
struct PerfControl {
    let path: String?
    func enable() { send("enable\n") }
    func disable() { send("disable\n") }
    private func send(_ command: String) {
        guard let path, let handle = FileHandle(forWritingAtPath: path) else { return }
        handle.write(Data(command.utf8))
        try? handle.close()
    }
}

func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024  // Linux: kilobytes
}

/// Process CPU time (user + system, all threads) in seconds: on a shared machine, records per CPU-second
/// says more about the code than wall time, which includes waiting for other processes.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

func rate(_ count: Int, _ duration: Duration) -> String {
    let perSecond = Double(count) / max(duration.seconds, 1e-9)
    return String(format: "%9.0f", perSecond)
}

/// SplitMix64 (Steele, Lea, Flood 2014): random keys for the baseline without a getrandom(2) system call per
/// 8 bytes, which SystemRandomNumberGenerator makes and which is no part of "the raw SQLite rate".
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Fills `rows` random 32-hex-key rows with a payload of about the size of an engine row, 1000 per
/// transaction, through one cached prepared upsert.
func rawBaseline(path: String, rows: Int, payload: Int, pragma: String?) throws -> Duration {
    let database = try Database(path: path)
    if let pragma { try database.withConnection { try $0.executeScript(pragma) } }
    try database.write { db in
        try db.executeScript("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT NOT NULL, ts INTEGER NOT NULL)")
    }
    var seed = SystemRandomNumberGenerator()
    var generator = SplitMix64(state: seed.next())
    let filler = String(repeating: "x", count: payload)
    let sql = "INSERT INTO t (k, v, ts) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v, ts = excluded.ts"
    let clock = ContinuousClock()
    return try clock.measure {
        var written = 0
        while written < rows {
            let batch = min(1000, rows - written)
            try database.write { db in
                for _ in 0..<batch {
                    let key = String(generator.next(), radix: 16).leftPadded(16)
                        + String(generator.next(), radix: 16).leftPadded(16)
                    _ = try db.execute(sql, [.text(key), .text(filler), .integer(Int64(written))])
                }
            }
            written += batch
        }
    }
}

@main
struct Bench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        if arguments.count > 1, arguments[1] == "soak" {
            try Soak.run(Array(arguments.dropFirst(2)))
            return
        }
        if arguments.count > 1, arguments[1] == "cluster" {
            do {
                try await ClusterBench.run(Array(arguments.dropFirst(2)))
            } catch let failure as BenchFailure {
                ClusterBench.log("bench-cluster: \(failure)")
                exit(1)
            }
            return
        }
        if arguments.count > 1, arguments[1] == "idle" {
            do {
                try await IdleBench.run(Array(arguments.dropFirst(2)))
            } catch let failure as BenchFailure {
                ClusterBench.log("bench-idle: \(failure)")
                exit(1)
            }
            return
        }
        if arguments.count > 1, arguments[1] == "e2e" {
            do {
                try await EndToEndBench.run(Array(arguments.dropFirst(2)))
            } catch let failure as BenchFailure {
                ClusterBench.log("bench-e2e: \(failure)")
                exit(1)
            }
            return
        }
        let count = arguments.count > 1 ? Int(arguments[1]) ?? 100_000 : 100_000
        let pageSize = arguments.count > 2 ? Int(arguments[2]) ?? 1000 : 1000
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let store = try StateStore(path: directory.appendingPathComponent(StateStore.fileName).path)
        // Experiment knob: BENCH_CACHE_MIB sets SQLite's page cache on both the store and the raw baseline
        // (SQLite's default is 2 MiB). Unset: both run with the store's defaults, like the daemon.
        let cacheMiB = ProcessInfo.processInfo.environment["BENCH_CACHE_MIB"].flatMap(Int.init)
        let cachePragma = cacheMiB.map { "PRAGMA cache_size = -\($0 * 1024)" }
        if let cacheMiB { try store.setPageCache(kibibytes: cacheMiB * 1024) }
        let source = SyntheticSource(count: count)
        let plan = ObjectPlan(descriptor: source.descriptor, interval: .seconds(60), lookback: .seconds(1),
                              reconcileEvery: nil, initialSync: .silent, pageSize: pageSize, useDeleteFeed: false)
        let runner = PollRunner(target: PollTarget(plan: plan, source: source), store: store,
                                router: { _ in ["bench-subscriber"] },
                                logger: Logger(level: .warning, sink: StderrSink(syslogPrefixes: false)))
        let clock = ContinuousClock()
        let profiler = PerfControl(path: ProcessInfo.processInfo.environment["BENCH_PERF_CTL"])
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first ?? "?"
        print("deltahook-bench: \(count) records, pages of \(pageSize), \(ProcessInfo.processInfo.activeProcessorCount) cores, "
              + "load average \(load) at start")

        // Phase 0: what generating the synthetic pages costs on its own.
        var cpu: [Double] = [cpuSeconds()]
        let sourceOnly = try await clock.measure {
            var position: ScanPosition? = nil
            repeat {
                let page = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: position, pageSize: pageSize))
                position = page.next
            } while position != nil
        }

        cpu.append(cpuSeconds())
        var initial = CycleReport(connection: "", object: "", dryRun: false)
        let loadTime = try await clock.measure { initial = try await runner.runCycle() }
        cpu.append(cpuSeconds())
        var unchanged = CycleReport(connection: "", object: "", dryRun: false)
        let unchangedTime = try await clock.measure { unchanged = try await runner.runCycle() }
        cpu.append(cpuSeconds())
        source.bump()
        var changed = CycleReport(connection: "", object: "", dryRun: false)
        profiler.enable()
        let changedTime = try await clock.measure { changed = try await runner.runCycle() }
        profiler.disable()
        cpu.append(cpuSeconds())
        guard initial.snapshotsWritten == count, unchanged.unchanged == count, changed.eventCount == count else {
            print("unexpected counts: load \(initial.snapshotsWritten), unchanged \(unchanged.unchanged), "
                  + "changed events \(changed.eventCount)")
            exit(1)
        }
        // Rows the changed phase wrote: snapshot + event + delivery per record, plus one cursor row per page.
        let changedRows = 3 * count + changed.pages
        let rawTime = try rawBaseline(path: directory.appendingPathComponent("raw.sqlite").path, rows: changedRows,
                                      payload: 300, pragma: cachePragma)
        cpu.append(cpuSeconds())
        // CPU seconds of phase i (0 source, 1 load, 2 unchanged, 3 changed, 4 raw).
        let phaseCPU = (0..<5).map { cpu[$0 + 1] - cpu[$0] }
        func perCPU(_ n: Int, _ i: Int) -> String { String(format: "%9.0f", Double(n) / max(phaseCPU[i], 1e-9)) }
        let rawRows = Double(changedRows) / rawTime.seconds
        let engineRows = Double(changedRows) / changedTime.seconds
        let net = max(changedTime.seconds - sourceOnly.seconds, 1e-9)

        if ProcessInfo.processInfo.environment["BENCH_COMPONENTS"] != nil {
            // Single-threaded costs of the pieces of one record's path, in microseconds per record.
            let differ = Differ(descriptor: source.descriptor)
            let page = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: pageSize))
            let ids = page.records.map(\.id)
            let rounds = 20
            func micros(_ duration: Duration, _ n: Int) -> String { String(format: "%.2f", duration.seconds * 1e6 / Double(n)) }
            let n = rounds * page.records.count
            let generate = try await clock.measure {
                for _ in 0..<rounds { _ = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: pageSize)) }
            }
            let oneShot = clock.measure { for _ in 0..<rounds { _ = page.records.map(differ.contentHash(of:)) } }
            let pageHash = clock.measure { for _ in 0..<rounds { _ = differ.contentHashes(of: page.records) } }
            let sample = page.records[0].raw
            let canonical = clock.measure {
                for _ in 0..<n { _ = sample.canonicalBytes(skipping: source.descriptor.volatileFields) }
            }
            let serialize = clock.measure { for _ in 0..<n { _ = sample.serialized() } }
            let text = sample.serialized()
            let parse = try clock.measure { for _ in 0..<n { _ = try JSONValue.parse(text) } }
            let bytes = sample.canonicalBytes()
            let digest = clock.measure { for _ in 0..<n { _ = Digest.sha256(bytes) } }
            let hasher = SHA256Hasher()
            let reused = clock.measure { for _ in 0..<n { _ = hasher.hexHash(bytes) } }
            let heads = try clock.measure {
                for _ in 0..<rounds { _ = try store.snapshotHeads(connection: "bench", object: "incident", ids: ids) }
            }
            let records = try clock.measure {
                for _ in 0..<rounds { _ = try store.snapshotRecords(connection: "bench", object: "incident", ids: ids) }
            }
            let full = try clock.measure {
                for _ in 0..<rounds { _ = try store.snapshots(connection: "bench", object: "incident", ids: ids) }
            }
            let hop = try await clock.measure { for _ in 0..<1000 { try await store.perform { _ in () } } }
            print("components, µs per record (\(bytes.count) canonical bytes, one thread unless noted): "
                  + "generate \(micros(generate, n)), canonical minus volatile \(micros(canonical, n)), "
                  + "serialize \(micros(serialize, n)), parse \(micros(parse, n)), sha256 one-shot \(micros(digest, n)), "
                  + "sha256 reused \(micros(reused, n)), content hash one-shot \(micros(oneShot, n)), "
                  + "page of content hashes (all cores) \(micros(pageHash, n)), heads \(micros(heads, n)), "
                  + "prior records \(micros(records, n)), full snapshots \(micros(full, n)); one store hop \(micros(hop, 1000))")
        }

        print("")
        print("phase                           time s   records/s   rows/s      per CPU-s   note")
        print(String(format: "source only (page generation)  %7.2f   ", sourceOnly.seconds) + rate(count, sourceOnly)
              + "           -   " + perCPU(count, 0) + " rec")
        print(String(format: "initial load (silent)          %7.2f   ", loadTime.seconds) + rate(count, loadTime)
              + String(format: "   %9.0f   ", Double(count + initial.pages) / loadTime.seconds) + perCPU(count, 1)
              + " rec   snapshot + cursor rows")
        print(String(format: "(a) unchanged re-read          %7.2f   ", unchangedTime.seconds) + rate(count, unchangedTime)
              + "           -   " + perCPU(count, 2) + " rec   hash compare, no writes (target >= 100000/s)")
        print(String(format: "(b) changed                    %7.2f   ", changedTime.seconds) + rate(count, changedTime)
              + String(format: "   %9.0f   ", engineRows) + perCPU(changedRows, 3)
              + " rows  snapshot + event + delivery per record")
        print(String(format: "    raw SQLite baseline        %7.2f           -   %9.0f   ", rawTime.seconds, rawRows)
              + perCPU(changedRows, 4) + " rows  \(changedRows) rows, 32-hex keys, WAL, NORMAL, 1000/tx")
        print(String(format: "    engine / raw (row writes)  %6.0f %%   (target >= 50 %%); net of page generation: %.0f %%; "
                     + "per CPU-second: %.0f %%",
                     100 * engineRows / rawRows, 100 * (Double(changedRows) / net) / rawRows,
                     100 * phaseCPU[4] / max(phaseCPU[3], 1e-9)))
        if let cachePragma { print("    (experiment: \(cachePragma) on both)") }
        print(String(format: "(c) peak RSS                   %7.1f MiB", peakRSSMiB()))
    }
}
