// The daemon's supervisor and helpers in-process: reverse-order graceful shutdown, failure propagation, the
// shutdown deadline, the atomic metrics textfile and sd_notify to an abstract socket.
import Core
import Daemon
import Foundation
import Glibc
import Logging
import Synchronization
import Testing

/// Records what happened to each mock service, in order.
private final class Journal: Sendable {
    private let entries = Mutex<[String]>([])
    func add(_ entry: String) { entries.withLock { $0.append(entry) } }
    var all: [String] { entries.withLock { $0 } }
}

private enum Behaviour: Sendable {
    /// Returns promptly when asked.
    case cooperative
    /// Throws from run() after a moment.
    case fails
    /// Its shutdown never returns; run() only ends on cancellation.
    case hangsInShutdown
    /// Ignores cancellation too (a blocked thread).
    case ignoresCancellation
}

private final class MockService: Service {
    let name: String
    let behaviour: Behaviour
    let journal: Journal
    private let stop = Doorbell()
    let release = Mutex<CheckedContinuation<Void, Never>?>(nil)

    init(_ name: String, _ behaviour: Behaviour = .cooperative, journal: Journal) {
        self.name = name
        self.behaviour = behaviour
        self.journal = journal
    }

    struct Failure: Error, CustomStringConvertible { var description: String { "mock failure" } }

    func run() async throws {
        journal.add("run \(name)")
        defer { journal.add("returned \(name)") }
        switch behaviour {
        case .cooperative, .hangsInShutdown:
            await stop.wait()
        case .fails:
            try await Task.sleep(for: .milliseconds(50))
            throw Failure()
        case .ignoresCancellation:
            // Like a call stuck in C: neither shutdown nor cancellation ends it (an await that ignores
            // cancellation, so no test thread is blocked meanwhile).
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                release.withLock { $0 = continuation }
            }
        }
    }

    func shutdown(deadline: ContinuousClock.Instant) async {
        journal.add("shutdown \(name)")
        switch behaviour {
        case .cooperative, .fails: stop.close()
        case .hangsInShutdown:
            while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
        case .ignoresCancellation: break
        }
    }
}

private let quietLogger = Logger(level: .critical, sink: MemoryLogSink())

@Suite("daemon supervisor")
struct DaemonServiceGroupTests {
    @Test("graceful shutdown visits services in reverse order, each after the previous one returned")
    func reverseOrder() async {
        let journal = Journal()
        let services = ["store-side", "dispatcher", "engine"].map { MockService($0, journal: journal) }
        let trigger = ShutdownTrigger()
        Task {
            try? await Task.sleep(for: .milliseconds(100))
            trigger.fire(reason: "test")
        }
        let outcome = await ServiceGroup.run(services, trigger: trigger, shutdownTimeout: .seconds(5),
                                             logger: quietLogger)
        #expect(outcome.failures.isEmpty && !outcome.deadlineExceeded)
        let stops = journal.all.filter { $0.hasPrefix("shutdown") || $0.hasPrefix("returned") }
        #expect(stops == ["shutdown engine", "returned engine", "shutdown dispatcher", "returned dispatcher",
                          "shutdown store-side", "returned store-side"])
    }

    @Test("a failing service shuts the others down and is reported")
    func failurePropagates() async {
        let journal = Journal()
        let services = [MockService("a", journal: journal), MockService("b", .fails, journal: journal),
                        MockService("c", journal: journal)]
        let trigger = ShutdownTrigger()
        let outcome = await ServiceGroup.run(services, trigger: trigger, shutdownTimeout: .seconds(5),
                                             logger: quietLogger)
        #expect(outcome.failures.map(\.service) == ["b"])
        #expect(trigger.reason == "b failed")
        #expect(journal.all.contains("returned a") && journal.all.contains("returned c"))
    }

    @Test("a shutdown that hangs is cut off at the deadline and the rest is cancelled")
    func deadline() async {
        let journal = Journal()
        let services = [MockService("first", journal: journal), MockService("stuck", .hangsInShutdown, journal: journal)]
        let trigger = ShutdownTrigger()
        trigger.fire(reason: "test")
        // No wall-clock bound (a loaded machine stretches any): a run that ignored the deadline would never
        // return, and deadlineExceeded says the deadline, not the service, ended the shutdown.
        let outcome = await ServiceGroup.run(services, trigger: trigger, shutdownTimeout: .milliseconds(200),
                                             logger: quietLogger)
        #expect(outcome.deadlineExceeded && !outcome.abandoned)
        #expect(journal.all.contains("returned first"), "cancelled, not left running")
    }

    @Test("services that ignore cancellation are abandoned after the grace period")
    func abandoned() async {
        let journal = Journal()
        let services = [MockService("blocked", .ignoresCancellation, journal: journal)]
        let trigger = ShutdownTrigger()
        trigger.fire(reason: "test")
        let outcome = await ServiceGroup.run(services, trigger: trigger, shutdownTimeout: .milliseconds(100),
                                             cancellationGrace: .milliseconds(200), logger: quietLogger)
        #expect(outcome.abandoned)
        services[0].release.withLock { $0.take() }?.resume()  // let the simulated stuck call end
    }

    @Test("the metrics textfile is replaced atomically with mode 0644 whatever the umask")
    func textfile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dh-prom-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/deltahook.prom"
        let old = umask(0o077)
        defer { umask(old) }
        try MetricsService.writeAtomically("a 1\n", to: path)
        try MetricsService.writeAtomically("a 2\n", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "a 2\n")
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o644)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["deltahook.prom"])
        #expect(MetricsService.textfilePath(environment: ["RUNTIME_DIRECTORY": directory]) == path)
        #expect(throws: MetricsWriteError.self) { try MetricsService.writeAtomically("x", to: directory + "/no/such.prom") }
    }

    @Test("sd_notify reaches an abstract socket; nothing is sent when unsupervised")
    func abstractNotifySocket() throws {
        let name = "deltahook-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(bound == 0)
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "3000000"])
        #expect(notifier.watchdogInterval == .milliseconds(1500))
        notifier.reloading()
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = recv(fd, &buffer, buffer.count, 0)
        let text = String(decoding: buffer[..<max(0, n)], as: UTF8.self)
        #expect(text.hasPrefix("RELOADING=1\nMONOTONIC_USEC="), "\(text)")
        notifier.status("two\nlines")
        let m = recv(fd, &buffer, buffer.count, 0)
        #expect(String(decoding: buffer[..<max(0, m)], as: UTF8.self) == "STATUS=two lines")

        #expect(!SystemdNotifier(environment: [:]).notify("READY=1"))
        let otherPID = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"])
        #expect(otherPID.watchdogInterval == nil, "WATCHDOG_PID names another process")
    }
}
