// Issue 14 under chaos: 2 real `deltahook run` nodes on one PostgreSQL database, emulated providers whose records
// change during the test, one verifying receiver — and a node killed mid-scan, killed mid-burst of deliveries,
// paused past its lease, or the database restarted under them. After each: every change delivered, duplicates
// only under the same webhook-id, per-record order kept, and a dead or paused owner's object taken over within
// lease_ttl + one interval (+ a margin: a bound, not a speed check). Timings are printed for the record.
import Core
import Emulators
import Foundation
import Glibc
import Store
import Synchronization
import TestSupport
import Testing

/// Whether the chaos suite can run (outside the suite type: its own trait cannot refer to it).
enum ClusterChaosAvailability {
    /// Checked once; the reason is printed, since a silently skipped chaos suite proves nothing.
    static let available: Bool = {
        if let reason = PostgresTestSupport.unavailableReason {
            FileHandle.standardError.write(Data("ClusterChaosTests skipped: \(reason)\n".utf8))
            return false
        }
        return true
    }()
}

@Suite("Cluster chaos: several daemons on one PostgreSQL", .serialized,
       .enabled(if: ClusterChaosAvailability.available, "PostgreSQL is not available here"))
struct ClusterChaosTests {

    private func note(_ text: String) {
        FileHandle.standardError.write(Data("[cluster-chaos] \(text)\n".utf8))
    }

    /// Arms shop `shop`'s next page-2 request (a scan of several pages, after page 1 was committed or is being
    /// committed) to send `signal` to `pid` before the page is answered; returns when it fired.
    private func armMidScan(_ harness: ClusterHarness, shop: Int, signal: Int32, pid: pid_t)
        -> Shared<ContinuousClock.Instant?>
    {
        let fired = Shared<ContinuousClock.Instant?>(nil)
        harness.shops[shop].betweenPages(.init(matches: { $0.target.contains("page=2") }, run: { _ in
            kill(pid, signal)
            fired.value.withLock { $0 = .now }
        }))
        return fired
    }

    @Test("SIGKILL of the lease owner mid-scan: the survivor takes the object over within the bound; all delivered")
    func killOwnerMidScan() async throws {
        let started = ContinuousClock.now
        let harness = try ClusterHarness(label: "kill_scan", shops: 3)
        defer { harness.shutdown() }
        harness.seed(recordsPerShop: 4)
        try harness.startAll()
        #expect(await harness.waitForAllDelivered(timeout: .seconds(30)), "initial sync: \(harness.undelivered())\n\(harness.logs)")
        let leases = await harness.waitForLeases(count: 3)
        let victimLease = try #require(leases.first { $0.connection == "shop0" }, "no lease for shop0\n\(harness.logs)")
        let victim = victimLease.owner
        let victimProcess = try #require(harness.process(victim))
        let victimObjects = leases.filter { $0.owner == victim }.map(\.connection)

        let fired = armMidScan(harness, shop: 0, signal: SIGKILL, pid: victimProcess.process.processIdentifier)
        // Six changed records at page_size 2: a scan of three pages, killed when it asks for page 2.
        for record in Int64(1)...6 { harness.change(shop: 0, record: record) }
        let mutator = harness.startMutator(records: 6)
        #expect(await Wait.until(timeout: .seconds(15)) { fired.value.withLock { $0 } != nil },
                "the owner never asked for page 2\n\(harness.logs)")
        let killedAt = try #require(fired.value.withLock { $0 })
        #expect(await victimProcess.waitForExit(timeout: .seconds(5)) != nil)

