// The store's tables on PostgreSQL: the same tables, columns and indexes as the SQLite schema at the same version
// (Store/Schema.swift), in PostgreSQL's types, with a version table instead of `PRAGMA user_version`.
//
// - Migrations run under `pg_advisory_lock`, so daemons starting together do not race: the first migrates, the
//   others wait and then find the schema current. Related PostgreSQL documentation: "9.27.10 Advisory Lock
//   Functions".
// - A database written by a newer deltahook is refused, as a SQLite file is.
// - Text keys are `COLLATE "C"`: ids are compared and ordered bytewise, as SQLite does, so keyset paging
//   (`record_id > ?` … `ORDER BY record_id`) walks the same order whatever the database's locale.
// - Times are BIGINT Unix milliseconds and booleans 0/1 INTEGERs, exactly as in SQLite, so the table code reads
//   both the same way.
public import Store

enum PostgresSchema {
    /// Scripts in order; the first creates the schema at SQLite's version 4 in one step (a PostgreSQL store
    /// starts there), each later one is one version up. Never edit a shipped script: append.
    static let migrations: [(version: Int, script: String)] = [(4, version4), (5, version5)]

    static var currentVersion: Int { migrations.last?.version ?? 0 }

    /// Any value: an application-wide advisory lock key ("deltahook schema" in ASCII, shortened to 63 bits).
    static let advisoryLockKey: Int64 = 0x6465_6C74_6168_6F6F

