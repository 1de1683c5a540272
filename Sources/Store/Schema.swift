// Schema: the state store's tables and their versioned migrations (PRAGMA user_version).
//
// Each migration runs in its own write transaction together with its `PRAGMA user_version = N`, so a crash
// mid-upgrade leaves the file at the previous version. Re-opening an up-to-date file does nothing. A file
// written by a newer deltahook is refused rather than misread. All times are INTEGER Unix milliseconds.

enum Schema {
    /// Migrations in order; index + 1 is the `user_version` each one produces. Never edit a shipped migration:
    /// append a new one.
    static let migrations: [String] = [version1, version2, version3, version4, version5]

    /// The newest schema version this binary knows.
    static var currentVersion: Int { migrations.count }

    static let version1 = """
        -- Poll position per (connection, object, partition). docs/DESIGN.md §2 rules 1, 3, 6, 7.
        CREATE TABLE cursors (
            connection        TEXT    NOT NULL,
            object            TEXT    NOT NULL,
            partition         TEXT    NOT NULL DEFAULT '',
            watermark         INTEGER,          -- source instant (UTC ms) taken from the data
            resume_state      TEXT,             -- provider JSON: keyset position inside an unfinished scan
            delete_cursor     TEXT,             -- provider delete-feed position
            last_reconcile_at INTEGER,
            updated_at        INTEGER NOT NULL,
            PRIMARY KEY (connection, object, partition)
        ) WITHOUT ROWID;

        -- Last known state of every record, for diffing (rule 5) and tombstones (rule 6).
        CREATE TABLE snapshots (
            connection      TEXT    NOT NULL,
            object          TEXT    NOT NULL,
            record_id       TEXT    NOT NULL,
            content_hash    TEXT    NOT NULL,
            record          TEXT    NOT NULL,   -- canonical normalized record JSON
            raw             TEXT    NOT NULL,   -- provider JSON as returned
            source_ts       INTEGER,
            tombstoned      INTEGER NOT NULL DEFAULT 0 CHECK (tombstoned IN (0, 1)),
            tombstoned_at   INTEGER,
            last_seen_sweep INTEGER NOT NULL DEFAULT 0,  -- start time (ms) of the last reconciliation that saw it
            updated_at      INTEGER NOT NULL,
            PRIMARY KEY (connection, object, record_id)
        );
        -- Live ids in id order: reconciliation walks this (covering) index in keyset pages.
        CREATE INDEX snapshots_live ON snapshots (connection, object, record_id, last_seen_sweep, updated_at)
            WHERE tombstoned = 0;

        -- The outbox. seq orders delivery; event_id is the deterministic webhook-id (rule 8).
        CREATE TABLE events (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id    TEXT    NOT NULL UNIQUE,
            type        TEXT    NOT NULL,
            model       TEXT    NOT NULL,
            kind        TEXT    NOT NULL CHECK (kind IN ('created', 'updated', 'deleted')),
            connection  TEXT    NOT NULL,
            provider    TEXT    NOT NULL,
            object      TEXT    NOT NULL,
            record_id   TEXT    NOT NULL,
            occurred_at INTEGER,
            detected_at INTEGER NOT NULL,
            record      TEXT    NOT NULL,
            changes     TEXT,
            raw         TEXT    NOT NULL
        );
        CREATE INDEX events_detected ON events (detected_at);
        CREATE INDEX events_source ON events (connection, object, seq);
        CREATE INDEX events_record ON events (connection, object, record_id, seq);

        -- One row per (event, subscriber). docs/DESIGN.md §5.
        CREATE TABLE deliveries (
            id              INTEGER PRIMARY KEY,
            event_seq       INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
            subscriber      TEXT    NOT NULL,
            record_key      TEXT    NOT NULL,   -- connection/object/record_id: per-record ordering
            state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,
            last_status     INTEGER,
            last_error      TEXT,
            created_at      INTEGER NOT NULL,
            updated_at      INTEGER NOT NULL,
            delivered_at    INTEGER,
            UNIQUE (event_seq, subscriber)
        );
        -- Due deliveries per subscriber in event order.
        CREATE INDEX deliveries_pending ON deliveries (subscriber, event_seq, next_attempt_at)
            WHERE state = 'pending';
        -- Earliest undelivered per (subscriber, record_key): the head of each record's queue.
        CREATE INDEX deliveries_pending_record ON deliveries (subscriber, record_key, event_seq)
            WHERE state = 'pending';
        -- `deliveries list [--failed]`, newest first.
        CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber, state, id);

        -- Every HTTP attempt, for `deliveries list` and debugging.
        CREATE TABLE attempts (
            id               INTEGER PRIMARY KEY,
            delivery_id      INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
            attempted_at     INTEGER NOT NULL,
            http_status      INTEGER,
            latency_ms       INTEGER NOT NULL,
            response_excerpt TEXT,              -- at most 4 KB
            error            TEXT
        );
        CREATE INDEX attempts_delivery ON attempts (delivery_id, id);

        -- Operator and policy state of subscribers (pause after failing for days, 410 disables).
        CREATE TABLE subscribers (
            id            TEXT    NOT NULL PRIMARY KEY,
            state         TEXT    NOT NULL CHECK (state IN ('active', 'paused', 'disabled')),
            reason        TEXT,
            changed_at    INTEGER NOT NULL,
            failing_since INTEGER
        ) WITHOUT ROWID;

        -- Per (connection, object) poll health for `deltahook status`.
        CREATE TABLE poll_status (
            connection      TEXT    NOT NULL,
            object          TEXT    NOT NULL,
            last_poll_at    INTEGER,
            last_success_at INTEGER,
            last_error      TEXT,
            last_error_at   INTEGER,
            events_total    INTEGER NOT NULL DEFAULT 0,
            records_total   INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (connection, object)
        ) WITHOUT ROWID;
        """

