// Issue 5 acceptance, end to end in-process: config JSON → ConfigLoader → ProviderFactory → the real Engine
// (PollRunner, Reconciler) → the real StateStore in a temporary directory, against the NetSuite emulator over
// loopback HTTP. Each test names the docs/DESIGN.md §2 rules it proves.
import Config
import Core
import Emulators
import Engine
import Foundation
import HTTPClient
import Logging
@testable import Providers
import Store
import Testing
import TestSupport

/// An emulator, a store, an engine wired from a config document; torn down by `stop()`.
final class NetSuiteE2E: @unchecked Sendable {
    let emulator: NetSuiteEmulator
    let transport: CurlHTTPClient
    let directory: TemporaryDirectory
    let store: StateStore
    let sink = MemoryLogSink()
    let engine: Engine
    let connection = "acme-ns"

    struct ObjectSpec {
        var name: String
        var model = "record"
        var recordType: String?
        var deleteFeed = "audit"
        var pageSize = 100
    }

    /// - Parameters:
    ///   - tokenSecret: the token secret deltahook is configured with (the emulator knows `ts-emulator`).
    init(emulator options: NetSuiteEmulator.Options, objects: [ObjectSpec], maxConcurrency: Int = 5,
         initialSync: InitialSyncMode = .emit, reconcileEvery: Duration? = nil,
         tokenSecret: String = "ts-emulator") throws {
        let emulator = try NetSuiteEmulator(options: options)
        let transport: CurlHTTPClient
        do { transport = try CurlHTTPClient() } catch {
            emulator.stop()
            throw error
        }
        self.emulator = emulator
        self.transport = transport
        do {
            directory = try TemporaryDirectory(prefix: "deltahook-netsuite")
        } catch {
            emulator.stop()
            transport.shutdown()
            throw error
        }
        do {
            store = try StateStore(path: directory.file(StateStore.fileName))
        } catch {
            emulator.stop()
            transport.shutdown()
            directory.remove()
            throw error
        }
        engine = Engine(store: store, logger: Logger(level: .debug, sink: sink), router: { _ in ["crm"] })
        do {
            try configure(options: options, objects: objects, maxConcurrency: maxConcurrency, initialSync: initialSync,
                          reconcileEvery: reconcileEvery, tokenSecret: tokenSecret)
        } catch {
            emulator.stop()
            transport.shutdown()
            directory.remove()
            throw error
        }
    }

    private func configure(options: NetSuiteEmulator.Options, objects: [ObjectSpec], maxConcurrency: Int,
                           initialSync: InitialSyncMode, reconcileEvery: Duration?, tokenSecret: String) throws {
        let objectsJSON = objects.map { o in
            "{\"name\": \"\(o.name)\", \"model\": \"\(o.model)\", \"interval\": \"1m\", \"page_size\": \(o.pageSize), "
                + "\"delete_feed\": \"\(o.deleteFeed)\"" + (o.recordType.map { ", \"record_type\": \"\($0)\"" } ?? "") + "}"
        }.joined(separator: ", ")
        let document = """
        {"state_directory": "\(directory.path)",
         "connections": [{"id": "\(connection)", "provider": "netsuite", "account_id": "\(options.accountID)",
           "base_url": "\(emulator.baseURL)", "time_zone": "\(options.timeZone.identifier)", "max_concurrency": \(maxConcurrency),
           "auth": {"type": "tba", "consumer_key": {"env": "NS_CK"}, "consumer_secret": {"env": "NS_CS"},
                    "token_id": {"env": "NS_TID"}, "token_secret": {"env": "NS_TS"}},
           "objects": [\(objectsJSON)]}],
         "subscribers": []}
        """
        let environment = ConfigEnvironment(variables: ["NS_CK": options.consumerKey, "NS_CS": options.consumerSecret,
                                                        "NS_TID": options.tokenID, "NS_TS": tokenSecret])
        let config = try ConfigLoader.load(data: Data(document.utf8), environment: environment)
        let connectionConfig = try #require(config.connection(id: connection))
        var clientOptions = NetSuiteFixture.fastOptions(rowCap: options.rowCap)
        clientOptions.maxConcurrency = maxConcurrency
        let sources = try NetSuiteFactory(options: clientOptions).makeSources(
            for: connectionConfig, context: ProviderContext(transport: transport, logger: Logger(level: .debug, sink: sink)))
        let targets = zip(sources, connectionConfig.objects).map { source, object in
            PollTarget(plan: ObjectPlan(descriptor: source.descriptor, interval: object.interval, lookback: object.lookback,
                                        reconcileEvery: reconcileEvery, initialSync: initialSync,
                                        pageSize: object.pageSize, useDeleteFeed: object.deleteFeed == .audit),
                       source: source)
        }
        engine.update(targets: targets)
    }

