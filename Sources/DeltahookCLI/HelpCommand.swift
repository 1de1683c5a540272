// `deltahook help [COMMAND]`.
import Config

struct HelpCommand: Command {
    static let name = "help"
    static let summary = "Show the commands, or one command's options"
    static let arguments = "[COMMAND]"

    let topic: String?
    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        topic = arguments.nextPositional()
        self.context = context
    }

    func run() async throws -> Int32 {
        guard let topic else {
            context.output.out(HelpCommand.overview)
            return ExitCode.ok
        }
        guard let command = CommandTable.find(topic) else { throw UsageError("unknown command \"\(topic)\"") }
        context.output.out(HelpCommand.help(for: command))
        return ExitCode.ok
    }

    static var overview: String {
        let width = CommandTable.all.map { $0.name.count }.max() ?? 0
        var text = """
            usage: deltahook [--config PATH] COMMAND [OPTIONS]

            Polls SaaS APIs for changes and delivers them as signed webhooks.

            Commands:

            """
        for command in CommandTable.all {
            text += "  \(command.name)\(String(repeating: " ", count: width - command.name.count))  \(command.summary)\n"
        }
        text += """

            Global options:
              --config PATH  config file (default \(ConfigLoader.defaultPath))
              --help, -h     show help (also after a command)
              --version      print the version

            Exit codes: 0 ok, 1 failure, 64 usage error, 78 configuration error.

            """
        return text
    }

    static func help(for command: any Command.Type) -> String {
        var text = "usage: deltahook \(command.usage)\n\n\(command.summary).\n"
        if !command.details.isEmpty { text += "\n\(command.details)\n" }
        if !command.options.isEmpty { text += "\nOptions (before or after the action):\n" + optionList(command.options) }
        text += "\nGlobal options: --config PATH (default \(ConfigLoader.defaultPath)), --help\n"
        return text
    }

    /// One aligned line per declared option, from the same declarations the parser uses.
    static func optionList(_ options: [OptionSpec]) -> String {
        let labels = options.map { spec in
            ([spec.alias].compactMap { $0 } + [spec.value.map { "\(spec.name) \($0)" } ?? spec.name])
                .joined(separator: ", ")
        }
        let width = labels.map(\.count).max() ?? 0
        return zip(labels, options).map { label, spec in
            "  \(label)\(String(repeating: " ", count: width - label.count))  \(spec.help)"
                + (spec.required ? " (required)" : "") + "\n"
        }.joined()
    }
}
