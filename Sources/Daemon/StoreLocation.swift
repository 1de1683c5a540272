// Where the state lives, for the daemon and every CLI command: one SQLite file in the state directory, or a
// PostgreSQL database several daemons share (docs/DESIGN.md §6 `store`). One place decides how either is opened.
public import Config
import Core
import Foundation
import PostgresStore
public import Store

public enum StoreLocation: Sendable, CustomStringConvertible {
    case sqlite(path: String)
    /// `url` is the secret connection string; never printed (``description`` redacts it).
    case postgres(url: String, poolSize: Int)

    /// The SQLite file of `stateDirectory`, or the configured PostgreSQL database.
    public init(directory stateDirectory: String, store: StoreConfig) {
        switch store.backend {
        case .sqlite: self = .sqlite(path: stateDirectory + "/" + StateStore.fileName)
        case .postgres(let url): self = .postgres(url: url.unredactedValue, poolSize: store.poolSize)
        }
    }

    public var description: String {
        switch self {
        case .sqlite(let path): path
        case .postgres(let url, _): PGConnection.redact(url: url)
        }
    }

    public var isShared: Bool {
        if case .postgres = self { return true }
        return false
    }

    /// Opens the store. `write == false` is a reader beside running daemons (SQLite: a WAL reader that needs the
    /// current schema; PostgreSQL: read-only transactions); `write == true` creates or migrates the schema.
    public func open(write: Bool) throws -> StateStore {
        switch self {
        case .sqlite(let path):
            return try StateStore(path: path, mode: write ? .readWrite : .readOnly)
        case .postgres(let url, let poolSize):
            return try PostgresBackend.openStore(url: url, poolSize: write ? poolSize : min(poolSize, 2),
                                                 readOnly: !write)
        }
    }
}
