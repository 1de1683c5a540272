// `DeltahookWatchdogProof` (.build/debug/DeltahookWatchdogProof): a test-only build of `deltahook run` whose engine liveness stalls after start-up
// (`DaemonTestHooks.stallEngineLiveness`). It exists so the watchdog proofs (Tests/EndToEndTests/DaemonTests and
// Scripts/systemd-proof) can show that WATCHDOG=1 pings stop and systemd kills a stuck daemon, while the shipped
// `deltahook` binary reads no debug switch from its environment. Not a product; never installed.
//
// Usage: DeltahookWatchdogProof run --config PATH   (the same arguments as `deltahook run`)
import Daemon
import Foundation

umask(0o077)
var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "run" { arguments.removeFirst() }
var configPath = "/etc/deltahook/config.json"
if let index = arguments.firstIndex(of: "--config"), index + 1 < arguments.count { configPath = arguments[index + 1] }
let environment = ProcessInfo.processInfo.environment
let options = DaemonOptions(configPath: configPath, environment: environment, makePipeline: DeltahookPipeline.make,
                            errorOutput: { FileHandle.standardError.write(Data($0.utf8)) },
                            testHooks: DaemonTestHooks(stallEngineLiveness: true))
exit(await Daemon.run(options))
