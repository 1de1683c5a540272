// PGConnection against a real PostgreSQL: parameters and results in text format, errors with SQLSTATE, the
// prepared-statement cache, reconnecting after a server restart. Every test but the connect-failure and
// redaction ones needs the PostgreSQL server binaries; without them they return early (TestSupport prints
// "PostgreSQL tests skipped: <reason>" once).
import Foundation
import PostgresStore
import Testing
import TestSupport

@Suite(.serialized)
struct PGConnectionTests {
    /// A connection to a fresh database on the run's server, nil when PostgreSQL is unavailable.
    private func freshConnection(_ prefix: String) throws -> PGConnection? {
        guard let url = try PostgresTestSupport.freshDatabaseURL(prefix: prefix) else { return nil }
        return try PGConnection(url: url)
    }

    @Test func connectFailureNamesHostAndHidesPassword() throws {
        // Port 1 on loopback: nothing listens, so the connection is refused at once.
        for url in ["postgresql://alice:s3cretPW@127.0.0.1:1/nodb?connect_timeout=2",
                    "host=127.0.0.1 port=1 dbname=nodb user=alice password=s3cretPW connect_timeout=2",
                    "host=127.0.0.1 port=1 dbname=nodb user=alice password='s3cretPW' connect_timeout=2",
                    // Malformed: libpq's parser quotes the bad token, which here holds the password.
                    "postgresql://alice:s3cretPW%zz@127.0.0.1:1/nodb"] {
            do {
                _ = try PGConnection(url: url)
                Issue.record("connected to nothing: \(url)")
            } catch let error as PGError {
                let text = error.description
                #expect(text.contains("127.0.0.1"), "\(text)")
                #expect(text.contains("nodb"), "\(text)")
                #expect(!text.contains("s3cretPW"), "\(text)")
                #expect(!text.contains("\n"))
                #expect(error.isConnectionFailure)
            }
        }
    }

    @Test func redactHidesEveryPasswordForm() {
        let cases: [(String, String)] = [
            ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
            ("postgres://u:p@ss@h:5432/db?sslmode=require", "postgres://u:***@h:5432/db?sslmode=require"),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            ("postgresql:///db?host=/tmp&password=pw&user=u", "postgresql:///db?host=/tmp&password=***&user=u"),
            ("host=h password=pw dbname=db", "host=h password=*** dbname=db"),
            ("host=h PASSWORD = 'a b\\' c' dbname=db", "host=h PASSWORD = *** dbname=db"),
            ("host=h sslpassword=key dbname=db", "host=h sslpassword=*** dbname=db"),
            ("host=h dbname=db", "host=h dbname=db"),
        ]
        for (input, expected) in cases {
            #expect(PGConnection.redact(url: input) == expected, "\(input)")
        }
    }

