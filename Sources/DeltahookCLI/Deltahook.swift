// The `deltahook` binary: global options, dispatch to the command table, exit codes (docs/DESIGN.md §7).
import Foundation
import Config

@main
struct Deltahook {
    static func main() async {
        // Every file any command creates (the store, its -wal/-shm, the lock, demo and bench directories) is
        // private, also outside systemd's UMask=0077 (docs/DESIGN.md §1, private files).
        umask(0o077)
        let code = await run(Array(CommandLine.arguments.dropFirst()),
                             context: CommandContext(configPath: ConfigLoader.defaultPath,
                                                     environment: ProcessInfo.processInfo.environment,
                                                     output: .standard))
        exit(code)
    }

    static func run(_ arguments: [String], context baseContext: CommandContext) async -> Int32 {
        var context = baseContext
        context.output = baseContext.output.scrubbed(by: context.scrubber)
        var list = ArgumentList(arguments)
        let output = context.output
        let wantsHelp: Bool
        let wantsVersion: Bool
        do {
            if let path = try list.option("--config") { context.configPath = path }
            wantsHelp = list.flag("--help", "-h")
            wantsVersion = list.flag("--version")
        } catch {
            output.err("deltahook: \(error)\n\(HelpCommand.overview)")
            return ExitCode.usage
        }
        guard let name = list.nextPositional() else {
            if wantsVersion { output.out("deltahook \(DeltahookVersion.current)\n"); return ExitCode.ok }
            if wantsHelp { output.out(HelpCommand.overview); return ExitCode.ok }
            if let stray = list.firstUnknown {
                output.err("deltahook: unknown option \(stray)\n\(HelpCommand.overview)")
            } else {
                output.err("deltahook: missing command\n\(HelpCommand.overview)")
            }
            return ExitCode.usage
        }
        guard let command = CommandTable.find(name) else {
            let hint = closestMatch(to: name, in: CommandTable.all.map { $0.name }).map { "; did you mean \"\($0)\"?" } ?? ""
            output.err("deltahook: unknown command \"\(name)\"\(hint)\n\(HelpCommand.overview)")
            return ExitCode.usage
        }
        if wantsHelp {
            output.out(HelpCommand.help(for: command))
            return ExitCode.ok
        }
        list.declare(command.options)
        if wantsVersion {
            output.err("deltahook \(command.name): unknown option --version\nusage: deltahook \(command.usage)\n")
            return ExitCode.usage
        }
        let instance: any Command
        do {
            instance = try command.init(arguments: &list, context: context)
            try list.finish()
        } catch {
            output.err("deltahook \(command.name): \(error)\nusage: deltahook \(command.usage)\n"
                       + "Run 'deltahook \(command.name) --help' for details.\n")
            return ExitCode.usage
        }
        do {
            return try await instance.run()
        } catch let error as ConfigError {
            output.err("deltahook: \(error)\n")
            return ExitCode.config
        } catch let error as UsageError {
            output.err("deltahook \(command.name): \(error)\nusage: deltahook \(command.usage)\n")
            return ExitCode.usage
        } catch {
            output.err("deltahook \(command.name): \(error)\n")
            return ExitCode.failure
        }
    }
}

enum DeltahookVersion {
    static let current = "0.1.0"
}
