// A cluster of real `deltahook run` processes on one PostgreSQL database (issue 14), for ClusterChaosTests:
// the same config on every node except `node_id`, the database URL passed as an env secret, emulated REST shops
// (one connection each, object `orders`) whose records the test changes, an optional NetSuite account, and one
// verifying receiver.
//
// Every change the test makes bumps the record's `note` to the next version number, so the receiver's log can be
// checked against the changes: each record's final version arrived, each (record, version) arrived under exactly
// one webhook-id, and each record's versions arrived in increasing order.
import Core
import Emulators
import Foundation
import Glibc
import PostgresStore
import Store
import Synchronization
import TestSupport
import Testing

let clusterWebhookSecret = "whsec_" + Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 7) }).base64EncodedString()

/// One delivery the receiver accepted, decoded.
struct ClusterDelivery {
    var webhookID: String
    var connection: String
    var object: String
    var recordID: String
    var type: String
    /// The record's `note` (the test's version counter); nil for records without one (NetSuite).
    var version: Int?
}

/// What ``ClusterHarness/verifyDeliveries()`` found, for the report.
struct DeliveryTally: CustomStringConvertible {
    var accepted = 0
    var distinctEvents = 0
    /// Accepted requests repeating a webhook-id already accepted (at-least-once redelivery).
    var duplicates = 0
    var changes = 0
    var storedEvents = 0
    var description: String {
        "\(changes) changes, \(storedEvents) committed events, \(accepted) accepted webhooks, \(distinctEvents) distinct "
            + "events, \(duplicates) same-id duplicates"
    }
}

final class ClusterHarness: @unchecked Sendable {
    static let restToken = "Bearer rest-emulator-token"

    let directory: ScratchDirectory
    let databaseURL: String
    let nodeIDs: [String]
    let leaseTTLSeconds: Int
    let intervalSeconds = 1
    let shops: [RestEmulator]
    let netsuite: NetSuiteEmulator?
    let netsuiteTables: [String]
    let receiver: ReceiverEmulator
    let logLevel: String
    private let lock = NSLock()
    private var processes: [String: DaemonProcess] = [:]
    /// connection -> record id -> latest version the test wrote.
    private var versions: [String: [Int64: Int]] = [:]
    private var store: StateStore?

    /// - Parameters:
    ///   - databaseURL: a fresh database; nil takes one from the run's shared server.
    init(label: String, nodes: [String] = ["a", "b"], shops: Int, leaseTTL: Int = 2, databaseURL: String? = nil,
         netsuite: NetSuiteEmulator? = nil, netsuiteTables: [String] = [], logLevel: String = "info") throws {
        directory = try ScratchDirectory("cluster-\(label)")
        if let databaseURL {
            self.databaseURL = databaseURL
        } else {
            self.databaseURL = try #require(try PostgresTestSupport.freshDatabaseURL(prefix: "chaos_\(label)"))
        }
        nodeIDs = nodes
        leaseTTLSeconds = leaseTTL
        self.shops = try (0..<shops).map { _ in try RestEmulator(token: Self.restToken) }
        self.netsuite = netsuite
        self.netsuiteTables = netsuiteTables
        receiver = try ReceiverEmulator(secrets: [clusterWebhookSecret])
        self.logLevel = logLevel
    }

    deinit { shutdown() }

    /// Stops every node (SIGCONT first: a stopped process cannot act on SIGTERM), then the emulators.
    func shutdown() {
        let running = lock.withLock { () -> [DaemonProcess] in
            defer { processes = [:] }
            return Array(processes.values)
        }
        for process in running where process.process.isRunning {
            process.signal(SIGCONT)
            process.signal(SIGTERM)
        }
        for process in running where process.process.isRunning {
            if process.waitForExit(timeout: .seconds(10)) == nil {
                process.signal(SIGKILL)
                _ = process.waitForExit(timeout: .seconds(5))
            }
        }
        for shop in shops { shop.stop() }
        netsuite?.stop()
        receiver.stop()
        lock.withLock { store = nil }
    }

