// The PostgreSQL schema: created once under an advisory lock however many daemons start together, the same
// version number as SQLite's, and a newer schema refused (docs/DESIGN.md §6 `store`).
import Foundation
import Testing
import PostgresStore
@testable import Store
import TestSupport

@Suite("PostgreSQL schema", .enabled(if: PostgresTestSupport.isAvailable))
struct PostgresSchemaTests {
    @Test func sameVersionAsSQLite() {
        #expect(PostgresBackend.schemaVersion == StateStore.schemaVersion)
    }

    @Test("daemons starting together migrate once: every open succeeds, one version row")
    func concurrentMigrations() async throws {
        let url = try #require(try PostgresTestSupport.freshDatabaseURL(prefix: "migrate"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask { _ = try PostgresBackend.openStore(url: url, poolSize: 1) }
            }
            try await group.waitForAll()
        }
        let store = try PostgresBackend.openStore(url: url, poolSize: 1)
        let versions = try store.database.read { db in
            try db.queryAll("SELECT version FROM deltahook_schema ORDER BY version") { $0.int(0) }
        }
        // One row per migration step (the first creates version 4 at once), each written once.
        #expect(versions == Array(4...StateStore.schemaVersion))
    }

    @Test("a database written by a newer deltahook is refused, for writers and readers")
    func newerSchemaIsRefused() throws {
        let url = try #require(try PostgresTestSupport.freshDatabaseURL(prefix: "newer"))
        let store = try PostgresBackend.openStore(url: url, poolSize: 1)
        try store.database.write { try $0.execute("INSERT INTO deltahook_schema (version) VALUES (99)") }
        for readOnly in [false, true] {
            do {
                _ = try PostgresBackend.openStore(url: url, poolSize: 1, readOnly: readOnly)
                Issue.record("a newer schema was accepted (readOnly: \(readOnly))")
            } catch let error as StoreError {
                #expect(error.code == .schemaTooNew(found: 99, known: StateStore.schemaVersion))
                #expect(error.description.contains("upgrade deltahook"))
            }
        }
    }

    @Test("a reader on an empty database says to start the daemon once; a wrong URL names the target, not the password")
    func clearOpenErrors() throws {
        let url = try #require(try PostgresTestSupport.freshDatabaseURL(prefix: "empty"))
        #expect {
            _ = try PostgresBackend.openStore(url: url, poolSize: 1, readOnly: true)
        } throws: { ($0 as? StoreError)?.code == .schemaTooOld(found: 0, known: StateStore.schemaVersion) }
        let wrong = "postgresql://deltahook:hunter2secret@127.0.0.1:1/nowhere?connect_timeout=2"
        do {
            _ = try PostgresBackend.openStore(url: wrong, poolSize: 1)
            Issue.record("connected to a closed port")
        } catch {
            let text = String(describing: error)
            #expect(!text.contains("hunter2secret"))
            #expect(text.contains("127.0.0.1"))
        }
    }
}