        var takeovers: [String] = []
        for connection in victimObjects {
            let takeover = await harness.waitForTakeover(connection, from: victim, since: killedAt)
            let found = try #require(takeover, "\(connection) was never taken over\n\(harness.logs)")
            #expect(found.after < harness.takeoverBound, "\(connection) taken over after \(found.after)")
            takeovers.append("\(connection) by \(found.owner) after \(found.after)")
        }
        try await Task.sleep(for: .seconds(3))
        mutator.cancel()
        _ = await mutator.value
        #expect(await harness.waitForAllDelivered(), "after the kill: \(harness.undelivered())\n\(harness.logs)")
        let survivor = try #require(harness.nodeIDs.first { $0 != victim }.flatMap(harness.process))
        #expect(survivor.process.isRunning)
        let tally = harness.verifyDeliveries()
        note("kill mid-scan: victim \(victim) held \(victimObjects); takeovers: \(takeovers); \(tally); "
             + "test took \(started.duration(to: .now))")
    }

    @Test("SIGKILL of a node mid-burst of deliveries to a slow receiver: at least once, same webhook-id, in order")
    func killNodeMidBurst() async throws {
        let started = ContinuousClock.now
        let harness = try ClusterHarness(label: "kill_burst", shops: 2)
        defer { harness.shutdown() }
        harness.receiver.setDefault(ReceiverReply(status: 204).delayed(.milliseconds(1500)))
        harness.seed(recordsPerShop: 30)
        // Node a alone first, so it certainly holds claims in flight when it dies; b joins, then a is killed.
        let victim = "a"
        let victimProcess = try harness.start(victim)
        #expect(await Wait.until(timeout: .seconds(30)) { harness.receiver.receivedCount >= 8 },
                "no burst of deliveries\n\(harness.logs)")
        try harness.start("b")
        try await Task.sleep(for: .milliseconds(500))
        let receivedAtKill = harness.receiver.receivedCount
        victimProcess.signal(SIGKILL)
        let killedAt = ContinuousClock.now
        #expect(await victimProcess.waitForExit(timeout: .seconds(5)) != nil)
        // More changes while the survivor alone polls and delivers.
        for record in Int64(1)...5 { harness.change(shop: 0, record: record); harness.change(shop: 1, record: record) }
        var takeovers: [String] = []
        for connection in ["shop0", "shop1"] {
            let takeover = await harness.waitForTakeover(connection, from: victim, since: killedAt)
            let found = try #require(takeover, "\(connection) was never taken over\n\(harness.logs)")
            #expect(found.after < harness.takeoverBound, "\(connection) taken over after \(found.after)")
            takeovers.append("\(connection) after \(found.after)")
        }
        // A claim of the dead node is due again after the subscriber timeout (2 s) + the dispatcher's fixed 30 s
        // lease margin: the records it held wait that long (head-of-record order).
        #expect(await harness.waitForAllDelivered(timeout: .seconds(60)),
                "after the kill: \(harness.undelivered())\n\(harness.logs)")
        let deliveredAfter = killedAt.duration(to: .now)
        let tally = harness.verifyDeliveries()
        note("kill mid-burst: \(receivedAtKill) webhooks received when \(victim) was killed; takeovers: \(takeovers); "
             + "\(tally); all delivered \(deliveredAfter) after the kill; test took \(started.duration(to: .now))")
    }

    @Test("SIGSTOP of the owner past lease_ttl, SIGCONT after the takeover: fencing drops its writes")
    func pauseOwnerPastLease() async throws {
        let started = ContinuousClock.now
        let harness = try ClusterHarness(label: "pause", shops: 2, logLevel: "debug")
        defer { harness.shutdown() }
        harness.seed(recordsPerShop: 4)
        try harness.startAll()
        #expect(await harness.waitForAllDelivered(timeout: .seconds(30)), "initial sync: \(harness.undelivered())\n\(harness.logs)")
        let leases = await harness.waitForLeases(count: 2)
        let before = try #require(leases.first { $0.connection == "shop0" }, "no lease for shop0\n\(harness.logs)")
        let victim = before.owner
        let victimProcess = try #require(harness.process(victim))
        let victimLogBefore = victimProcess.stderr.count

        // The cursor of shop0 must never move backwards: a stale owner's write would rewind it.
        let watermarks = Shared<[Date]>([])
        let sampler = Task {
            while !Task.isCancelled {
                if let mark = harness.cursorWatermark(connection: "shop0") {
                    watermarks.value.withLock { if $0.last != mark { $0.append(mark) } }
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        defer { sampler.cancel() }

        // Paused mid-scan: page 2 of shop0 is answered while the owner sleeps; it wakes holding it.
        let fired = armMidScan(harness, shop: 0, signal: SIGSTOP, pid: victimProcess.process.processIdentifier)
        for record in Int64(1)...6 { harness.change(shop: 0, record: record) }
        #expect(await Wait.until(timeout: .seconds(15)) { fired.value.withLock { $0 } != nil },
                "the owner never asked for page 2\n\(harness.logs)")
        let stoppedAt = try #require(fired.value.withLock { $0 })
        let mutator = harness.startMutator(records: 6)
        let takeover = try #require(await harness.waitForTakeover("shop0", from: victim, since: stoppedAt),
                                    "shop0 was never taken over\n\(harness.logs)")
        #expect(takeover.after < harness.takeoverBound, "taken over after \(takeover.after)")
        #expect(takeover.token > before.token, "the new owner must hold a newer fencing token")
        // The new owner delivers what changed while the old one sleeps (a fixed set: waiting for "all delivered"
        // while changes keep coming chases a moving target on a loaded machine).
        mutator.cancel()
        _ = await mutator.value
        #expect(await harness.waitForAllDelivered(timeout: .seconds(30)), "while paused: \(harness.undelivered())")
        victimProcess.signal(SIGCONT)
        let afterWake = harness.startMutator(records: 6)
        let fenced = await Wait.until(timeout: .seconds(15), interval: .milliseconds(100)) {
            let log = String(victimProcess.stderr.dropFirst(victimLogBefore))
            return log.contains("poll cycle abandoned: the object's poll lease was lost")
                || log.contains("poll lease lost: another node polls this object now")
        }
        let wokenLog = String(victimProcess.stderr.dropFirst(victimLogBefore))
        #expect(fenced, "the woken node never noticed it lost the lease\n\(harness.logs)")
        try await Task.sleep(for: .seconds(3))
        afterWake.cancel()
        _ = await afterWake.value
        #expect(await harness.waitForAllDelivered(), "after SIGCONT: \(harness.undelivered())\n\(harness.logs)")
        sampler.cancel()
        let marks = watermarks.value.withLock { $0 }
        let rewinds = zip(marks, marks.dropFirst()).filter { $0.1 < $0.0 }
        #expect(rewinds.isEmpty, "shop0's cursor moved backwards: \(rewinds)")
        #expect(victimProcess.process.isRunning, "the woken node must keep running")
        let tally = harness.verifyDeliveries()
        note("pause past lease: victim \(victim) (token \(before.token)) stopped mid-scan; shop0 taken over by "
             + "\(takeover.owner) (token \(takeover.token)) after \(takeover.after); woken node logged abandoned="
             + "\(wokenLog.contains("poll cycle abandoned")) lost=\(wokenLog.contains("poll lease lost")) "
             + "skipped=\(wokenLog.contains("poll cycle skipped")); \(marks.count) cursor advances, none backwards; "
             + "\(tally); test took \(started.duration(to: .now))")
    }

    @Test("PostgreSQL restarted under load: the daemons survive and every change is delivered")
    func databaseRestart() async throws {
        let started = ContinuousClock.now
        let server = try PostgresServer.start()
        defer { server.stop() }
        let url = try server.createDatabase("chaos_restart")
        let harness = try ClusterHarness(label: "restart", shops: 2, databaseURL: url)
        defer { harness.shutdown() }
        harness.seed(recordsPerShop: 6)
        try harness.startAll()
        #expect(await harness.waitForAllDelivered(timeout: .seconds(30)), "initial sync: \(harness.undelivered())\n\(harness.logs)")
        _ = await harness.waitForLeases(count: 2)
        let mutator = harness.startMutator(records: 6)
        try await Task.sleep(for: .seconds(2))
        let restartBegan = ContinuousClock.now
        // Blocking (pg_ctl): off the cooperative pool, whose threads keep the emulators' clients moving.
        try await Task.detached { try server.restart() }.value
        let restartTook = restartBegan.duration(to: .now)
        let receivedAtRestart = harness.receiver.receivedCount
        try await Task.sleep(for: .seconds(3))
        mutator.cancel()
        _ = await mutator.value
        #expect(await harness.waitForAllDelivered(), "after the restart: \(harness.undelivered())\n\(harness.logs)")
        let recovered = restartBegan.duration(to: .now)
        for node in harness.nodeIDs {
            #expect(harness.process(node)?.process.isRunning == true, "node \(node) died\n\(harness.logs)")
        }
        let leases = await harness.waitForLeases(count: 2)
        #expect(leases.count == 2, "leases after the restart: \(leases)")
        let tally = harness.verifyDeliveries()
        note("database restart: pg_ctl restart took \(restartTook); \(receivedAtRestart) webhooks before; all delivered "
             + "\(recovered) after it began; \(tally); test took \(started.duration(to: .now))")
    }

    @Test("NetSuite max_concurrency 2 across two nodes: the account never sees more than 2 requests in flight")
    func netSuiteConcurrencyAcrossNodes() async throws {
        let started = ContinuousClock.now
        let tables = ["customer", "vendor", "employee", "item"]
        let zone = try #require(TimeZone(identifier: "America/Los_Angeles"))
        let netsuite = try NetSuiteEmulator(options: .init(timeZone: zone, concurrencyLimit: 2,
                                                           responseDelay: .milliseconds(150)))
        let harness = try ClusterHarness(label: "netsuite", shops: 0, netsuite: netsuite, netsuiteTables: tables)
        defer { harness.shutdown() }
        let base = Date().addingTimeInterval(-600)
        for (index, table) in tables.enumerated() {
            for id in Int64(1)...5 {
                netsuite.upsert(table, id: id, modifiedAt: base.addingTimeInterval(Double(index * 10) + Double(id)),
                                fields: [("companyname", .text("\(table)-\(id)"))])
            }
        }
        try harness.startAll()
        // Both nodes poll the account: the four objects are shared out (two each).
        var owners: Set<String> = []
        let shared = await Wait.until(timeout: .seconds(30), interval: .milliseconds(100)) {
            owners = Set((harness.pollLeases() ?? []).filter { !$0.expired && $0.connection == "ns" }.map(\.owner))
            return owners.count == 2
        }
        #expect(shared, "both nodes should poll the NetSuite account; owners: \(owners)\n\(harness.logs)")
        let delivered = await Wait.until(timeout: .seconds(30), interval: .milliseconds(100)) {
            Set(harness.deliveries.filter { $0.connection == "ns" }.map { "\($0.object)/\($0.recordID)" }).count
                >= tables.count * 5
        }
        #expect(delivered, "NetSuite rows not all delivered\n\(harness.logs)")
        // Keep both nodes polling a while longer (each cycle is several slow queries per object).
        try await Task.sleep(for: .seconds(5))
        let stats = netsuite.stats
        #expect(stats.maxObservedConcurrency <= 2, "the account saw \(stats.maxObservedConcurrency) requests in flight")
        #expect(stats.concurrencyRejections == 0, "\(stats.concurrencyRejections) requests over the account's limit")
        #expect(stats.requests > 20, "too few requests to prove anything: \(stats.requests)")
        note("netsuite: owners \(owners.sorted()); \(stats.requests) requests, peak in flight "
             + "\(stats.maxObservedConcurrency), \(stats.concurrencyRejections) rejections; "
             + "test took \(started.duration(to: .now))")
    }
}

/// A lock-protected value shared with emulator hooks and sampling tasks (a `Mutex` alone cannot be captured).
final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
}