    func stop() async {
        await engine.shutdown()
        emulator.stop()
        transport.shutdown()
        directory.remove()
    }

    func poll(_ object: String? = nil) async throws -> [CycleReport] {
        try await engine.pollOnce(connection: connection, object: object)
    }

    func events(_ object: String? = nil) throws -> [ChangeEvent] {
        try store.events(EventQuery(connection: connection, object: object, limit: 1_000_000)).map(\.event)
    }

    func cursor(_ object: String) throws -> CursorState? { try store.cursor(connection: connection, object: object) }

    /// Events per (record id, kind).
    func tally(_ object: String) throws -> [String: [ChangeKind: Int]] {
        var out: [String: [ChangeKind: Int]] = [:]
        for event in try events(object) { out[event.recordID, default: [:]][event.kind, default: 0] += 1 }
        return out
    }
}

@Suite("NetSuite end to end through the engine and store", .serialized)
struct NetSuiteEndToEndTests {
    @Test("Rules 1, 2, 5, 7 + docs/DESIGN.md §6 DST rule: midnight, fall-back and spring-forward — nothing lost, nothing doubled")
    func daylightSaving() async throws {
        for reading in [NetSuiteEmulator.AmbiguousReading.earlier, .later] {
            let e = try NetSuiteE2E(emulator: .init(timeZone: losAngeles, ambiguousReading: reading),
                                    objects: [.init(name: "customer", model: "customer", pageSize: 3)])
            var expectedUpdates: [String: Int] = [:]
            do {
                func put(_ id: Int64, _ at: String, _ name: String) {
                    e.emulator.upsert("customer", id: id, modifiedAt: utc(at), fields: [("companyname", .text(name))])
                }
                // Spring-forward (2026-03-08 02:00 PST → 03:00 PDT) and local midnight Oct 31 → Nov 1.
                put(1, "2026-03-08 09:59:59", "one")       // 01:59:59 PST
                put(2, "2026-03-08 10:00:00", "two")       // 03:00:00 PDT
                put(3, "2026-11-01 06:59:59", "three")     // 23:59:59 PDT Oct 31
                put(4, "2026-11-01 07:00:00", "four")      // 00:00:00 PDT Nov 1
                put(5, "2026-11-01 07:00:00", "five")      // same second, id tiebreak
                put(6, "2026-11-01 08:10:00", "six")       // 01:10 PDT (first 01:xx)
                put(7, "2026-11-01 08:30:00", "seven")     // 01:30 PDT
                _ = try await e.poll()
                // The cursor now sits inside the repeated hour's first reading.
                #expect(try e.cursor("customer")?.watermark == utc("2026-11-01 08:30:00"))
                // Second reading of the hour: 01:05 PST, 01:40 PST; record 6 changes at 01:20 PST.
                put(8, "2026-11-01 09:05:00", "eight")
                put(9, "2026-11-01 09:40:00", "nine")
                put(6, "2026-11-01 09:20:00", "six v2"); expectedUpdates["6"] = 1
                _ = try await e.poll()
                #expect(try e.cursor("customer")?.watermark == utc("2026-11-01 09:40:00"))
                // An idle poll re-reads the repeated hour (stepped-back literal) and emits nothing.
                let idle = try await e.poll()
                #expect(idle.allSatisfy { $0.eventCount == 0 }, "re-reads are suppressed by hash (\(reading))")
                // After the hour: 02:05 PST, and record 7 changes again.
                put(10, "2026-11-01 10:05:00", "ten")
                put(7, "2026-11-01 10:06:00", "seven v2"); expectedUpdates["7"] = 1
                _ = try await e.poll()
                _ = try await e.poll()

                let tally = try e.tally("customer")
                #expect(Set(tally.keys) == Set((1...10).map(String.init)), "nothing lost (\(reading))")
                for (id, kinds) in tally {
                    #expect(kinds[.created] == 1, "record \(id) created exactly once (\(reading))")
                    #expect((kinds[.updated] ?? 0) == (expectedUpdates[id] ?? 0), "record \(id) updates (\(reading))")
                    #expect(kinds[.deleted] == nil)
                }
                let six = try e.events("customer").first { $0.recordID == "6" && $0.kind == .updated }
                #expect(six?.occurredAt == utc("2026-11-01 09:20:00"), "occurred_at is the true UTC instant")
                #expect(six?.changes?["name"]?.to == "six v2")
                #expect(six?.changes?["updated_at"] == nil, "the cursor field is volatile")
            } catch {
                await e.stop()
                throw error
            }
            await e.stop()
        }
    }