    /// Write cost of a changed record (docs/DESIGN.md §9 measures it against raw SQLite row writes).
    /// - `events_record` served no query: nothing reads events by record id.
    /// - `snapshots_live` carried `updated_at`, and the page upsert set `last_seen_sweep` and `tombstoned`, so every
    ///   snapshot write deleted and re-inserted the record's entry in it. The index now holds only what the sweep
    ///   filters on, and the upsert of a live record (`StateStore.upsertLiveSnapshotSQL`) sets none of its columns,
    ///   so SQLite leaves it alone. A write still counts as "seen" by a running sweep through `updated_at`, which
    ///   `unseenLiveIDs` checks for the few candidates the index yields.
    static let version2 = """
        DROP INDEX events_record;
        DROP INDEX snapshots_live;
        CREATE INDEX snapshots_live ON snapshots (connection, object, record_id, last_seen_sweep) WHERE tombstoned = 0;
        """

    /// Untrusted provider answers (docs/DESIGN.md §2 rules 11, 16, 17):
    /// - `quarantine`: records an adapter could not accept, so one poison record no longer stalls its object.
    /// - `held_sweeps`: reconciliation results the mass-delete guard refused to apply until an operator says so.
    /// - `auth_state`: provider auth state that must survive a restart (a rotated ServiceNow refresh token).
    /// - `events.changed_fields`: which provider fields an `updated` event changed (docs/DESIGN.md §2 rule 5a).
    /// - `deliveries`: state `orphaned` and `lease_token`; `snapshots_tombstoned` (docs/DESIGN.md §5, §6).
    static let version3 = """
        -- A record the adapter rejected (bad id, timestamp out of range, unparseable model field, too large).
        -- `record_key` is the provider id when one could be read, else the position in the page ("$.result[3]").
        CREATE TABLE quarantine (
            connection     TEXT    NOT NULL,
            object         TEXT    NOT NULL,
            record_key     TEXT    NOT NULL,
            record_id      TEXT,                -- the provider id, when it could be read at all
            reason         TEXT    NOT NULL,
            raw_excerpt    TEXT    NOT NULL,    -- first 4 KB of the record's raw text
            first_seen_at  INTEGER NOT NULL,
            last_seen_at   INTEGER NOT NULL,
            seen_count     INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (connection, object, record_key)
        ) WITHOUT ROWID;

        -- A sweep the mass-delete guard held: it would have tombstoned `would_delete` of `live` records.
        -- One row per object; `reconcile --apply-held` applies the stored ids once and deletes the row.
        CREATE TABLE held_sweeps (
            connection     TEXT    NOT NULL,
            object         TEXT    NOT NULL,
            sweep_started  INTEGER NOT NULL,
            held_at        INTEGER NOT NULL,
            would_delete   INTEGER NOT NULL,
            live           INTEGER NOT NULL,
            listed         INTEGER NOT NULL,
            record_ids     TEXT    NOT NULL,    -- JSON array of the ids the sweep would tombstone
            apply_requested INTEGER NOT NULL DEFAULT 0 CHECK (apply_requested IN (0, 1)),
            PRIMARY KEY (connection, object)
        ) WITHOUT ROWID;

        -- Provider field names whose values changed in an `updated` event (names only; rule 5a). NULL otherwise.
        ALTER TABLE events ADD COLUMN changed_fields TEXT;

        -- Provider auth state kept across restarts (never logged, never shown by status).
        CREATE TABLE auth_state (
            connection  TEXT    NOT NULL,
            key         TEXT    NOT NULL,
            value       TEXT    NOT NULL,
            updated_at  INTEGER NOT NULL,
            PRIMARY KEY (connection, key)
        ) WITHOUT ROWID;

        -- Bounded storage and lease-checked results (docs/DESIGN.md §5, §6 `retention`):
        -- * state `orphaned`: a pending delivery to a subscriber no longer in the config; pruned like `failed`.
        -- * `lease_token`: bumped by every claim and every re-arm (redeliver, replay); a result is written only
        --   while the row still holds the token of the claim that produced it.
        -- SQLite cannot change a CHECK constraint in place, so deliveries is rebuilt, and attempts with it (its
        -- foreign key names deliveries; dropping the old deliveries with foreign keys on would cascade into it).
        -- Tables are renamed first so the copies keep their ids; the indexes keep their names.
        DROP INDEX deliveries_pending;
        DROP INDEX deliveries_pending_record;
        DROP INDEX deliveries_by_subscriber;
        DROP INDEX attempts_delivery;
        ALTER TABLE attempts RENAME TO attempts_v2;
        ALTER TABLE deliveries RENAME TO deliveries_v2;
        CREATE TABLE deliveries (
            id              INTEGER PRIMARY KEY,
            event_seq       INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
            subscriber      TEXT    NOT NULL,
            record_key      TEXT    NOT NULL,   -- connection/object/record_id: per-record ordering
            state           TEXT    NOT NULL DEFAULT 'pending'
                                    CHECK (state IN ('pending', 'delivered', 'failed', 'orphaned')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,
            last_status     INTEGER,
            last_error      TEXT,
            created_at      INTEGER NOT NULL,
            updated_at      INTEGER NOT NULL,   -- for terminal states: when the state was reached (retention)
            delivered_at    INTEGER,
            lease_token     INTEGER NOT NULL DEFAULT 0,
            UNIQUE (event_seq, subscriber)
        );
        INSERT INTO deliveries (id, event_seq, subscriber, record_key, state, attempts, next_attempt_at, last_status,
                                last_error, created_at, updated_at, delivered_at)
            SELECT id, event_seq, subscriber, record_key, state, attempts, next_attempt_at, last_status, last_error,
                   created_at, updated_at, delivered_at
            FROM deliveries_v2;
        CREATE TABLE attempts (
            id               INTEGER PRIMARY KEY,
            delivery_id      INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
            attempted_at     INTEGER NOT NULL,
            http_status      INTEGER,
            latency_ms       INTEGER NOT NULL,
            response_excerpt TEXT,              -- at most 4 KB
            error            TEXT
        );
        INSERT INTO attempts (id, delivery_id, attempted_at, http_status, latency_ms, response_excerpt, error)
            SELECT id, delivery_id, attempted_at, http_status, latency_ms, response_excerpt, error FROM attempts_v2;
        DROP TABLE attempts_v2;
        DROP TABLE deliveries_v2;
        CREATE INDEX deliveries_pending ON deliveries (subscriber, event_seq, next_attempt_at)
            WHERE state = 'pending';
        CREATE INDEX deliveries_pending_record ON deliveries (subscriber, record_key, event_seq)
            WHERE state = 'pending';
        CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber, state, id);
        CREATE INDEX attempts_delivery ON attempts (delivery_id, id);

        -- Tombstones by age, for their retention; only tombstoning and undeleting touch it.
        CREATE INDEX snapshots_tombstoned ON snapshots (tombstoned_at) WHERE tombstoned = 1;
        """

