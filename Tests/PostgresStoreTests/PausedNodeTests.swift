// A node stopped in the middle of a transaction (SIGSTOP, a paused VM) must not hold the other nodes' writes for as
// long as it sleeps: its session is ended after 5 s idle in a transaction and its locks are freed
// (`PostgresDatabase.sessionSettings`, docs/DESIGN.md §2 rule 19).
import Foundation
import Testing
@testable import PostgresStore
@testable import Store
import TestSupport

@Suite("PostgreSQL: a paused node's locks", .enabled(if: PostgresTestSupport.isAvailable))
struct PausedNodeTests {
    @Test("a session idle inside a transaction holding the lease row is ended; the other node's write goes through")
    func pausedTransactionReleasesItsLocks() async throws {
        let url = try #require(try PostgresTestSupport.freshDatabaseURL(prefix: "paused"))
        let store = try PostgresBackend.openStore(url: url, poolSize: 1)
        try store.joinCluster(NodeIdentity(id: "b", host: "h", pid: 1, version: "t", startedAt: Date()),
                              leaseTTL: .seconds(1), objects: 1)
        #expect(try store.acquirePollLease(connection: "c", object: "o") == .held(token: 1))

        // "Node a" stops right after locking the lease row inside its page commit: a raw session with the store's
        // settings that begins, locks, and then says nothing more.
        let paused = try PGConnection(url: url, settings: PostgresDatabase.sessionSettings)
        try paused.executeScript("BEGIN")
        _ = try paused.execute("UPDATE poll_leases SET expires_at = expires_at WHERE connection = $1", ["c"])

        // The other node's write on the same row waits for the lock, then proceeds once the server ended the
        // paused session.
        // Without the guard this waits out lock_timeout (15 s) and throws 55P03 instead.
        let outcome = try await store.perform { try $0.acquirePollLease(connection: "c", object: "o") }
        #expect(outcome.mayPoll)
        #expect(throws: PGError.self, "the paused session was ended by the server") {
            try paused.executeScript("COMMIT")
        }
    }
}
