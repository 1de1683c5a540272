// PGError: what a failed libpq call reports, shaped for the store's retry decisions.
//
// The store retries a transaction on a serialization failure or deadlock, and reconnects on a lost connection;
// everything else is a bug or a constraint violation to report. SQLSTATE codes are the stable way to tell them
// apart (PostgreSQL docs — Appendix A, "PostgreSQL Error Codes"); message texts are localized and change.
//
// Nothing here ever holds a password: connection errors are built from `PGConnection.redact(url:)`.
import Foundation

/// A PostgreSQL or libpq failure.
public struct PGError: Error, CustomStringConvertible, Sendable {
    /// The five-character SQLSTATE (`PG_DIAG_SQLSTATE`), nil for client-side failures (no result from the server).
    public var sqlState: String?
    /// The primary message (`PG_DIAG_MESSAGE_PRIMARY`, or `PQerrorMessage` for client-side failures).
    public var message: String
    /// `PG_DIAG_MESSAGE_DETAIL`, e.g. which key violated a unique constraint.
    public var detail: String?
    /// `PG_DIAG_MESSAGE_HINT`.
    public var hint: String?
    /// The first 200 characters of the SQL that failed (never its parameters: they may be secrets).
    public var statement: String?
    /// True when libpq reported the connection as `CONNECTION_BAD` after the failure (`PQstatus`), e.g. the
    /// server restarted or the socket closed; such a failure has no SQLSTATE.
    public var connectionBad: Bool

    public init(sqlState: String? = nil, message: String, detail: String? = nil, hint: String? = nil,
                statement: String? = nil, connectionBad: Bool = false) {
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.statement = statement.map { String($0.prefix(200)) }
        self.connectionBad = connectionBad
    }

    /// 40001 serialization_failure or 40P01 deadlock_detected: the transaction can be retried as a whole.
    public var isSerializationFailure: Bool { sqlState == "40001" || sqlState == "40P01" }

    /// Class 08 (connection exception), 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, or
    /// a connection libpq reports as bad: reconnect (`PGConnection.reset()`) and retry.
    /// 08P01 protocol_violation on a still-good connection is excluded: the server reports a wrong parameter
    /// count that way and the session goes on, so reconnecting would only repeat the same bug.
    public var isConnectionFailure: Bool {
        if connectionBad { return true }
        guard let sqlState else { return false }
        if sqlState == "08P01" { return false }
        return sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(sqlState)
    }

    /// One line: `PostgreSQL error 23505: message; detail: …; hint: …; statement: …`.
    public var description: String {
        var text = "PostgreSQL error" + (sqlState.map { " " + $0 } ?? "") + ": " + message
        if let detail { text += "; detail: " + detail }
        if let hint { text += "; hint: " + hint }
        if let statement { text += "; statement: " + statement }
        if connectionBad { text += " (connection lost)" }
        return PGError.oneLine(text)
    }

    /// Collapses line breaks (libpq messages end with "\n" and may span lines) into "; ".
    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: "; ")
    }
}
