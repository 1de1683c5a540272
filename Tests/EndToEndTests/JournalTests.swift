// JournalSink against a real systemd-journald (docs/DESIGN.md §8): a standalone journald in a private journal
// namespace (`systemd-journald NAME` binds /run/systemd/journal.NAME/socket and writes
// /var/log/journal/<machine-id>.NAME), records sent through the native protocol, and the fields read back with
// `journalctl --namespace=NAME -o json`, filtered by SUBSCRIBER= the way operators filter `-u deltahook`.
// Needs root and /lib/systemd/systemd-journald; otherwise the test is skipped and says why.
import Core
import Foundation
import Logging
import TestSupport
import Testing

private enum JournalHarness {
    static let journald = "/lib/systemd/systemd-journald"
    static let journalctl = "/usr/bin/journalctl"

    /// nil when the test can run, else why not.
    static let skipReason: String? = {
        if getuid() != 0 { return "not root: a standalone systemd-journald needs root" }
        if !FileManager.default.isExecutableFile(atPath: journald) { return "\(journald) not installed" }
        if !FileManager.default.isExecutableFile(atPath: journalctl) { return "\(journalctl) not installed" }
        guard let id = try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8),
              id.trimmingCharacters(in: .whitespacesAndNewlines).count == 32
        else { return "/etc/machine-id missing: journald cannot name its files" }
        return nil
    }()

    static var available: Bool {
        if let skipReason { print("JournalTests skipped: \(skipReason)") }
        return skipReason == nil
    }
}

/// A journald serving one private namespace; `stop()` ends it and removes its sockets and files.
private final class PrivateJournald {
    let namespace: String
    let process = Process()
    var socketPath: String { "/run/systemd/journal.\(namespace)/socket" }

    init() throws {
        namespace = "deltahook-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        process.executableURL = URL(fileURLWithPath: JournalHarness.journald)
        process.arguments = [namespace]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Bounded wait for the socket to appear.
        _ = Wait.blocking(timeout: .seconds(5), interval: .milliseconds(50)) {
            FileManager.default.fileExists(atPath: socketPath)
        }
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            _ = Wait.blocking(timeout: .seconds(5), interval: .milliseconds(50)) { !process.isRunning }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: "/run/systemd/journal.\(namespace)")
        let machineID = ((try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for root in ["/var/log/journal", "/run/log/journal"] where !machineID.isEmpty {
            try? FileManager.default.removeItem(atPath: "\(root)/\(machineID).\(namespace)")
        }
    }

    /// `journalctl --namespace -o json` with extra match arguments; one JSON object per entry.
    func entries(_ matches: [String]) throws -> [[String: Any]] {
        let ctl = Process()
        ctl.executableURL = URL(fileURLWithPath: JournalHarness.journalctl)
        ctl.arguments = ["--namespace=\(namespace)", "-o", "json", "--no-pager", "--all"] + matches
        let out = Pipe()
        ctl.standardOutput = out
        ctl.standardError = FileHandle.nullDevice
        try ctl.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        ctl.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    /// Polls `entries` until `count` entries match or ~5 s pass (journald writes asynchronously).
    func waitForEntries(_ matches: [String], count: Int) throws -> [[String: Any]] {
        var found: [[String: Any]] = []
        _ = try Wait.blocking(timeout: .seconds(5), interval: .milliseconds(50)) {
            found = try entries(matches)
            return found.count >= count
        }
        return found
    }
}

@Suite("journald native protocol", .serialized)
struct JournalTests {
    @Test("JournalSink records reach journald with their structured fields, multi-line values intact",
          .enabled(if: JournalHarness.available, "needs root and systemd-journald"))
    func fieldsRoundTrip() throws {
        let journald = try PrivateJournald()
        defer { journald.stop() }
        #expect(FileManager.default.fileExists(atPath: journald.socketPath), "journald did not bind its socket")
        let sink = try #require(JournalSink(socketPath: journald.socketPath, identifier: "deltahook-test"))
        let redactions = SecretScrubber()
        redactions.register("hunter2-secret-value")
        let logger = Logger(level: .debug, sink: sink, scrubber: redactions)

        logger.info("delivery failed; will retry", [.subscriber: "crm", .eventID: "evt_abc", .connection: "acme-snow"])
        logger.warning("provider answered with an error", [.connection: "acme-snow", .object: "incident",
                                                           "RESPONSE": "line one\nline two\ntoken hunter2-secret-value"])
        logger.debug("other subscriber", [.subscriber: "billing"])

        let crm = try journald.waitForEntries(["SUBSCRIBER=crm"], count: 1)
        #expect(crm.count == 1)
        let first = try #require(crm.first)
        #expect(first["MESSAGE"] as? String == "delivery failed; will retry")
        #expect(first["EVENT_ID"] as? String == "evt_abc")
        #expect(first["CONNECTION"] as? String == "acme-snow")
        #expect(first["PRIORITY"] as? String == "6")
        #expect(first["SYSLOG_IDENTIFIER"] as? String == "deltahook-test")
        #expect(first["_TRANSPORT"] as? String == "journal")

        let multi = try journald.waitForEntries(["OBJECT=incident"], count: 1)
        let warning = try #require(multi.first)
        // The length-prefixed binary form keeps the newlines; the scrubber replaced the secret before sending.
        #expect(warning["RESPONSE"] as? String == "line one\nline two\ntoken <redacted>")
        #expect(warning["PRIORITY"] as? String == "4")

        let billing = try journald.waitForEntries(["SUBSCRIBER=billing"], count: 1)
        #expect(billing.count == 1)
        #expect(billing.first?["PRIORITY"] as? String == "7")
        // Nothing anywhere in the namespace carries the secret.
        let all = try journald.entries([])
        #expect(all.count >= 3)
        for entry in all {
            for value in entry.values {
                #expect(!String(describing: value).contains("hunter2-secret-value"))
            }
        }
    }
}