    /// Several daemons on one database (docs/DESIGN.md §2 rules 19–21). A single SQLite daemon writes these tables
    /// too (it is a cluster of one), so both backends run the same code. Times come from the database's clock.
    /// - `nodes`: one row per running daemon, its heartbeat; a node is alive while its heartbeat is younger than
    ///   the lease ttl.
    /// - `poll_leases`: who polls each (connection, object); `token` grows with every change of owner, and every
    ///   write for the object checks owner and token in its own transaction (fencing).
    /// - `provider_waits`: a rate-limit wait a provider imposed on a connection, honoured by every node.
    /// - `permits`: slots of a cluster-wide semaphore (NetSuite's per-account concurrency), each with an expiry so
    ///   a dead node's slot frees itself.
    static let version4 = """
        CREATE TABLE nodes (
            node_id      TEXT    NOT NULL PRIMARY KEY,
            host         TEXT    NOT NULL,
            pid          INTEGER NOT NULL,
            version      TEXT    NOT NULL,
            started_at   INTEGER NOT NULL,
            heartbeat_at INTEGER NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE poll_leases (
            connection  TEXT    NOT NULL,
            object      TEXT    NOT NULL,
            owner       TEXT    NOT NULL,
            token       INTEGER NOT NULL,
            acquired_at INTEGER NOT NULL,
            expires_at  INTEGER NOT NULL,
            PRIMARY KEY (connection, object)
        ) WITHOUT ROWID;
        CREATE INDEX poll_leases_owner ON poll_leases (owner, expires_at);

        CREATE TABLE provider_waits (
            connection TEXT    NOT NULL PRIMARY KEY,
            until      INTEGER NOT NULL,
            reason     TEXT    NOT NULL,
            set_by     TEXT    NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE permits (
            name       TEXT    NOT NULL,
            slot       INTEGER NOT NULL,
            owner      TEXT    NOT NULL,
            expires_at INTEGER NOT NULL,
            PRIMARY KEY (name, slot)
        ) WITHOUT ROWID;
        """

