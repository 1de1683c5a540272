// `deltahook bench-delivery`: the delivery throughput benchmark of docs/DESIGN.md §9, run by Scripts/bench-delivery.
// Everything is real except the provider: a durable store in a temp directory, the dispatcher with signing,
// the SSRF check and batched result writes, libcurl keep-alive, and the receiver emulator on 127.0.0.1.
// Printed beside it: the loopback limit (the same client POSTing the same bodies with no store and no
// dispatcher) measured in the same run.
import Core
import Crypto
import Delivery
import Emulators
import Foundation
import HTTPClient
import Store
import Synchronization
import Glibc

struct BenchDeliveryCommand: Command {
    static let name = "bench-delivery"
    static let summary = "Benchmark: signed deliveries/s and enqueue→POST latency to a loopback receiver"
    static let options: [OptionSpec] = [
        .value("--events", "N", "events per phase (default 20000)"),
        .value("--max-in-flight", "M", "concurrent POSTs (default 64)"),
        .flag("--no-verify", "the receiver does not check signatures (measure the sender alone)"),
        .value("--keep", "DIR", "keep the store in DIR (then try `deltahook deliveries list --state-directory DIR`)"),
        .flag("--json", "machine-readable results"),
    ]
    static let details = """
        Phase 1 (loopback limit): the HTTP client alone POSTs N bodies to the receiver, M at a time.
        Phase 2 (throughput): N events committed in pages of 1000, the dispatcher drains them; deliveries/s
        counts until every result is durable in the store.
        Phase 3 (latency when healthy): events committed in small pages at half the phase-2 rate (the rate
        issue 17's p99 target is stated at); p50/p99 of commit → the receiver seeing the POST.
        """