    @Test("Rules 1, 3 + 100k cap: every record changed in one window is captured exactly once via window splitting")
    func oneWindowOverTheCap() async throws {
        // Scaled run: cap 1,000 and 1,200 changed rows. NETSUITE_FULL_SCALE=1 runs the real numbers
        // (cap 100,000, 120,000 rows, page size 1,000); it takes minutes in a debug build.
        let full = ProcessInfo.processInfo.environment["NETSUITE_FULL_SCALE"] == "1"
        let (cap, rows, pageSize) = full ? (100_000, 120_000, 1000) : (1000, 1200, 100)
        let e = try NetSuiteE2E(emulator: .init(timeZone: losAngeles, rowCap: cap),
                                objects: [.init(name: "customer", pageSize: pageSize)], initialSync: .silent)
        do {
            let base = utc("2026-10-01 07:00:00")
            e.emulator.upsertMany("customer", rows: (1...rows).map { (Int64($0), base, [("status", .text("old"))]) })
            _ = try await e.poll()
            #expect(try e.events().isEmpty, "silent baseline")
            // Every record changes within one ten-minute window.
            let changed = base.addingTimeInterval(3600)
            e.emulator.upsertMany("customer", rows: (1...rows).map {
                (Int64($0), changed + Double($0 % 600), [("status", .text("new"))])
            })
            let reports = try await e.poll()
            #expect(reports.flatMap(\.warnings).contains { $0.contains("\(cap)-row cap") }, "the window was split")
            let events = try e.events()
            #expect(events.count == rows && Set(events.map(\.recordID)).count == rows, "each change exactly once")
            #expect(events.allSatisfy { $0.kind == .updated && $0.changes?["status"]?.to == "new" })
            #expect(try e.cursor("customer")?.watermark == changed + 599)
        } catch {
            await e.stop()
            throw error
        }
        await e.stop()
    }

    @Test("Rules 9, 10: the account's concurrency limit is hit, backed off, recovered; the semaphore is never exceeded")
    func concurrencyLimit() async throws {
        let e = try NetSuiteE2E(emulator: .init(timeZone: losAngeles, concurrencyLimit: 2, responseDelay: .milliseconds(80)),
                                objects: [.init(name: "customer"), .init(name: "employee", model: "employee"),
                                          .init(name: "vendor"), .init(name: "item"),
                                          .init(name: "transaction", model: "invoice", recordType: "CustInvc")],
                                maxConcurrency: 3)
        do {
            for (i, table) in ["customer", "employee", "vendor", "item", "transaction"].enumerated() {
                for n in 1...3 {
                    e.emulator.upsert(table, id: Int64(n), modifiedAt: utc("2026-10-01 00:00:00") + Double(i * 10 + n),
                                      fields: table == "transaction" ? [("type", .text(n == 3 ? "SalesOrd" : "CustInvc")),
                                                                         ("tranid", .text("INV-\(n)")),
                                                                         ("status", .text("CustInvc:A"))] : [])
                }
            }
            let engine = e.engine
            let connection = e.connection
            try await withThrowingTaskGroup(of: Void.self) { group in
                for object in ["customer", "employee", "vendor", "item", "transaction"] {
                    group.addTask { _ = try await engine.pollOnce(connection: connection, object: object) }
                }
                try await group.waitForAll()
            }
            let stats = e.emulator.stats
            #expect(stats.concurrencyRejections > 0, "the limit was provoked")
            #expect(stats.maxObservedConcurrency <= 3, "never more requests in flight than max_concurrency")
            let events = try e.events()
            #expect(events.count == 14, "3 per table, only the 2 CustInvc transactions")
            let invoices = events.filter { $0.object == "transaction" }
            #expect(Set(invoices.map(\.type)) == ["invoice.created"])
            #expect(invoices.compactMap { $0.record["status"]?.stringValue } == ["open", "open"])
        } catch {
            await e.stop()
            throw error
        }
        await e.stop()
    }

