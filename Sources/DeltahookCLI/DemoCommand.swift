// `deltahook demo`: the README's first command. Emulated ServiceNow, GitHub, NetSuite and Zoho Books (on a request
// budget) with a change generator, a receiver that verifies every signature, and the REAL daemon (`Daemon.run` with `DeltahookPipeline.make`, the
// exact code `deltahook run` runs) pointed at them through a generated config — all on 127.0.0.1, secrets in a
// temporary $CREDENTIALS_DIRECTORY, state in a temporary directory removed at exit. No network, no config.
//
// Stopping: the daemon handles SIGINT (Ctrl-C) and SIGTERM itself (drain, exit 0), then the demo prints its
// summary. `--duration` ends the run the way an operator would, by sending the process SIGTERM. The demo must not
// install a signal source of its own: with libdispatch on Linux a second DispatchSource for the same signal
// leaves the daemon's source deaf (seen here: the daemon never stopped). Instead both signals are ignored from the
// start, so one that arrives before the daemon listens cannot kill the process and leave the temporary directory
// behind; SIGTERM is re-sent until the daemon is down in case the first one came too early.
import Core
import Daemon
import Emulators
import Engine
import Foundation
import Glibc
import Logging
import Store
import Synchronization

struct DemoCommand: Command {
    static let name = "demo"
    static let summary = "Run the built-in demo: emulated providers, a verifying receiver and a live event feed"
    static let options: [OptionSpec] = [
        .value("--duration", "D", "stop after D (e.g. 20s, 2m); default: run until Ctrl-C"),
        .flag("--json", "one JSON object per delivered event on stdout, then {\"summary\": …}"),
        .flag("--verbose", alias: "-v", "the daemon logs at info level, and the generator's edits are shown (stderr)"),
    ]
    static let details = """
        Starts emulated ServiceNow (incident → ticket, sys_user → user, OAuth client credentials), GitHub
        (issues → ticket, token), NetSuite (customer → customer, TBA) and a Zoho Books organization (invoices →
        invoice, contacts → customer, OAuth refresh token, on a request budget) on 127.0.0.1 with a few records each,
        a webhook receiver that verifies every Standard Webhooks signature with its own copy of the secret, and
        the real daemon (the supervisor, engine and dispatcher of `deltahook run`) against them. A change
        generator edits records every second; each delivered event is printed as it arrives. The summary shows
        the Zoho connection's requests used against its budget and the intervals the planner stretched to fit
        it. Nothing leaves the machine; state lives in a temporary directory that is removed at exit.

        Exit status: 0 when events arrived and every signature verified, 1 otherwise (or on a start-up
        failure), 64 for usage mistakes.
        """