    /// Version 5, request budgets (docs/DESIGN.md §2 rule 22, `Store/RequestBudgets.swift`):
    /// - `request_budget`: requests counted per connection and window (`span` 86400: the UTC day starting at
    ///   `window_start`, 60: the minute), shared by every node.
    /// - `budget_plans`: the scheduler's latest plan per budgeted object, for `status` in another process.
    static let version5 = """
        CREATE TABLE request_budget (
            connection   TEXT    NOT NULL,
            span         INTEGER NOT NULL,
            window_start INTEGER NOT NULL,
            used         INTEGER NOT NULL,
            PRIMARY KEY (connection, span, window_start)
        ) WITHOUT ROWID;

        CREATE TABLE budget_plans (
            connection             TEXT    NOT NULL,
            object                 TEXT    NOT NULL,
            configured_interval_ms INTEGER NOT NULL,
            effective_interval_ms  INTEGER NOT NULL,
            cost_per_cycle         REAL    NOT NULL,
            per_day                INTEGER NOT NULL,
            updated_at             INTEGER NOT NULL,
            PRIMARY KEY (connection, object)
        ) WITHOUT ROWID;
        """

    /// Brings the file up to ``currentVersion``, or refuses a newer one. Idempotent.
    static func migrate(_ database: Database) throws {
        let found = try database.withConnection { try $0.queryOne("PRAGMA user_version") { $0.int(0) } ?? 0 }
        try checkNotNewer(found: found, path: database.path)
        guard found < currentVersion else { return }
        for version in (found + 1)...currentVersion {
            try database.write { db in
                // Re-check inside the write lock: another process may have migrated meanwhile.
                let now = try db.queryOne("PRAGMA user_version") { $0.int(0) } ?? 0
                try checkNotNewer(found: now, path: database.path)
                guard now < version else { return }
                try db.executeScript(migrations[version - 1])
                try db.executeScript("PRAGMA user_version = \(version)")
            }
        }
        if found > 0 { try enableIncrementalVacuum(database, upTo: vacuumOnUpgradeLimit) }
    }