    func connectionID(_ shop: Int) -> String { "shop\(shop)" }

    // MARK: Nodes

    func config(node: String) -> String {
        var connections = shops.enumerated().map { index, shop in
            """
            {"id": "\(connectionID(index))", "provider": "rest", "base_url": "\(shop.baseURL)",
             "auth": {"type": "header", "name": "Authorization", "value": {"env": "E2E_REST_TOKEN"}},
             "objects": [{"name": "orders", "interval": "\(intervalSeconds)s", "initial_sync": "emit", "page_size": 2,
                          "request": {"path": "\(shop.pathTemplate)", "records": "data", "id_field": "id",
                                      "cursor_field": "updated_at", "pagination": \(shop.paginationConfig)}}]}
            """
        }
        if let netsuite {
            let objects = netsuiteTables.map { #"{"name": "\#($0)", "interval": "1s", "initial_sync": "emit"}"# }
            connections.append("""
                {"id": "ns", "provider": "netsuite", "base_url": "\(netsuite.baseURL)", "account_id": "1234567_SB1",
                 "time_zone": "America/Los_Angeles", "max_concurrency": 2,
                 "auth": {"type": "tba", "consumer_key": {"env": "E2E_NS_CK"}, "consumer_secret": {"env": "E2E_NS_CS"},
                          "token_id": {"env": "E2E_NS_TID"}, "token_secret": {"env": "E2E_NS_TS"}},
                 "objects": [\(objects.joined(separator: ", "))]}
                """)
        }
        return """
            {"state_directory": "\(directory.path)/state-\(node)", "log_level": "\(logLevel)", "shutdown_timeout": "5s",
             "store": {"backend": "postgres", "url": {"env": "DELTAHOOK_PG_URL"}, "lease_ttl": "\(leaseTTLSeconds)s",
                       "node_id": "\(node)"},
             "connections": [\(connections.joined(separator: ",\n"))],
             "subscribers": [{"id": "crm", "url": "\(receiver.url)", "secrets": [{"env": "E2E_WEBHOOK_SECRET"}],
                              "events": ["*"], "include_raw": true, "timeout": "2s",
                              "allow_insecure_http": true, "allow_private_network": true}]}
            """
    }

    var environment: [String: String] {
        ["DELTAHOOK_PG_URL": databaseURL, "E2E_REST_TOKEN": Self.restToken, "E2E_WEBHOOK_SECRET": clusterWebhookSecret,
         "E2E_NS_CK": "ck-emulator", "E2E_NS_CS": "cs-emulator", "E2E_NS_TID": "token-emulator",
         "E2E_NS_TS": "ts-emulator"]
    }

    /// Starts (or restarts) `node`'s `deltahook run`.
    @discardableResult
    func start(_ node: String) throws -> DaemonProcess {
        let path = directory.path + "/config-\(node).json"
        try config(node: node).write(toFile: path, atomically: true, encoding: .utf8)
        let process = try DaemonProcess(arguments: ["run", "--config", path], environment: environment,
                                        directory: directory.path)
        lock.withLock { processes[node] = process }
        return process
    }

    func startAll() throws {
        for node in nodeIDs { try start(node) }
    }

    func process(_ node: String) -> DaemonProcess? { lock.withLock { processes[node] } }

    /// Every node's stderr, labelled, for failure messages (the tail only).
    var logs: String {
        nodeIDs.map { node in
            let text = process(node)?.stderr ?? ""
            return "--- node \(node) ---\n" + text.split(separator: "\n").suffix(25).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    // MARK: The store, read beside the nodes

    /// The lease rows, read through a store of the test's own (not a node: it never joins, so it fences nothing).
    /// Nil while the database is unreachable (a restart); the store is reopened on the next call.
    func pollLeases() -> [PollLeaseStatus]? {
        do {
            return try withStore { try $0.pollLeases() }
        } catch {
            lock.withLock { store = nil }
            return nil
        }
    }

    func cursorWatermark(connection: String, object: String = "orders") -> Date? {
        (try? withStore { try $0.cursor(connection: connection, object: object) })??.watermark
    }

    /// Every event the cluster committed, read from the store (nil while the database is unreachable).
    func storedEvents() -> [ChangeEvent]? {
        try? withStore { try $0.events(EventQuery(limit: 1_000_000)).map(\.event) }
    }

    private func withStore<T>(_ body: (StateStore) throws -> T) throws -> T {
        let open = try lock.withLock { () -> StateStore in
            if let store { return store }
            let opened = try PostgresBackend.openStore(url: databaseURL, poolSize: 1, readOnly: true)
            store = opened
            return opened
        }
        return try body(open)
    }

    /// The unexpired lease of (connection, object), nil when none.
    func liveLease(_ connection: String, object: String = "orders") -> PollLeaseStatus? {
        pollLeases()?.first { $0.connection == connection && $0.object == object && !$0.expired }
    }

    /// Waits until every (connection, object) lease is held, unexpired, by a node; returns them.
    func waitForLeases(count: Int, timeout: Duration = .seconds(20)) async -> [PollLeaseStatus] {
        var leases: [PollLeaseStatus] = []
        _ = await Wait.until(timeout: timeout, interval: .milliseconds(100)) {
            leases = (self.pollLeases() ?? []).filter { !$0.expired }
            return leases.count >= count
        }
        return leases
    }

    /// Waits until (connection, object)'s lease is unexpired under a node other than `dead`; the time from `since`.
    func waitForTakeover(_ connection: String, object: String = "orders", from dead: String,
                         since: ContinuousClock.Instant, timeout: Duration = .seconds(30)) async
        -> (owner: String, token: Int64, after: Duration)?
    {
        var found: PollLeaseStatus?
        let ok = await Wait.until(timeout: timeout, interval: .milliseconds(50)) {
            found = self.liveLease(connection, object: object).flatMap { $0.owner == dead ? nil : $0 }
            return found != nil
        }
        guard ok, let found else { return nil }
        return (found.owner, found.token, since.duration(to: .now))
    }

    /// The bound of the issue: lease_ttl + one interval + a generous margin for a loaded 2-core machine.
    var takeoverBound: Duration { .seconds(leaseTTLSeconds + intervalSeconds + 5) }

    // MARK: Changes

    /// Writes the next version of `record` in shop `shop` (updated now).
    @discardableResult
    func change(shop: Int, record: Int64) -> Int {
        let connection = connectionID(shop)
        let version = lock.withLock { () -> Int in
            let next = (versions[connection]?[record] ?? 0) + 1
            versions[connection, default: [:]][record] = next
            return next
        }
        shops[shop].upsert(RestEmulator.Order(id: record, status: "open", updatedAt: Date(), note: String(version)))
        return version
    }

    /// Creates records 1…count in every shop.
    func seed(recordsPerShop count: Int) {
        for shop in shops.indices {
            for record in 1...Int64(count) { change(shop: shop, record: record) }
        }
    }

    /// Changes a random record of a random shop every `period` until cancelled; `records` per shop exist.
    func startMutator(records: Int64, period: Duration = .milliseconds(150)) -> Task<Int, Never> {
        Task {
            var count = 0
            while !Task.isCancelled {
                change(shop: Int.random(in: 0..<shops.count), record: Int64.random(in: 1...records))
                count += 1
                try? await Task.sleep(for: period)
            }
            return count
        }
    }

    var changeCount: Int { lock.withLock { versions.values.reduce(0) { $0 + $1.values.reduce(0, +) } } }

    // MARK: Deliveries

    var deliveries: [ClusterDelivery] {
        receiver.accepted.compactMap { webhook in
            guard let id = webhook.webhookID, let body = try? JSONValue.parse(webhook.body),
                  let connection = body["data"]?["connection"]?.stringValue,
                  let object = body["data"]?["object"]?.stringValue,
                  let record = body["data"]?["record_id"]?.stringValue,
                  let type = body["type"]?.stringValue else { return nil }
            let version = (body["data"]?["raw"]?["note"]?.stringValue).flatMap { Int($0) }
            return ClusterDelivery(webhookID: id, connection: connection, object: object, recordID: record, type: type,
                                   version: version)
        }
    }

    /// Records whose latest version has not reached the receiver yet, as "connection/record@version".
    func undelivered() -> [String] {
        let expected = lock.withLock { versions }
        var seen: Set<String> = []
        for delivery in deliveries {
            if let version = delivery.version { seen.insert("\(delivery.connection)/\(delivery.recordID)@\(version)") }
        }
        var missing: [String] = []
        for (connection, records) in expected {
            for (record, version) in records where !seen.contains("\(connection)/\(record)@\(version)") {
                missing.append("\(connection)/\(record)@\(version)")
            }
        }
        return missing.sorted()
    }

    /// Waits until every record's latest version was delivered.
    func waitForAllDelivered(timeout: Duration = .seconds(45)) async -> Bool {
        await Wait.until(timeout: timeout, interval: .milliseconds(100)) { self.undelivered().isEmpty }
    }

    /// The delivery invariants of issue 14, recorded as expectations: each record's latest version delivered, each
    /// (record, version) under exactly one webhook-id (duplicates only as repeats of that id), and each record's
    /// versions in increasing order of arrival.
    @discardableResult
    func verifyDeliveries(sourceLocation: SourceLocation = #_sourceLocation) -> DeliveryTally {
        let all = deliveries
        var tally = DeliveryTally(accepted: all.count, changes: changeCount)
        let missing = undelivered()
        #expect(missing.isEmpty, "undelivered changes: \(missing.prefix(20))\n\(logs)", sourceLocation: sourceLocation)
        var idsPerChange: [String: Set<String>] = [:]
        var seenIDs: Set<String> = []
        var lastVersion: [String: (version: Int, id: String)] = [:]
        var outOfOrder: [String] = []
        for delivery in all {
            if !seenIDs.insert(delivery.webhookID).inserted { tally.duplicates += 1 }
            guard let version = delivery.version else { continue }
            let record = "\(delivery.connection)/\(delivery.recordID)"
            idsPerChange["\(record)@\(version)", default: []].insert(delivery.webhookID)
            if let last = lastVersion[record], version < last.version
                || (version == last.version && delivery.webhookID != last.id) {
                outOfOrder.append("\(record): \(last.version) then \(version)")
            }
            lastVersion[record] = (version, delivery.webhookID)
        }
        tally.distinctEvents = seenIDs.count
        let doubled = idsPerChange.filter { $0.value.count > 1 }.map { "\($0.key) under \($0.value.sorted())" }
        #expect(doubled.isEmpty, "one change delivered under several webhook-ids: \(doubled.prefix(10))",
                sourceLocation: sourceLocation)
        #expect(outOfOrder.isEmpty, "per-record order broken: \(outOfOrder.prefix(10))", sourceLocation: sourceLocation)
        // The store's side: every committed event reached the receiver at least once (under its own id), and
        // no change was committed twice under different ids (a fenced-off node's write would be the second).
        if let stored = storedEvents() {
            tally.storedEvents = stored.count
            let neverDelivered = stored.map(\.id).filter { !seenIDs.contains($0) }
            #expect(neverDelivered.isEmpty, "committed events never delivered: \(neverDelivered.prefix(10))",
                    sourceLocation: sourceLocation)
            var committedPerChange: [String: Int] = [:]
            for event in stored {
                guard let version = event.raw["note"]?.stringValue else { continue }
                committedPerChange["\(event.connection)/\(event.recordID)@\(version)", default: 0] += 1
            }
            let twice = committedPerChange.filter { $0.value > 1 }.map(\.key)
            #expect(twice.isEmpty, "changes committed as several events: \(twice.prefix(10))", sourceLocation: sourceLocation)
        } else {
            Issue.record("the store could not be read to check committed events", sourceLocation: sourceLocation)
        }
        let unverified = receiver.received.filter { !$0.verified }.count
        #expect(unverified == 0, "\(unverified) webhooks failed signature verification", sourceLocation: sourceLocation)
        return tally
    }
}
