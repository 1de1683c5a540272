// A small value-type logger in the style of swift-log (a Logger value plus a pluggable sink), sized for one
// daemon: constant messages, structured fields that become journald fields, and a secret scrubber.
public import Core
public import Foundation

/// Severity, ordered from least to most severe; each maps to a syslog priority (sd-daemon.h `SD_*`).
public enum LogLevel: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case debug, info, notice, warning, error, critical

    /// `<7>` debug … `<2>` critical, as systemd's `SyslogLevelPrefix=` and journald `PRIORITY=` expect.
    public var syslogPriority: Int {
        switch self {
        case .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Parses the config's `log_level` names.
    public init?(name: String) {
        guard let level = LogLevel.allCases.first(where: { $0.description == name }) else { return nil }
        self = level
    }

    public var description: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A log message. Only string *literals* convert to it (no interpolation), so messages stay constant and
/// searchable, and nothing dynamic (least of all a secret) can slip into one; variable data goes in fields.
public struct LogMessage: Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let text: String
    public init(stringLiteral value: StaticString) { text = value.description }
    public var description: String { text }
}

/// A structured field name. Names are journald-safe: upper-case ASCII letters, digits and `_`, never starting
/// with `_` (reserved for trusted fields) or a digit (docs/JOURNAL_NATIVE_PROTOCOL.md).
public struct LogField: Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let name: String

    public init(_ raw: String) {
        var out = ""
        for scalar in raw.unicodeScalars {
            switch scalar {
            case "a"..."z": out.unicodeScalars.append(Unicode.Scalar(scalar.value - 32) ?? "_")
            case "A"..."Z", "0"..."9": out.unicodeScalars.append(scalar)
            default: out.append("_")
            }
        }
        while out.hasPrefix("_") { out.removeFirst() }
        if out.isEmpty { out = "FIELD" }
        if let first = out.unicodeScalars.first, ("0"..."9").contains(first) { out = "F" + out }
        name = String(out.prefix(64))
    }

    public init(stringLiteral value: String) { self.init(value) }
    public var description: String { name }

    public static let connection = LogField("CONNECTION")
    public static let object = LogField("OBJECT")
    public static let subscriber = LogField("SUBSCRIBER")
    public static let eventID = LogField("EVENT_ID")
    public static let recordID = LogField("RECORD_ID")
    /// Filled from the `error:` argument.
    public static let error = LogField("ERROR")
}

/// One field of a record.
public struct LogFieldValue: Sendable, Hashable {
    public var field: LogField
    public var value: String
    public init(_ field: LogField, _ value: String) {
        self.field = field
        self.value = value
    }
}

/// What a sink receives: already filtered by level and already scrubbed of registered secrets.
public struct LogRecord: Sendable {
    public var level: LogLevel
    public var message: String
    public var fields: [LogFieldValue]
    public var file: String
    public var line: UInt
    public var date: Date

    public init(level: LogLevel, message: String, fields: [LogFieldValue], file: String, line: UInt, date: Date) {
        self.level = level
        self.message = message
        self.fields = fields
        self.file = file
        self.line = line
        self.date = date
    }
}

/// Where records go (stderr, the journal socket, a test buffer). Must be safe to call from any thread.
public protocol LogSink: Sendable {
    func write(_ record: LogRecord)
}

/// The logger value. Copy it freely; `with(_:)` returns a logger that adds context fields to every record.
public struct Logger: Sendable {
    public var minimumLevel: LogLevel
    public private(set) var context: [LogFieldValue]
    public let sink: any LogSink
    /// The process's one scrubber (docs/DESIGN.md §1): every message and field passes it before the sink. It
    /// rides along with the logger so every component that logs can also scrub the texts it stores, and
    /// providers can register the tokens they mint.
    public let scrubber: SecretScrubber

    public init(level: LogLevel = .info, sink: any LogSink, scrubber: SecretScrubber = SecretScrubber()) {
        self.minimumLevel = level
        self.context = []
        self.sink = sink
        self.scrubber = scrubber
    }

    /// A logger whose records all carry `fields` (e.g. `[.connection: "acme-snow"]`).
    public func with(_ fields: KeyValuePairs<LogField, String>) -> Logger {
        var copy = self
        copy.context += fields.map { LogFieldValue($0.key, $0.value) }
        return copy
    }

    public func isEnabled(_ level: LogLevel) -> Bool { level >= minimumLevel }

    public func log(_ level: LogLevel, _ message: LogMessage, _ fields: KeyValuePairs<LogField, String> = [:],
                    error: (any Error)? = nil, file: String = #fileID, line: UInt = #line)
    {
        guard level >= minimumLevel else { return }
        var all = context
        all += fields.map { LogFieldValue($0.key, $0.value) }
        if let error { all.append(LogFieldValue(.error, String(describing: error))) }
        for i in all.indices { all[i].value = scrubber.scrub(all[i].value) }
        sink.write(LogRecord(level: level, message: scrubber.scrub(message.text), fields: all, file: file, line: line,
                             date: Date()))
    }

    public func debug(_ message: LogMessage, _ fields: KeyValuePairs<LogField, String> = [:], error: (any Error)? = nil,
                      file: String = #fileID, line: UInt = #line) {
        log(.debug, message, fields, error: error, file: file, line: line)
    }

    public func info(_ message: LogMessage, _ fields: KeyValuePairs<LogField, String> = [:], error: (any Error)? = nil,
                     file: String = #fileID, line: UInt = #line) {
        log(.info, message, fields, error: error, file: file, line: line)
    }

    public func notice(_ message: LogMessage, _ fields: KeyValuePairs<LogField, String> = [:], error: (any Error)? = nil,
                       file: String = #fileID, line: UInt = #line) {
        log(.notice, message, fields, error: error, file: file, line: line)
    }

    public func warning(_ message: LogMessage, _ fields: KeyValuePairs<LogField, String> = [:], error: (any Error)? = nil,
                        file: String = #fileID, line: UInt = #line) {
        log(.warning, message, fields, error: error, file: file, line: line)
    }

    public func error(_ message: LogMessage, _ fields: KeyValuePairs<LogField, String> = [:], error: (any Error)? = nil,
                      file: String = #fileID, line: UInt = #line) {
        log(.error, message, fields, error: error, file: file, line: line)
    }

    public func critical(_ message: LogMessage, _ fields: KeyValuePairs<LogField, String> = [:], error: (any Error)? = nil,
                         file: String = #fileID, line: UInt = #line) {
        log(.critical, message, fields, error: error, file: file, line: line)
    }
}