    static let version4 = """
        CREATE TABLE cursors (
            connection        TEXT COLLATE "C" NOT NULL,
            object            TEXT COLLATE "C" NOT NULL,
            partition         TEXT COLLATE "C" NOT NULL DEFAULT '',
            watermark         BIGINT,
            resume_state      TEXT,
            delete_cursor     TEXT,
            last_reconcile_at BIGINT,
            updated_at        BIGINT NOT NULL,
            PRIMARY KEY (connection, object, partition)
        );

        CREATE TABLE snapshots (
            connection      TEXT COLLATE "C" NOT NULL,
            object          TEXT COLLATE "C" NOT NULL,
            record_id       TEXT COLLATE "C" NOT NULL,
            content_hash    TEXT    NOT NULL,
            record          TEXT    NOT NULL,
            raw             TEXT    NOT NULL,
            source_ts       BIGINT,
            tombstoned      INTEGER NOT NULL DEFAULT 0 CHECK (tombstoned IN (0, 1)),
            tombstoned_at   BIGINT,
            last_seen_sweep BIGINT  NOT NULL DEFAULT 0,
            updated_at      BIGINT  NOT NULL,
            PRIMARY KEY (connection, object, record_id)
        );
        CREATE INDEX snapshots_live ON snapshots (connection, object, record_id, last_seen_sweep) WHERE tombstoned = 0;
        CREATE INDEX snapshots_tombstoned ON snapshots (tombstoned_at) WHERE tombstoned = 1;

        CREATE TABLE events (
            seq            BIGSERIAL PRIMARY KEY,
            event_id       TEXT COLLATE "C" NOT NULL UNIQUE,
            type           TEXT    NOT NULL,
            model          TEXT    NOT NULL,
            kind           TEXT    NOT NULL CHECK (kind IN ('created', 'updated', 'deleted')),
            connection     TEXT COLLATE "C" NOT NULL,
            provider       TEXT    NOT NULL,
            object         TEXT COLLATE "C" NOT NULL,
            record_id      TEXT COLLATE "C" NOT NULL,
            occurred_at    BIGINT,
            detected_at    BIGINT  NOT NULL,
            record         TEXT    NOT NULL,
            changes        TEXT,
            raw            TEXT    NOT NULL,
            changed_fields TEXT
        );
        CREATE INDEX events_detected ON events (detected_at);
        CREATE INDEX events_source ON events (connection, object, seq);

        CREATE TABLE deliveries (
            id              BIGSERIAL PRIMARY KEY,
            event_seq       BIGINT  NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
            subscriber      TEXT COLLATE "C" NOT NULL,
            record_key      TEXT COLLATE "C" NOT NULL,
            state           TEXT    NOT NULL DEFAULT 'pending'
                                    CHECK (state IN ('pending', 'delivered', 'failed', 'orphaned')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at BIGINT,
            last_status     INTEGER,
            last_error      TEXT,
            created_at      BIGINT  NOT NULL,
            updated_at      BIGINT  NOT NULL,
            delivered_at    BIGINT,
            lease_token     BIGINT  NOT NULL DEFAULT 0,
            UNIQUE (event_seq, subscriber)
        );
        CREATE INDEX deliveries_pending ON deliveries (subscriber, event_seq, next_attempt_at) WHERE state = 'pending';
        CREATE INDEX deliveries_pending_record ON deliveries (subscriber, record_key, event_seq) WHERE state = 'pending';
        CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber, state, id);

        CREATE TABLE attempts (
            id               BIGSERIAL PRIMARY KEY,
            delivery_id      BIGINT  NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
            attempted_at     BIGINT  NOT NULL,
            http_status      INTEGER,
            latency_ms       BIGINT  NOT NULL,
            response_excerpt TEXT,
            error            TEXT
        );
        CREATE INDEX attempts_delivery ON attempts (delivery_id, id);

        CREATE TABLE subscribers (
            id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
            state         TEXT    NOT NULL CHECK (state IN ('active', 'paused', 'disabled')),
            reason        TEXT,
            changed_at    BIGINT  NOT NULL,
            failing_since BIGINT
        );

        CREATE TABLE poll_status (
            connection      TEXT COLLATE "C" NOT NULL,
            object          TEXT COLLATE "C" NOT NULL,
            last_poll_at    BIGINT,
            last_success_at BIGINT,
            last_error      TEXT,
            last_error_at   BIGINT,
            events_total    BIGINT NOT NULL DEFAULT 0,
            records_total   BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (connection, object)
        );

        CREATE TABLE quarantine (
            connection     TEXT COLLATE "C" NOT NULL,
            object         TEXT COLLATE "C" NOT NULL,
            record_key     TEXT COLLATE "C" NOT NULL,
            record_id      TEXT COLLATE "C",
            reason         TEXT    NOT NULL,
            raw_excerpt    TEXT    NOT NULL,
            first_seen_at  BIGINT  NOT NULL,
            last_seen_at   BIGINT  NOT NULL,
            seen_count     INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (connection, object, record_key)
        );

        CREATE TABLE held_sweeps (
            connection      TEXT COLLATE "C" NOT NULL,
            object          TEXT COLLATE "C" NOT NULL,
            sweep_started   BIGINT  NOT NULL,
            held_at         BIGINT  NOT NULL,
            would_delete    INTEGER NOT NULL,
            live            INTEGER NOT NULL,
            listed          INTEGER NOT NULL,
            record_ids      TEXT    NOT NULL,
            apply_requested INTEGER NOT NULL DEFAULT 0 CHECK (apply_requested IN (0, 1)),
            PRIMARY KEY (connection, object)
        );

        CREATE TABLE auth_state (
            connection  TEXT COLLATE "C" NOT NULL,
            key         TEXT COLLATE "C" NOT NULL,
            value       TEXT   NOT NULL,
            updated_at  BIGINT NOT NULL,
            PRIMARY KEY (connection, key)
        );

        CREATE TABLE nodes (
            node_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
            host         TEXT    NOT NULL,
            pid          INTEGER NOT NULL,
            version      TEXT    NOT NULL,
            started_at   BIGINT  NOT NULL,
            heartbeat_at BIGINT  NOT NULL
        );

        CREATE TABLE poll_leases (
            connection  TEXT COLLATE "C" NOT NULL,
            object      TEXT COLLATE "C" NOT NULL,
            owner       TEXT COLLATE "C" NOT NULL,
            token       BIGINT NOT NULL,
            acquired_at BIGINT NOT NULL,
            expires_at  BIGINT NOT NULL,
            PRIMARY KEY (connection, object)
        );
        CREATE INDEX poll_leases_owner ON poll_leases (owner, expires_at);

        CREATE TABLE provider_waits (
            connection TEXT COLLATE "C" NOT NULL PRIMARY KEY,
            until      BIGINT NOT NULL,
            reason     TEXT   NOT NULL,
            set_by     TEXT   NOT NULL
        );

        CREATE TABLE permits (
            name       TEXT COLLATE "C" NOT NULL,
            slot       INTEGER NOT NULL,
            owner      TEXT    NOT NULL,
            expires_at BIGINT  NOT NULL,
            PRIMARY KEY (name, slot)
        );
        """

