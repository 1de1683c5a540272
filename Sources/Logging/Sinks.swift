// Output sinks: stderr (with syslog priority prefixes only under journald), the journald native socket, and
// an in-memory sink for tests. See docs/DESIGN.md §8 and docs/JOURNAL_NATIVE_PROTOCOL.md ("Automatic Protocol
// Upgrading").
public import Foundation
import Glibc
import Synchronization
import Core

/// Whether a file descriptor is the stream journald handed us: `$JOURNAL_STREAM` is `"<st_dev>:<st_ino>"`
/// of that stream, and only a match means our stderr really is the journal (not a redirect or a terminal).
public enum JournalStream {
    public static func matches(fd: Int32, variables: [String: String]) -> Bool {
        guard let value = variables["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}

/// Writes one line per record to a file descriptor (stderr by default).
///
/// Under journald (`syslogPrefixes`) a line is `<6>message key=value…`: systemd strips the prefix and uses
/// it as the priority (`SyslogLevelPrefix=` defaults to true), and adds its own timestamp. Elsewhere a line
/// is `2026-11-29T06:00:00.123Z info message key=value…` for terminals and redirected files.
public final class StderrSink: LogSink {
    private let fd: Mutex<Int32>
    public let syslogPrefixes: Bool

    public init(fd: Int32 = 2, syslogPrefixes: Bool) {
        self.fd = Mutex(fd)
        self.syslogPrefixes = syslogPrefixes
    }

    /// Prefixes exactly when `$JOURNAL_STREAM` matches `fd`.
    public convenience init(fd: Int32 = 2, variables: [String: String]) {
        self.init(fd: fd, syslogPrefixes: JournalStream.matches(fd: fd, variables: variables))
    }

    public func write(_ record: LogRecord) {
        let line = StderrSink.format(record, syslogPrefixes: syslogPrefixes)
        let bytes = Array(line.utf8)
        fd.withLock { fd in
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }  // nowhere left to report a logging failure
                offset += n
            }
        }
    }

    /// One line, newline-terminated. Field names are lower-cased, values quoted when needed, so every record
    /// stays on one line (journald makes each stderr line its own entry).
    public static func format(_ record: LogRecord, syslogPrefixes: Bool) -> String {
        var line = syslogPrefixes
            ? "<\(record.level.syslogPriority)>"
            : "\(timestamp(record.date)) \(record.level.description) "
        line += escape(record.message, quoteSpaces: false)
        for f in record.fields {
            line += " \(f.field.name.lowercased())=\(escape(f.value, quoteSpaces: true))"
        }
        line += "\n"
        return line
    }

    static func escape(_ value: String, quoteSpaces: Bool) -> String {
        let needsQuotes = quoteSpaces
            && (value.isEmpty || value.unicodeScalars.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0.value < 0x20 || $0 == "\\" })
        var out = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\"" where needsQuotes: out += "\\\""
            case "\\" where needsQuotes: out += "\\\\"
            default:
                if scalar.value < 0x20 { out += "\\u{\(String(scalar.value, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return needsQuotes ? "\"\(out)\"" : out
    }

    static func timestamp(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(ms / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ms % 1000), 3))Z"
    }
}

/// Sends each record as one datagram to journald's native socket, so fields (`CONNECTION=`, `SUBSCRIBER=`…)
/// are indexed and `journalctl -u deltahook SUBSCRIBER=crm` works (docs/DESIGN.md §8).
///
/// Datagrams carry `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`, `CODE_FILE`, `CODE_LINE` and every field.
/// Values containing a newline use the binary form (`KEY\n` + little-endian u64 length + bytes + `\n`).
/// If a send fails (journald gone, or `EMSGSIZE` for a huge record) the record goes to `fallback` instead;
/// the protocol's memfd path for oversized entries is not implemented, because records are one line plus
/// small fields and the send buffer is raised to 8 MiB.
public final class JournalSink: LogSink {
    public static let defaultSocketPath = "/run/systemd/journal/socket"

    private let socket: UnixDatagramSocket
    private let address: UnixSocketAddress
    public let identifier: String
    public let fallback: (any LogSink)?

    /// Nil when the socket path is too long or a socket cannot be created.
    public init?(socketPath: String = JournalSink.defaultSocketPath, identifier: String = "deltahook",
                 fallback: (any LogSink)? = nil)
    {
        guard let address = UnixSocketAddress(socketPath),
              let socket = try? UnixDatagramSocket(sendBufferSize: 8 << 20) else { return nil }
        self.socket = socket
        self.address = address
        self.identifier = identifier
        self.fallback = fallback
    }

    public func write(_ record: LogRecord) {
        do {
            try socket.send(JournalSink.encode(record, identifier: identifier), to: address)
        } catch {
            fallback?.write(record)
        }
    }

    /// The native-protocol datagram for a record.
    public static func encode(_ record: LogRecord, identifier: String) -> [UInt8] {
        var fields: [(String, String)] = [
            ("MESSAGE", record.message),
            ("PRIORITY", String(record.level.syslogPriority)),
            ("SYSLOG_IDENTIFIER", identifier),
            ("CODE_FILE", record.file),
            ("CODE_LINE", String(record.line)),
        ]
        for f in record.fields { fields.append((f.field.name, f.value)) }
        return datagram(fields)
    }

    /// Serialises fields; keys may repeat. Values containing `\n` must use the length-prefixed form.
    public static func datagram(_ fields: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (key, value) in fields {
            let bytes = Array(value.utf8)
            out += Array(key.utf8)
            if bytes.contains(UInt8(ascii: "\n")) {
                out.append(UInt8(ascii: "\n"))
                withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { out += $0 }
            } else {
                out.append(UInt8(ascii: "="))
            }
            out += bytes
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }
}

/// Keeps records in memory; for tests of any module that logs.
public final class MemoryLogSink: LogSink {
    private let storage = Mutex<[LogRecord]>([])
    public init() {}
    public func write(_ record: LogRecord) { storage.withLock { $0.append(record) } }
    public var records: [LogRecord] { storage.withLock { $0 } }
}

/// Picks the sink for this process (docs/DESIGN.md §8).
///
/// - stderr is the journal (`$JOURNAL_STREAM` matches) and the native socket exists: `JournalSink`, falling
///   back to prefixed stderr lines per record if a send fails. Nothing is written to stderr otherwise, since
///   journald captures stderr too and every line would appear twice.
/// - stderr is the journal but no socket: stderr with `<N>` prefixes.
/// - anything else (terminal, pipe, file, even on a host with journald): plain stderr lines, because the
///   operator is looking at stderr, not the journal.
public enum LogOutput {
    public static func automatic(variables: [String: String] = ProcessInfo.processInfo.environment,
                                 stderrFD: Int32 = 2,
                                 journalSocketPath: String = JournalSink.defaultSocketPath) -> any LogSink
    {
        guard JournalStream.matches(fd: stderrFD, variables: variables) else {
            return StderrSink(fd: stderrFD, syslogPrefixes: false)
        }
        let stderr = StderrSink(fd: stderrFD, syslogPrefixes: true)
        var info = stat()
        if stat(journalSocketPath, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK,
           let journal = JournalSink(socketPath: journalSocketPath, fallback: stderr)
        {
            return journal
        }
        return stderr
    }
}