    let duration: Duration?
    let json: Bool
    let verbose: Bool
    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        if let text = try arguments.option("--duration") {
            guard let parsed = DurationText.parse(text), parsed > .zero else {
                throw UsageError("--duration needs a positive duration like 20s or 2m, got \"\(text)\"")
            }
            duration = parsed
        } else {
            duration = nil
        }
        json = arguments.flag("--json")
        verbose = arguments.flag("--verbose", "-v")
        self.context = context
    }

    func run() async throws -> Int32 {
        let output = context.output
        // First, so a Ctrl-C during start-up cannot kill the process before clean-up (the daemon installs its own
        // handling for both signals as it starts).
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)

        let directory = try DemoDirectory()
        defer { directory.remove() }
        let world = try DemoWorld(secrets: try DemoSecrets.generate())
        defer { world.stop() }
        try directory.writeCredentials(world.secrets.credentialFiles)
        let configPath = try directory.writeConfig(world.configJSON(stateDirectory: directory.state,
                                                                    logLevel: verbose ? "info" : "warning"))

        let info = json ? output.err : output.out
        info(banner(world: world, directory: directory))
        if !json { output.out(DemoCommand.columns) }

        let hinted = DemoHintedEvents()
        let feed = DemoFeedPrinter(receiver: world.receiver, storePath: directory.state + "/" + StateStore.fileName,
                                   json: json, output: output, hinted: hinted)
        let generator = DemoChangeGenerator(world: world)
        let lifecycle = DemoLifecycle()
        let started = ContinuousClock.now

        let feedTask = Task { await feed.run(every: .milliseconds(100)) }
        let generatorTask = Task { [verbose] in
            // The first poll shows the seeded records (initial_sync emit); edits start right after it.
            try? await Task.sleep(for: .seconds(2))
            await generator.run(every: .seconds(1)) { change in
                if verbose { output.err("  · edit \(change)\n") }
                // GitHub's side of a repository webhook: a signed hint after each change (rule 23).
                if change.provider == .github { Task { await world.sendGitHubHint(change) } }
            }
        }
        // Ctrl-C reaches the daemon directly; --duration stops it as an operator would (repeated in case the daemon
        // had not installed its handler yet).
        let stopTask = Task { [duration] in
            guard let duration else { return }
            try? await Task.sleep(for: duration)
            while !Task.isCancelled && !lifecycle.daemonFinished {
                kill(getpid(), SIGTERM)
                try? await Task.sleep(for: .seconds(2))
            }
        }

        let environment = ["CREDENTIALS_DIRECTORY": directory.credentials, "RUNTIME_DIRECTORY": directory.runtime]
        var options = DaemonOptions(configPath: configPath, environment: environment,
                                    makePipeline: DeltahookPipeline.make,
                                    errorOutput: { output.err("deltahook demo: daemon: " + $0) },
                                    logSink: StderrSink(fd: 2, syslogPrefixes: false))
        options.cycleObserver = { report, trigger in
            if trigger == .hint { hinted.insert(report.events.map(\.id)) }
        }
        let daemonCode = await Daemon.run(options)
        lifecycle.finish()
        stopTask.cancel()
        generatorTask.cancel()
        await generatorTask.value
        // The daemon drained its in-flight deliveries before returning: one last pass shows them all.
        feedTask.cancel()
        await feedTask.value
        var summary = feed.finish()
        summary.duration = started.duration(to: .now)
        world.stop()

        if json {
            output.out(summary.json.serialized() + "\n")
        } else {
            output.out("\n" + summary.render())
        }
        if daemonCode != DaemonExitCode.ok {
            output.err("deltahook demo: the daemon exited with status \(daemonCode)\n")
            return ExitCode.failure
        }
        return summary.succeeded ? ExitCode.ok : ExitCode.failure
    }

    static let columns = DemoDelivery.pad("TIME", 12) + "  " + DemoDelivery.pad("EVENT", 16) + "  "
        + DemoDelivery.pad("SOURCE", 20) + "  " + DemoDelivery.pad("RECORD", 10) + "  LATENCY SIG  WHAT\n"

    func banner(world: DemoWorld, directory: DemoDirectory) -> String {
        """
        deltahook demo — emulated ServiceNow, GitHub, NetSuite and Zoho Books on 127.0.0.1, a receiver that verifies every
        Standard Webhooks signature, and the real engine and dispatcher under the `deltahook run` supervisor.
          servicenow  \(world.servicenow.baseURL)  incident → ticket, sys_user → user  (OAuth client credentials)
          github      \(world.github.baseURL)  \(DemoWorld.githubOwner)/\(DemoWorld.githubRepository) issues → ticket  (token;
                      polled every \(DemoWorld.githubInterval), and at once on a signed push hint after each change: "(hint)")
          netsuite    \(world.netsuite.baseURL)  customer → customer  (TBA, \(DemoWorld.netsuiteTimeZone))
          zoho_books  \(world.zoho.baseURL)  invoices → invoice, contacts → customer  (OAuth refresh token; budget \(DemoWorld.zohoBudgetPerMinute)/min, \(DemoWorld.zohoBudgetPerDay)/day)
          receiver    \(world.receiver.url)  (its own copy of the signing secret)
          state       \(directory.path)  (removed at exit)
        Polling every second; a generator edits records every second. \(stopHint)

        """
    }

    var stopHint: String {
        if let duration { return "Stops after \(DurationText.format(duration)) or on Ctrl-C." }
        return "Ctrl-C stops it."
    }
}

/// Whether `Daemon.run` has returned (read by the task that keeps asking it to stop).
final class DemoLifecycle: Sendable {
    private let finished = Mutex(false)
    var daemonFinished: Bool { finished.withLock { $0 } }
    func finish() { finished.withLock { $0 = true } }
}