    /// Version 5: request budgets (SQLite's version 5, `Store/RequestBudgets.swift`).
    static let version5 = """
        CREATE TABLE request_budget (
            connection   TEXT COLLATE "C" NOT NULL,
            span         INTEGER NOT NULL,
            window_start BIGINT  NOT NULL,
            used         INTEGER NOT NULL,
            PRIMARY KEY (connection, span, window_start)
        );

        CREATE TABLE budget_plans (
            connection             TEXT COLLATE "C" NOT NULL,
            object                 TEXT COLLATE "C" NOT NULL,
            configured_interval_ms BIGINT NOT NULL,
            effective_interval_ms  BIGINT NOT NULL,
            cost_per_cycle         DOUBLE PRECISION NOT NULL,
            per_day                BIGINT NOT NULL,
            updated_at             BIGINT NOT NULL,
            PRIMARY KEY (connection, object)
        );
        """

    /// Brings the database up to ``currentVersion`` under the advisory lock, or refuses a newer one.
    static func migrate(_ database: PostgresDatabase) throws {
        try database.withConnection { db in
            try db.executeScript("SELECT pg_advisory_lock(\(advisoryLockKey))")
            defer { try? db.executeScript("SELECT pg_advisory_unlock(\(advisoryLockKey))") }
            try db.executeScript("""
                CREATE TABLE IF NOT EXISTS deltahook_schema (
                    version    INTEGER NOT NULL PRIMARY KEY,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """)
            let found = try version(db)
            try checkNotNewer(found: found, location: database.location)
            for migration in migrations where migration.version > found {
                // DDL is transactional in PostgreSQL: a failed script leaves the previous version intact.
                try db.executeScript("BEGIN; \(migration.script)\nINSERT INTO deltahook_schema (version) VALUES (\(migration.version)); COMMIT;")
            }
        }
    }

    /// A read-only open cannot migrate: it needs exactly the current version.
    static func checkReadable(_ database: PostgresDatabase) throws {
        let found = try database.read { db in
            let exists = try db.queryOne("SELECT to_regclass('deltahook_schema') IS NOT NULL") { $0.bool(0) } ?? false
            return exists ? try version(db) : 0
        }
        try checkNotNewer(found: found, location: database.location)
        guard found >= currentVersion else {
            throw StoreError(code: .schemaTooOld(found: found, known: currentVersion),
                             message: "the PostgreSQL store \(database.location) has schema version \(found), "
                                 + "this deltahook expects \(currentVersion)",
                             path: database.location,
                             hint: "start the daemon (deltahook run) once so it creates or upgrades the store")
        }
    }

    private static func version(_ db: any SQLConnection) throws -> Int {
        try db.queryOne("SELECT COALESCE(MAX(version), 0) FROM deltahook_schema") { $0.int(0) } ?? 0
    }

    private static func checkNotNewer(found: Int, location: String) throws {
        guard found > currentVersion else { return }
        throw StoreError(code: .schemaTooNew(found: found, known: currentVersion),
                         message: "the PostgreSQL store \(location) has schema version \(found), "
                             + "this deltahook knows up to \(currentVersion)",
                         path: location, hint: "upgrade deltahook on every node")
    }
}

/// Opening a PostgreSQL store: connect, migrate (or check, read-only), and hand the database to `StateStore`.
public enum PostgresBackend {
    public static func openStore(url: String, poolSize: Int = 4, readOnly: Bool = false) throws -> StateStore {
        let database = try PostgresDatabase(url: url, poolSize: poolSize, readOnly: readOnly)
        if readOnly {
            try PostgresSchema.checkReadable(database)
        } else {
            try PostgresSchema.migrate(database)
        }
        return StateStore(backend: database)
    }

    /// The schema version this binary writes (the same number as SQLite's).
    public static var schemaVersion: Int { PostgresSchema.currentVersion }
}
