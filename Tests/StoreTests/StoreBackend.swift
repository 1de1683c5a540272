// The store's test suite runs against both backends: a test taking a `StoreBackend` argument runs once on a
// SQLite file and once on a fresh PostgreSQL database (a throwaway server: Scripts/test starts one, or the first
// test starts one for the process, TestSupport.PostgresTestSupport). Where PostgreSQL is not installed the
// PostgreSQL half is left out and the skip is printed once. Tests of SQLite mechanics (PRAGMAs, WAL readers,
// file modes, file size) take no backend.
import Foundation
import Testing
import PostgresStore
import Store
import TestSupport

enum StoreBackend: String, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    /// SQLite always; PostgreSQL when its server binaries are here.
    static var all: [StoreBackend] { PostgresTestSupport.isAvailable ? [.sqlite, .postgres] : [.sqlite] }

    var testDescription: String { rawValue }

    /// A new, empty store: a file in `dir`, or a fresh database.
    func makeStore(_ dir: borrowing TempDir) throws -> StateStore {
        switch self {
        case .sqlite:
            return try StateStore(path: dir.dbPath)
        case .postgres:
            guard let url = try PostgresTestSupport.freshDatabaseURL(prefix: "store") else {
                throw PostgresServerError("PostgreSQL became unavailable during the run")
            }
            return try PostgresBackend.openStore(url: url, poolSize: 2)
        }
    }
}
