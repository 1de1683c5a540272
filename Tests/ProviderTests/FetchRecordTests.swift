// Single-record reads (`ObjectSource.fetchRecord`, docs/DESIGN.md §2 rule 6a) against the ServiceNow and NetSuite
// emulators over real HTTP: found with the same content hash a delta scan computes, gone after a delete, found
// again after a re-create with the same id, and ids checked before they reach a URL or query (rule 15).
import Core
import Emulators
import Engine
import Foundation
import HTTPClient
@testable import Providers
import Testing

@Suite("Single-record reads (rule 6a)", .serialized)
struct FetchRecordTests {
    @Test("rule 6a: ServiceNow GET /api/now/table/incident/{sys_id}: found as the scan reads it, gone, re-created")
    func servicenowSingleRecord() async throws {
        try await withServiceNow { h in
            let at = Date(timeIntervalSince1970: 1_764_396_000)
            let id = try h.emulator.insert("incident", ["short_description": "printer", "state": "1"], at: at)
            let source = h.source("incident")
            let scanned = try await source.fetchDelta(DeltaRequest(lowerBound: nil, after: nil, pageSize: 10))
            guard case .found(let record) = try await source.fetchRecord(id: id) else {
                Issue.record("the live incident was not found")
                return
            }
            let differ = Differ(descriptor: source.descriptor)
            #expect(record.id == id && record.updatedAt == at)
            #expect(differ.contentHash(of: record) == differ.contentHash(of: try #require(scanned.records.first)))
            let request = try #require(h.emulator.tableRequestLog.last)
            #expect(request.path == "/api/now/table/incident/\(id)")
            #expect(request.query["sysparm_display_value"] == "false" && request.query["sysparm_exclude_reference_link"] == "true")

            try h.emulator.delete("incident", id, at: at.addingTimeInterval(5))
            guard case .gone = try await source.fetchRecord(id: id) else {
                Issue.record("a deleted incident was not gone")
                return
            }
            #expect(h.emulator.tableRequestLog.last?.status == 404)

            // Re-created with the same sys_id in the same second: found again, with the new state.
            _ = try h.emulator.insert("incident", ["short_description": "printer again"], at: at.addingTimeInterval(5),
                                      sysID: id)
            guard case .found(let again) = try await source.fetchRecord(id: id) else {
                Issue.record("the re-created incident was not found")
                return
            }
            #expect(again.raw["short_description"] == "printer again")

            // A before-query business rule hides it from every query, the single GET included.
            h.emulator.setHiddenByQueryRule("incident", [id])
            guard case .gone = try await source.fetchRecord(id: id) else {
                Issue.record("a record hidden by a before-query rule was readable")
                return
            }
            let listed = try await source.fetchIDs(after: nil, pageSize: 10)
            #expect(listed.ids.isEmpty)
            h.emulator.setHiddenByQueryRule("incident", [id], false)
            #expect(try await source.fetchIDs(after: nil, pageSize: 10).ids == [id])
        }
    }

    @Test("rule 15: a ServiceNow id that is no sys_id is refused before any request")
    func servicenowBadID() async throws {
        try await withServiceNow { h in
            let before = h.emulator.tableRequestLog.count
            await #expect(throws: ProviderError.self) {
                _ = try await h.source("incident").fetchRecord(id: "a^ORsys_id>0")
            }
            #expect(h.emulator.tableRequestLog.count == before)
        }
    }

    @Test("rule 6a: NetSuite SuiteQL by id: found as the scan reads it, gone after a delete, re-created id in DeletedRecord")
    func netsuiteSingleRecord() async throws {
        let fixture = try NetSuiteFixture()
        defer { fixture.stop() }
        let at = Date(timeIntervalSince1970: 1_764_396_000)
        fixture.emulator.upsert("customer", id: 42, modifiedAt: at, fields: [("companyname", .text("Acme"))])
        fixture.emulator.upsert("customer", id: 43, modifiedAt: at, fields: [("companyname", .text("Other"))])
        let source = fixture.source()
        let scanned = try await NetSuiteFixture.scan(source, from: nil, pageSize: 10)
        guard case .found(let record) = try await source.fetchRecord(id: "42") else {
            Issue.record("customer 42 was not found")
            return
        }
        let differ = Differ(descriptor: source.descriptor)
        let scannedRecord = try #require(scanned.records.first { $0.id == "42" })
        #expect(record.updatedAt == at && differ.contentHash(of: record) == differ.contentHash(of: scannedRecord))
        let query = try #require(fixture.emulator.stats.queries.last)
        #expect(query.contains("WHERE customer.id = 42") && query.contains("TO_CHAR(customer.lastmodifieddate"))

        fixture.emulator.delete("customer", id: 42, at: at.addingTimeInterval(5))
        guard case .gone = try await source.fetchRecord(id: "42") else {
            Issue.record("a deleted customer was not gone")
            return
        }
        // Re-created with the same internal id in the same second: DeletedRecord still lists the delete.
        fixture.emulator.upsert("customer", id: 42, modifiedAt: at.addingTimeInterval(5),
                                fields: [("companyname", .text("Acme again"))])
        guard case .found(let again) = try await source.fetchRecord(id: "42") else {
            Issue.record("the re-created customer was not found")
            return
        }
        #expect(again.raw["companyname"] == "Acme again")
        let feed = try #require(try await source.fetchDeletions(since: at, after: nil, pageSize: 10))
        #expect(feed.deletions == [DeletedRecordNotice(id: "42", deletedAt: at.addingTimeInterval(5))])

        let before = fixture.emulator.stats.requests
        await #expect(throws: ProviderError.self) { _ = try await source.fetchRecord(id: "42 OR 1=1") }
        #expect(fixture.emulator.stats.requests == before)
    }
}
