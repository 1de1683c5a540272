// `deltahook run`: the daemon (docs/DESIGN.md §8). Everything lives in the Daemon module; this file only maps the
// command line onto `DaemonOptions`.
import Daemon
import Foundation

struct RunCommand: Command {
    static let name = "run"
    static let summary = "Run the daemon (systemd Type=notify service)"
    static let details = """
        Loads and validates the config (every problem is printed and the exit status is 78 before READY=1),
        opens the store in $STATE_DIRECTORY or "state_directory", polls every configured object and delivers
        events to subscribers until SIGTERM or SIGINT.

        Signals: SIGHUP reloads the config (a broken file keeps the running config and logs why);
        SIGTERM/SIGINT stop polling and drain in-flight deliveries within "shutdown_timeout", then exit 0.
        systemd: READY=1, STATUS=, WATCHDOG=1 (when WatchdogSec= is set), RELOADING=1, STOPPING=1.
        Metrics: $RUNTIME_DIRECTORY/deltahook.prom (or /run/deltahook), and GET /metrics and /healthz on
        "http.listen" when set.
        Exit status: 0 stopped cleanly, 1 failure, 78 invalid config.
        """

    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        self.context = context
    }

    func run() async throws -> Int32 {
        let output = context.output
        let options = DaemonOptions(configPath: context.configPath, environment: context.environment,
                                    makePipeline: DeltahookPipeline.make, errorOutput: { output.err($0) })
        return await Daemon.run(options)
    }
}