/// The run's private directory (mkdtemp, 0700): `state/`, `credentials/` (files 0600), `run/` and the config.
struct DemoDirectory {
    let path: String
    var state: String { path + "/state" }
    var credentials: String { path + "/credentials" }
    var runtime: String { path + "/run" }

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/deltahook-demo-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress, mkdtemp(base) != nil else { return nil }
            return String(cString: base)
        }
        guard let made else {
            throw DemoError("cannot create a temporary directory under \(NSTemporaryDirectory()): errno \(errno)")
        }
        path = URL(fileURLWithPath: made).standardizedFileURL.path
        for sub in [credentials, runtime] {
            try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
        }
    }

    func writeCredentials(_ files: [(name: String, value: String)]) throws {
        for file in files {
            try write(credentials + "/" + file.name, file.value)
        }
    }

    func writeConfig(_ text: String) throws -> String {
        let target = path + "/config.json"
        try write(target, text)
        return target
    }

    /// Created 0600 before any byte is written, so a secret is never readable by others even for a moment.
    private func write(_ target: String, _ text: String) throws {
        guard FileManager.default.createFile(atPath: target, contents: nil, attributes: [.posixPermissions: 0o600])
        else { throw DemoError("cannot create \(target)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: target))
        defer { try? handle.close() }
        try handle.write(contentsOf: Data(text.utf8))
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Prints each webhook the receiver got, once, in arrival order, with its enqueue → receipt latency from the
/// store (a read-only WAL reader beside the daemon, as `deltahook status` uses), and keeps the summary.
final class DemoFeedPrinter: Sendable {
    private struct State {
        var printed = 0
        var summary = DemoSummary()
        var store: (any StateStoring)?
    }

    private let receiver: ReceiverEmulator
    private let storePath: String
    private let json: Bool
    private let output: Output
    private let hinted: DemoHintedEvents
    private let state = Mutex(State())

    init(receiver: ReceiverEmulator, storePath: String, json: Bool, output: Output, hinted: DemoHintedEvents) {
        self.hinted = hinted
        self.receiver = receiver
        self.storePath = storePath
        self.json = json
        self.output = output
    }

    /// Prints new arrivals every `interval` until cancelled, then once more.
    func run(every interval: Duration) async {
        while !Task.isCancelled {
            drain(final: false)
            try? await Task.sleep(for: interval)
        }
        drain(final: true)
    }

    /// The final pass (after the daemon stopped); returns the summary with what the outbox still holds.
    func finish() -> DemoSummary {
        drain(final: true)
        return state.withLock { s in
            if s.store == nil, FileManager.default.fileExists(atPath: storePath) {
                s.store = try? StateStore(path: storePath, mode: .readOnly)
            }
            s.summary.pendingAtStop = try? s.store?.pendingCount()
            if let store = s.store { s.summary.budgets = Self.budgets(store) }
            s.store = nil
            return s.summary
        }
    }

    /// `final: false` holds back a GitHub event for up to half a second until its poll is known to be hinted or not
    /// (the engine reports a cycle when it ends, which may be just after its first delivery arrived).
    private func drain(final: Bool) {
        let received = receiver.received
        state.withLock { s in
            guard s.printed < received.count else { return }
            if s.store == nil, FileManager.default.fileExists(atPath: storePath) {
                s.store = try? StateStore(path: storePath, mode: .readOnly)
            }
            var text = ""
            for webhook in received[s.printed...] {
                let latency = enqueuedAt(webhook, store: s.store).map { $0.duration(to: webhook.receivedAt) }
                guard var delivery = DemoDelivery(webhook, latency: latency) else {
                    s.summary.addUnparsed(verified: webhook.verified)
                    text += "?  a request the demo could not read (status \(webhook.answeredStatus))\n"
                    s.printed += 1
                    continue
                }
                delivery.hinted = hinted.contains(delivery.webhookID)
                if !final, !delivery.hinted, delivery.connection == DemoWorld.githubConnection,
                   Date().timeIntervalSince(webhook.receivedAt) < 0.5 { break }
                s.summary.add(delivery)
                text += (json ? delivery.json.serialized() : delivery.line()) + "\n"
                s.printed += 1
            }
            output.out(text)
        }
    }

    /// The Zoho connection's budget as `status` reads it: today's and this minute's shared counts and the
    /// scheduler's last stored plan. Empty when the store cannot say (the daemon never got that far).
    private static func budgets(_ store: any StateStoring) -> [DemoBudget] {
        let connection = DemoWorld.zohoConnection
        let now = Date()
        guard let plans = try? store.budgetPlans(connection: connection),
              let usage = try? store.requestUsage(connection: connection, at: now) else { return [] }
        let intervals = plans.map { DemoBudget.Interval(object: $0.object, configured: $0.configuredInterval,
                                                        effective: $0.effectiveInterval) }
        return [DemoBudget(connection: connection, usedToday: usage.usedToday, perDay: DemoWorld.zohoBudgetPerDay,
                           usedThisMinute: usage.usedThisMinute, perMinute: DemoWorld.zohoBudgetPerMinute,
                           intervals: intervals)]
    }

    /// When the engine's page commit created this event's delivery row for the demo's subscriber.
    private func enqueuedAt(_ webhook: ReceivedWebhook, store: (any StateStoring)?) -> Date? {
        guard let store, let id = webhook.webhookID,
              let delivery = try? store.deliveries(eventID: id).first(where: { $0.subscriber == DemoWorld.subscriber })
        else { return nil }
        return delivery.createdAt
    }
}

extension Date {
    /// `later - self` as a Duration (negative when `later` is earlier).
    fileprivate func duration(to later: Date) -> Duration {
        .nanoseconds(Int64((later.timeIntervalSince(self) * 1e9).rounded()))
    }
}

/// Ids of the events committed by hinted polls (`DaemonOptions.cycleObserver`), so the feed can mark them.
final class DemoHintedEvents: Sendable {
    private let ids = Mutex<Set<String>>([])
    func insert(_ new: [String]) { ids.withLock { $0.formUnion(new) } }
    func contains(_ id: String) -> Bool { ids.withLock { $0.contains(id) } }
}