    /// Files up to this size are rewritten by one VACUUM when an upgrade runs, to switch on incremental vacuum;
    /// larger ones wait for `deltahook prune --vacuum` (a VACUUM needs the file's size again in free space and
    /// blocks writers while it runs).
    static let vacuumOnUpgradeLimit: Int64 = 64 << 20

    /// Switches an existing file to `auto_vacuum = INCREMENTAL` (docs/DESIGN.md §6 `retention`) with a full
    /// VACUUM, when it is not already and is at most `limit` bytes. New files get the mode at creation
    /// (``Database``). Returns whether it vacuumed.
    /// Related SQLite documentation: <https://www.sqlite.org/pragma.html#pragma_auto_vacuum>
    @discardableResult
    static func enableIncrementalVacuum(_ database: Database, upTo limit: Int64 = .max) throws -> Bool {
        try database.withConnection { db in
            let mode = try db.queryOne("PRAGMA auto_vacuum") { $0.int(0) } ?? 0
            guard mode != 2 else { return false }
            let pages = try db.queryOne("PRAGMA page_count") { $0.int64(0) } ?? 0
            let pageSize = try db.queryOne("PRAGMA page_size") { $0.int64(0) } ?? 4096
            guard pages.multipliedReportingOverflow(by: pageSize).partialValue <= limit else { return false }
            try db.executeScript("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
            return true
        }
    }

    /// A read-only open cannot migrate: it needs exactly the current version.
    static func checkReadable(_ database: Database) throws {
        let found = try database.read { try $0.queryOne("PRAGMA user_version") { $0.int(0) } ?? 0 }
        try checkNotNewer(found: found, path: database.path)
        if found < currentVersion {
            throw StoreError(
                code: .schemaTooOld(found: found, known: currentVersion),
                message: found == 0
                    ? "state file \(database.path) is not initialised"
                    : "state file \(database.path) has schema version \(found), this deltahook expects \(currentVersion)",
                path: database.path, hint: "start the daemon (deltahook run) once so it creates or upgrades the store")
        }
    }

    private static func checkNotNewer(found: Int, path: String) throws {
        guard found > currentVersion else { return }
        throw StoreError(
            code: .schemaTooNew(found: found, known: currentVersion),
            message: "state file \(path) has schema version \(found), this deltahook knows up to \(currentVersion)",
            path: path, hint: "upgrade deltahook")
    }
}
