import Foundation
import Glibc
import Testing
import Core
@testable import Logging

/// A temporary file opened read-write; stands in for fd 2 so tests never write to the real stderr.
final class TemporaryFile {
    let path: String
    let fd: Int32

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-log-\(UUID().uuidString)").path
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if fd < 0 { throw POSIXError(.EIO) }
    }

    /// `"dev:ino"` as systemd puts it in `$JOURNAL_STREAM`.
    var journalStream: String {
        var info = stat()
        fstat(fd, &info)
        return "\(info.st_dev):\(info.st_ino)"
    }

    var contents: String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    deinit {
        close(fd)
        unlink(path)
    }
}

@Suite struct StderrSinkTests {
    @Test func prefixesOnlyWhenJournalStreamMatches() throws {
        let file = try TemporaryFile()
        let other = try TemporaryFile()
        #expect(JournalStream.matches(fd: file.fd, variables: ["JOURNAL_STREAM": file.journalStream]))
        #expect(!JournalStream.matches(fd: file.fd, variables: ["JOURNAL_STREAM": other.journalStream]))
        #expect(!JournalStream.matches(fd: file.fd, variables: [:]))
        #expect(!JournalStream.matches(fd: file.fd, variables: ["JOURNAL_STREAM": "garbage"]))

        let journal = Logger(level: .debug, sink: StderrSink(fd: file.fd, variables: ["JOURNAL_STREAM": file.journalStream]))
        journal.warning("delivery failed", [.subscriber: "crm", "STATUS": "503"])
        journal.debug("poll started")
        #expect(file.contents == "<4>delivery failed subscriber=crm status=503\n<7>poll started\n")

        let plain = Logger(sink: StderrSink(fd: other.fd, variables: ["JOURNAL_STREAM": file.journalStream]))
        plain.error("poll failed", [.connection: "acme snow", "DETAIL": "line1\nline2 \"q\""])
        let line = other.contents
        #expect(!line.hasPrefix("<"))
        #expect(line.hasSuffix(" error poll failed connection=\"acme snow\" detail=\"line1\\nline2 \\\"q\\\"\"\n"), "\(line)")
        // 2026-11-29T06:00:00.123Z
        let stamp = String(line.prefix(24))
        #expect(stamp.count == 24 && stamp.hasSuffix("Z") && stamp.dropFirst(10).hasPrefix("T"), "\(stamp)")
    }

    @Test func levelsBelowTheMinimumAreDropped() {
        let sink = MemoryLogSink()
        let logger = Logger(level: .notice, sink: sink)
        logger.debug("a")
        logger.info("b")
        logger.notice("c")
        logger.critical("d")
        #expect(sink.records.map(\.message) == ["c", "d"])
        #expect(sink.records.map(\.level.syslogPriority) == [5, 2])
    }

    @Test func contextFieldsComeFirstAndErrorsBecomeAField() {
        struct Failure: Error, CustomStringConvertible { var description: String { "HTTP 503 from receiver" } }
        let sink = MemoryLogSink()
        let logger = Logger(sink: sink).with([.connection: "acme-snow", .object: "incident"])
        logger.error("page failed", [.recordID: "abc"], error: Failure())
        let record = sink.records[0]
        #expect(record.fields.map(\.field.name) == ["CONNECTION", "OBJECT", "RECORD_ID", "ERROR"])
        #expect(record.fields.last?.value == "HTTP 503 from receiver")
        #expect(record.file.hasSuffix("LoggingTests.swift"))
    }

    @Test func fieldNamesAreJournalSafe() {
        #expect(LogField("http.status").name == "HTTP_STATUS")
        #expect(LogField("_SYSTEMD_UNIT").name == "SYSTEMD_UNIT")
        #expect(LogField("5xx").name == "F5XX")
        #expect(LogField("").name == "FIELD")
        #expect(LogLevel(name: "warning") == .warning && LogLevel(name: "verbose") == nil)
    }

    @Test func automaticOutputChoosesByJournalStream() throws {
        let file = try TemporaryFile()
        let plain = LogOutput.automatic(variables: [:], stderrFD: file.fd, journalSocketPath: "/nonexistent")
        #expect((plain as? StderrSink)?.syslogPrefixes == false)
        let prefixed = LogOutput.automatic(variables: ["JOURNAL_STREAM": file.journalStream], stderrFD: file.fd,
                                           journalSocketPath: "/nonexistent/socket")
        #expect((prefixed as? StderrSink)?.syslogPrefixes == true)
        let receiver = try DatagramReceiver()
        let native = LogOutput.automatic(variables: ["JOURNAL_STREAM": file.journalStream], stderrFD: file.fd,
                                         journalSocketPath: receiver.path)
        #expect(native is JournalSink)
        let notUnderJournal = LogOutput.automatic(variables: [:], stderrFD: file.fd, journalSocketPath: receiver.path)
        #expect(notUnderJournal is StderrSink)
    }
}

