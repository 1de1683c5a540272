// Provider auth state that must survive a restart (docs/DESIGN.md §2 rule 11): a ServiceNow instance that rotates
// refresh tokens revokes the old one when it hands out a new one, so after a restart the configured token may no
// longer work. The `auth_state` table (schema version 3) keeps the latest value per (connection, key).
//
// Values are secrets: nothing here logs them, and errors carry the connection and key only.
public import Core
public import Foundation

extension StateStore: AuthStateStore {
    /// The stored value of `key` for `connection`, nil when none was saved.
    public func loadAuthState(connection: String, key: String) async throws -> String? {
        try await perform { store in try store.authState(connection: connection, key: key) }
    }

    /// Saves `value` for (`connection`, `key`), replacing an older one.
    public func saveAuthState(connection: String, key: String, value: String) async throws {
        let now = Date()
        try await perform { store in try store.setAuthState(connection: connection, key: key, value: value, now: now) }
    }

    /// Synchronous read, on the caller's thread (use ``loadAuthState(connection:key:)`` from async code).
    public func authState(connection: String, key: String) throws -> String? {
        try database.read { db in
            try db.queryOne("SELECT value FROM auth_state WHERE connection = ? AND key = ?",
                            [.text(connection), .text(key)]) { $0.text(0) }
        }
    }

    /// Synchronous upsert (use ``saveAuthState(connection:key:value:)`` from async code).
    public func setAuthState(connection: String, key: String, value: String, now: Date) throws {
        try database.write { db in
            try db.execute("""
                INSERT INTO auth_state (connection, key, value, updated_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (connection, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
                """, [.text(connection), .text(key), .text(value), .integer(Millis.from(now))])
        }
    }
}