    @Test("Rules 1, 11: a wrong token secret is a clear auth error in status and logs; no cursor moves")
    func wrongTokenSecret() async throws {
        let e = try NetSuiteE2E(emulator: .init(timeZone: losAngeles), objects: [.init(name: "customer")])
        do {
            e.emulator.upsert("customer", id: 1, modifiedAt: utc("2026-10-01 00:00:00"))
            _ = try await e.poll()
            let before = try e.cursor("customer")
            #expect(before?.watermark == utc("2026-10-01 00:00:00"))
            // The token is rotated on the NetSuite side: deltahook's secret is now wrong.
            e.emulator.configure { $0.tokenSecret = "rotated-secret" }
            e.emulator.upsert("customer", id: 2, modifiedAt: utc("2026-10-02 00:00:00"))
            do {
                _ = try await e.poll()
                Issue.record("expected an authentication failure")
            } catch let failure as PollOnceFailure {
                guard case ProviderError.authentication(_, let hint) = failure.underlying else {
                    Issue.record("expected ProviderError.authentication, got \(failure.underlying)")
                    throw failure
                }
                #expect(hint.contains("machine clock"))
            }
            #expect(try e.cursor("customer") == before, "no cursor movement")
            #expect(try e.events().count == 1, "nothing new emitted")
            let status = try #require(try e.store.pollStatuses().first { $0.object == "customer" })
            #expect(status.lastError?.contains("authentication failed") == true)
            #expect(status.lastError?.contains("INVALID_LOGIN") == true)
            #expect(status.lastError?.contains("rotated-secret") == false && status.lastError?.contains("ts-emulator") == false)
            // The scheduled loop logs it too.
            e.engine.start()
            let logged = await Wait.until(timeout: .seconds(10)) {
                e.sink.records.contains { record in
                    record.level == .error && record.fields.contains { $0.field == .error && $0.value.contains("INVALID_LOGIN") }
                }
            }
            #expect(logged, "the auth error reaches the logs")
            #expect(try e.cursor("customer") == before)
        } catch {
            await e.stop()
            throw error
        }
        await e.stop()
    }

    @Test("Rule 6: deletes from DeletedRecord and from a reconciliation sweep both become deleted events, once each")
    func deletes() async throws {
        let e = try NetSuiteE2E(emulator: .init(timeZone: losAngeles),
                                objects: [.init(name: "customer", model: "customer")], reconcileEvery: .milliseconds(1))
        do {
            for n in 1...4 {
                e.emulator.upsert("customer", id: Int64(n), modifiedAt: utc("2026-10-01 00:00:00") + Double(n),
                                  fields: [("companyname", .text("c\(n)"))])
            }
            _ = try await e.poll()
            e.emulator.delete("customer", id: 2, at: utc("2026-10-05 12:00:00"))   // in DeletedRecord
            e.emulator.purge("customer", id: 3)                                      // gone without a feed entry
            _ = try await e.poll()
            _ = try await e.poll()
            let deleted = try e.events().filter { $0.kind == .deleted }
            #expect(deleted.map(\.recordID).sorted() == ["2", "3"], "each delete exactly once")
            let fromFeed = try #require(deleted.first { $0.recordID == "2" })
            #expect(fromFeed.occurredAt == utc("2026-10-05 12:00:00"), "the feed's deleteddate, converted from local time")
            #expect(fromFeed.record["name"] == "c2", "the last known record")
            #expect(fromFeed.type == "customer.deleted")
            // An undelete is `created` again.
            e.emulator.upsert("customer", id: 3, modifiedAt: utc("2026-10-06 00:00:00"), fields: [("companyname", .text("c3"))])
            _ = try await e.poll()
            #expect(try e.tally("customer")["3"] == [.created: 2, .deleted: 1])
        } catch {
            await e.stop()
            throw error
        }
        await e.stop()
    }
}