    let events: Int
    let maxInFlight: Int
    let verify: Bool
    let keep: String?
    let json: Bool
    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        events = try StoreCLI.positiveInt(try arguments.option("--events"), option: "--events", default: 20_000)
        maxInFlight = try StoreCLI.positiveInt(try arguments.option("--max-in-flight"), option: "--max-in-flight",
                                                  default: 64)
        verify = !arguments.flag("--no-verify")
        keep = try arguments.option("--keep")
        json = arguments.flag("--json")
        self.context = context
    }

    func run() async throws -> Int32 {
        let directory = keep ?? (FileManager.default.temporaryDirectory.path + "/deltahook-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if keep == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let secret = try StandardWebhooks.generateSecret()
        let receiver = try ReceiverEmulator(secrets: [secret], keepBodies: false, verifySignatures: verify)
        defer { receiver.stop() }
        let client = try CurlHTTPClient(configuration: .init(maxCachedConnections: maxInFlight * 2,
                                                             userAgent: "deltahook/\(DeltahookVersion.current)"))
        defer { client.shutdown() }
        let out = context.output

        // Phase 1: loopback limit.
        let sample = WebhookSigner.body(for: Self.event(0, now: Date()), includeRaw: false)
        let cpu0 = Self.cpuSeconds()
        let limitRate = try await loopbackLimit(client: client, url: receiver.url, body: sample, count: events)
        let limitPerCPU = Double(events) / max(0.001, Self.cpuSeconds() - cpu0)
        receiver.clearReceived()
        out.err("loopback limit: \(Int(limitRate)) requests/s\n")

        // Phase 2: throughput.
        let store: any StateStoring = try StateStore(path: directory + "/" + StateStore.fileName)
        let dispatcher = Dispatcher(
            store: store, transport: client,
            options: Dispatcher.Options(userAgent: "deltahook/\(DeltahookVersion.current)",
                                        storePollInterval: .milliseconds(200), claimBatch: 1024))
        guard let url = URL(string: receiver.url) else { throw CommandFailure("bad receiver URL") }
        dispatcher.setSubscribers([SubscriberSettings(
            id: "bench", url: url, secrets: [try StandardWebhooks.Secret(secret)],
            limits: .init(timeout: .seconds(15), maxInFlight: maxInFlight),
            network: .init(allowInsecureHTTP: true, allowPrivateNetwork: true))])
        let cpu1 = Self.cpuSeconds()
        let start = ContinuousClock.now
        var next = 0
        while next < events {
            let page = (next..<min(events, next + 1000)).map { Self.event($0, now: Date()) }
            _ = try store.commitPage(PageCommit(connection: "bench", object: "o",
                                                events: page.map { OutgoingEvent(event: $0, subscribers: ["bench"]) },
                                                now: Date()))
            dispatcher.notifyNewEvents()
            next += page.count
        }
        let enqueued = ContinuousClock.now - start
        try await waitDurable(store: store, timeout: .seconds(600))
        let elapsed = ContinuousClock.now - start
        let rate = Double(events) / elapsed.seconds
        let ratePerCPU = Double(events) / max(0.001, Self.cpuSeconds() - cpu1)
        let received = receiver.received
        let okCount = received.filter { verify ? $0.accepted : $0.answered2xx }.count
        out.err("throughput: \(Int(rate)) deliveries/s (\(events) events, enqueue took \(DurationText.format(enqueued)))\n")

        // Phase 3: latency at a sustainable rate.
        receiver.clearReceived()
        let latencyEvents = min(events, 10_000)
        let targetRate = max(100, rate / 2)
        let pageSize = max(1, Int(targetRate / 100))  // a page every 10 ms
        var commitTimes: [String: Date] = [:]
        var n = events
        let phaseStart = ContinuousClock.now
        var sent = 0
        while sent < latencyEvents {
            let page = (n..<(n + min(pageSize, latencyEvents - sent))).map { Self.event($0, now: Date()) }
            let now = Date()
            _ = try store.commitPage(PageCommit(connection: "bench", object: "o",
                                                events: page.map { OutgoingEvent(event: $0, subscribers: ["bench"]) },
                                                now: now))
            dispatcher.notifyNewEvents()
            for event in page { commitTimes[event.id] = now }
            n += page.count
            sent += page.count
            let due = phaseStart + .seconds(Double(sent) / targetRate)
            if due > ContinuousClock.now { try await Task.sleep(until: due, clock: .continuous) }
        }
        try await waitDurable(store: store, timeout: .seconds(600))
        var latencies: [Double] = []
        for request in receiver.received {
            guard let id = request.webhookID, let committed = commitTimes[id] else { continue }
            latencies.append(request.receivedAt.timeIntervalSince(committed) * 1000)
        }
        latencies.sort()
        func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
        }
        await dispatcher.shutdown(deadline: .seconds(10))

        let result: JSONValue = [
            "events": .integer(Int64(events)), "max_in_flight": .integer(Int64(maxInFlight)),
            "receiver_verifies": .bool(verify),
            "loopback_limit_per_second": .integer(Int64(limitRate)),
            "deliveries_per_second": .integer(Int64(rate)),
            "loopback_requests_per_cpu_second": .integer(Int64(limitPerCPU)),
            "deliveries_per_cpu_second": .integer(Int64(ratePerCPU)),
            "accepted": .integer(Int64(okCount)), "requests": .integer(Int64(received.count)),
            "latency_phase_rate_per_second": .integer(Int64(targetRate)),
            "latency_p50_ms": .double((percentile(0.50) * 10).rounded() / 10),
            "latency_p99_ms": .double((percentile(0.99) * 10).rounded() / 10),
        ]
        if json {
            out.out(result.serialized() + "\n")
        } else {
            out.out("""
                loopback limit (client alone):   \(Int(limitRate)) requests/s  (\(Int(limitPerCPU)) per CPU-second)
                delivery throughput (durable):   \(Int(rate)) deliveries/s  (\(Int(ratePerCPU)) per CPU-second; \
                \(okCount)/\(events) accepted, \(received.count) requests)
                (CPU-seconds include the receiver, which runs in this process; they do not depend on other load)
                enqueue→POST at \(Int(targetRate))/s:        p50 \(String(format: "%.1f", percentile(0.5))) ms, \
                p99 \(String(format: "%.1f", percentile(0.99))) ms

                """)
        }
        return okCount == events ? ExitCode.ok : ExitCode.failure
    }

    static func event(_ n: Int, now: Date) -> ChangeEvent {
        let record: JSONValue = ["id": .string("rec\(n)"), "number": .string("INC\(1_000_000 + n)"),
                                 "status": "in_progress", "short_description": "Printer on floor 3 is jammed again"]
        return ChangeEvent(
            id: "evt_bench_\(UUID().uuidString.prefix(8))_\(n)", model: "ticket", kind: .updated,
            subject: .init(connection: "bench", provider: "servicenow", object: "incident", recordID: "rec\(n)"),
            occurredAt: now, detectedAt: now,
            content: .init(record: record, changes: ["status": FieldChange(from: "open", to: "in_progress")],
                           raw: record))
    }

    /// User + system CPU time of this process so far.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    /// Waits until no delivery is pending. The count costs about 60 ns per pending row and runs on the store
    /// the dispatcher is using, so it is repeated after a pause proportional to what is left (the pending rows
    /// over 40 000/s, at least 5 ms, at most 250 ms): with 20 000 pending, counting every 5 ms took a third of a
    /// core from the run being measured, while near the end the pause, and so the overshoot, is still ~5 ms.
    private func waitDurable(store: any StateStoring, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let pending = try await store.perform { try $0.pendingCount() }
            if pending == 0 { return }
            guard ContinuousClock.now < deadline else { throw CommandFailure("deliveries still pending after \(timeout)") }
            try await Task.sleep(for: .milliseconds(min(250, max(5, pending / 40))))
        }
    }

    private func loopbackLimit(client: CurlHTTPClient, url: String, body: [UInt8], count: Int) async throws -> Double {
        let counter = BenchCounter()
        let headers: [(name: String, value: String)] = [("content-type", "application/json"), ("webhook-id", "evt_limit")]
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<maxInFlight {
                group.addTask {
                    while counter.value.wrappingAdd(1, ordering: .relaxed).oldValue < count {
                        _ = try await client.send(HTTPRequest(method: "POST", url: url, headers: headers, body: body,
                                                              timeout: .seconds(15)))
                    }
                }
            }
            try await group.waitForAll()
        }
        return Double(count) / (ContinuousClock.now - start).seconds
    }
}

/// A shared request counter for the loopback-limit workers.
private final class BenchCounter: Sendable {
    let value = Atomic<Int>(0)
}