    @Test func parametersAndResultsRoundTrip() throws {
        guard let connection = try freshConnection("pg_params") else { return }
        try connection.executeScript("""
            CREATE TABLE things (id int8 PRIMARY KEY, name text, payload bytea, score float8, active bool)
            """)
        let name = "O'Reilly \"quoted\" \\ back — ünïcødé 🚀; DROP TABLE things; --"
        let payload = (0...255).map { UInt8($0) }
        let insert = "INSERT INTO things (id, name, payload, score, active) VALUES ($1, $2, $3, $4, $5)"
        let inserted = try connection.execute(insert, ["9007199254740993", name, PGText.bytea(payload), "2.5", "true"])
        #expect(inserted.affectedRows == 1)
        try connection.execute(insert, ["-7", nil, nil, nil, nil])

        let rows = try connection.execute("SELECT id, name, payload, score, active FROM things ORDER BY id", [])
        #expect(rows.rowCount == 2)
        #expect(rows.columnCount == 5)
        #expect(rows.columnNames == ["id", "name", "payload", "score", "active"])
        #expect(rows.int64(0, 0) == -7)
        for column in 1..<5 { #expect(rows.isNull(0, column)) }
        #expect(rows.text(0, 1) == nil)
        #expect(rows.int64(1, 0) == 9_007_199_254_740_993)
        #expect(rows.text(1, 1) == name)
        #expect(rows.bytes(1, 2) == payload)
        #expect(rows.double(1, 3) == 2.5)
        #expect(rows.bool(1, 4) == true)
        #expect(rows.text(2, 0) == nil)  // out of range is nil, not a crash

        let session = try connection.execute("SELECT current_setting('client_encoding'), current_setting('application_name')", [])
        #expect(session.text(0, 0) == "UTF8")
        #expect(session.text(0, 1) == "deltahook")

        // Untyped parameters take their type from context.
        let sum = try connection.execute("SELECT $1::int8 + 1, $2::bytea, length($3)", ["41", PGText.bytea([]), "ü"])
        #expect(sum.int64(0, 0) == 42)
        #expect(sum.bytes(0, 1) == [])
        #expect(sum.int64(0, 2) == 1)
        let updated = try connection.execute("UPDATE things SET score = $1 WHERE id > $2", ["1e300", "-100"])
        #expect(updated.affectedRows == 2)
        #expect(try connection.execute("DELETE FROM things WHERE id = $1", ["12345"]).affectedRows == 0)
    }

    @Test func byteaTextForms() {
        #expect(PGText.bytea([0x00, 0xAB, 0xFF]) == "\\x00abff")
        #expect(PGText.decodeBytea("\\x00ABff") == [0x00, 0xAB, 0xFF])
        #expect(PGText.decodeBytea("a\\\\b\\001") == [0x61, 0x5C, 0x62, 0x01])  // escape form
        #expect(PGText.decodeBytea("\\x0") == nil)
        #expect(PGText.decodeBytea("\\xzz") == nil)
    }

    @Test func errorsCarrySQLStateAndLeaveTheConnectionUsable() throws {
        guard let connection = try freshConnection("pg_errors") else { return }
        try connection.executeScript("CREATE TABLE keys (k text PRIMARY KEY)")
        try connection.execute("INSERT INTO keys VALUES ($1)", ["a"])
        do {
            try connection.execute("INSERT INTO keys VALUES ($1)", ["a"])
            Issue.record("duplicate key accepted")
        } catch let error as PGError {
            #expect(error.sqlState == "23505")
            #expect(error.detail?.contains("(k)=(a)") == true, "\(error)")
            #expect(error.statement == "INSERT INTO keys VALUES ($1)")
            #expect(!error.isConnectionFailure)
            #expect(!error.isSerializationFailure)
        }
        do {
            try connection.executeScript("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
            Issue.record("no error raised")
        } catch let error as PGError {
            #expect(error.isSerializationFailure)
            #expect(error.message == "conflict")
        }
        do {
            try connection.execute("SELEC 1", [])
            Issue.record("syntax error accepted")
        } catch let error as PGError {
            #expect(error.sqlState == "42601")
        }
        do {
            try connection.execute("SELECT $1::text, $2::text", ["only one"])
            Issue.record("a missing parameter was accepted")
        } catch let error as PGError {
            #expect(error.sqlState == "08P01", "\(error)")
            #expect(!error.isConnectionFailure)
        }
        #expect(connection.isHealthy)
        #expect(try connection.execute("SELECT count(*) FROM keys", []).int64(0, 0) == 1)
    }

    @Test func preparedStatementsAreReusedAndBounded() throws {
        guard let connection = try freshConnection("pg_prepared") else { return }
        let sql = "SELECT $1::int8 * 2"
        #expect(try connection.execute(sql, ["2"]).int64(0, 0) == 4)
        #expect(try connection.execute(sql, ["5"]).int64(0, 0) == 10)
        let count = "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1"
        #expect(try connection.execute(count, [sql]).int64(0, 0) == 1)

        // Past the cache limit the session's statements are dropped (DEALLOCATE ALL) and prepared again on use.
        for index in 0...PGConnection.statementCacheLimit {
            #expect(try connection.execute("SELECT \(index)::int8 + $1::int8", ["1"]).int64(0, 0) == Int64(index + 1))
        }
        let total = try connection.execute("SELECT count(*) FROM pg_prepared_statements", []).int64(0, 0) ?? -1
        #expect(total > 0 && total <= Int64(PGConnection.statementCacheLimit))
        #expect(try connection.execute(sql, ["21"]).int64(0, 0) == 42)
    }

    @Test func executeScriptRunsSeveralStatementsAndTransactions() throws {
        guard let connection = try freshConnection("pg_script") else { return }
        try connection.executeScript("""
            CREATE TABLE IF NOT EXISTS log (n int4 NOT NULL);
            CREATE TABLE IF NOT EXISTS log (n int4 NOT NULL);
            INSERT INTO log VALUES (1); INSERT INTO log VALUES (2);
            """)
        try connection.executeScript("BEGIN")
        try connection.execute("INSERT INTO log VALUES ($1)", ["3"])
        try connection.executeScript("ROLLBACK")
        try connection.executeScript("BEGIN; INSERT INTO log VALUES (4); COMMIT")
        let sum = try connection.execute("SELECT sum(n), count(*) FROM log", [])
        #expect(sum.int64(0, 0) == 7)
        #expect(sum.int64(0, 1) == 3)
        do {
            try connection.executeScript("INSERT INTO log VALUES (5); INSERT INTO log VALUES (NULL)")
            Issue.record("NULL accepted")
        } catch let error as PGError {
            #expect(error.sqlState == "23502")
        }
        // A simple-query script is one implicit transaction: the first INSERT was rolled back with the second.
        #expect(try connection.execute("SELECT count(*) FROM log", []).int64(0, 0) == 3)
    }

    @Test func resetReconnectsAfterServerRestart() throws {
        if let reason = PostgresServer.unavailableReason {
            print("PostgreSQL tests skipped: \(reason)")
            return
        }
        let server = try PostgresServer.start()
        defer { server.stop() }
        let connection = try PGConnection(url: try server.createDatabase("restart_test"))
        let sql = "SELECT $1::text || '!'"
        #expect(try connection.execute(sql, ["up"]).text(0, 0) == "up!")

        try server.restart()
        do {
            try connection.execute(sql, ["down"])
            Issue.record("a terminated session still answered")
        } catch let error as PGError {
            #expect(error.isConnectionFailure, "\(error)")
        }
        connection.reset()
        #expect(connection.isHealthy)
        // The statement is prepared again in the new session.
        #expect(try connection.execute(sql, ["again"]).text(0, 0) == "again!")
    }
}