/// A unix datagram socket bound in a temporary directory, standing in for journald.
final class DatagramReceiver {
    let directory: String
    let path: String
    let fd: Int32

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dj-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/socket"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if fd < 0 || rc != 0 { throw POSIXError(.EADDRINUSE) }
        // Bounded wait: a receive never blocks the suite for more than two seconds.
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func receive() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n >= 0 ? Array(buffer[0..<n]) : nil
    }

    deinit {
        close(fd)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Decodes a native-protocol datagram into ordered (key, value) pairs, handling both serialisations.
func decodeJournal(_ bytes: [UInt8]) -> [(String, String)]? {
    var out: [(String, String)] = []
    var i = 0
    while i < bytes.count {
        guard let end = bytes[i...].firstIndex(where: { $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\n") }) else { return nil }
        let key = String(decoding: bytes[i..<end], as: UTF8.self)
        if bytes[end] == UInt8(ascii: "=") {
            guard let newline = bytes[end...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            out.append((key, String(decoding: bytes[(end + 1)..<newline], as: UTF8.self)))
            i = newline + 1
        } else {
            guard end + 9 <= bytes.count else { return nil }
            var length: UInt64 = 0
            for k in 0..<8 { length |= UInt64(bytes[end + 1 + k]) << (8 * UInt64(k)) }
            let start = end + 9
            let stop = start + Int(length)
            guard stop < bytes.count, bytes[stop] == UInt8(ascii: "\n") else { return nil }
            out.append((key, String(decoding: bytes[start..<stop], as: UTF8.self)))
            i = stop + 1
        }
    }
    return out
}

@Suite struct JournalSinkTests {
    @Test func datagramFormatMatchesTheNativeProtocol() {
        let bytes = JournalSink.datagram([("PRIORITY", "6"), ("SYSLOG_IDENTIFIER", "exampled"), ("MESSAGE", "line1\nline2")])
        let expected = Array("PRIORITY=6\nSYSLOG_IDENTIFIER=exampled\nMESSAGE\n".utf8) + [11, 0, 0, 0, 0, 0, 0, 0]
            + Array("line1\nline2\n".utf8)
        #expect(bytes == expected)
    }

    @Test func sendsStructuredFieldsToTheSocket() throws {
        let receiver = try DatagramReceiver()
        let fallback = MemoryLogSink()
        let sink = try #require(JournalSink(socketPath: receiver.path, fallback: fallback))
        let logger = Logger(sink: sink).with([.subscriber: "crm"])
        logger.warning("delivery failed", [.eventID: "evt_1", "RESPONSE": "bad\ngateway"])
        let fields = try #require(receiver.receive().flatMap(decodeJournal))
        let dict = Dictionary(fields, uniquingKeysWith: { a, _ in a })
        #expect(dict["MESSAGE"] == "delivery failed")
        #expect(dict["PRIORITY"] == "4")
        #expect(dict["SYSLOG_IDENTIFIER"] == "deltahook")
        #expect(dict["SUBSCRIBER"] == "crm")
        #expect(dict["EVENT_ID"] == "evt_1")
        #expect(dict["RESPONSE"] == "bad\ngateway")
        #expect(dict["CODE_FILE"]?.hasSuffix("LoggingTests.swift") == true)
        #expect(dict["CODE_LINE"].flatMap(Int.init) != nil)
        #expect(fields.allSatisfy { !$0.0.hasPrefix("_") })
        #expect(fallback.records.isEmpty)
    }

    @Test func fallsBackWhenTheJournalIsGone() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dj-gone-\(UUID().uuidString.prefix(8))").path
        let fallback = MemoryLogSink()
        let sink = try #require(JournalSink(socketPath: directory + "/socket", fallback: fallback))
        Logger(sink: sink).error("poll failed")
        #expect(fallback.records.map(\.message) == ["poll failed"])
    }
}

@Suite struct RedactionTests {
    @Test func registeredSecretsNeverReachASink() throws {
        let secret = "tok_Zq9-DISTINCTIVE-4711"
        let redactions = SecretScrubber()
        redactions.register(secret)
        redactions.register("abc")  // too short to scrub safely: ignored
        let memory = MemoryLogSink()
        let file = try TemporaryFile()
        let receiver = try DatagramReceiver()
        let journal = try #require(JournalSink(socketPath: receiver.path))
        struct Leaky: Error, CustomStringConvertible { let token: String; var description: String { "401 for token \(token)" } }
        for sink in [memory, StderrSink(fd: file.fd, syslogPrefixes: false), journal] as [any LogSink] {
            let logger = Logger(sink: sink, scrubber: redactions).with(["AUTH": "Bearer \(secret)"])
            logger.error("auth failed", ["BODY": "{\"token\":\"\(secret)\"}\nabc"], error: Leaky(token: secret))
        }
        let datagram = String(decoding: try #require(receiver.receive()), as: UTF8.self)
        let everything = memory.records.flatMap { $0.fields.map(\.value) }.joined(separator: "\n") + file.contents + datagram
        #expect(!everything.contains(secret))
        #expect(everything.contains("Bearer <redacted>"))
        #expect(everything.contains("401 for token <redacted>"))
        #expect(memory.records[0].fields[1].value == "{\"token\":\"<redacted>\"}\nabc")
    }
}
