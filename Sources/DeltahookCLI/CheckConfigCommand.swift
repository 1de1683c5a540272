// `deltahook check-config`: validates the config and resolves every secret, so a passing check means the
// daemon can start with it (docs/DESIGN.md §6: every problem with its JSON path, exit 78).
import Core
import Config

struct CheckConfigCommand: Command {
    static let name = "check-config"
    static let summary = "Validate the config file and check that every secret can be read"
    static let options: [OptionSpec] = [
        .flag("--json", "print {\"ok\": true, \"connections\": N, \"subscribers\": M} or "
            + "{\"ok\": false, \"problems\": [{\"file\", \"path\", \"message\"}]}"),
    ]
    static let details = """
        Checks the config file and every *.json file in its connections directory (default connections.d next
        to it) together. Prints "config OK: N connections, M subscribers" and exits 0, or lists every problem
        with its file and JSON path and exits 78. Secrets are read from $CREDENTIALS_DIRECTORY, files and
        environment variables exactly as the daemon reads them; their values are never printed.
        """

    let json: Bool
    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        json = arguments.flag("--json")
        self.context = context
    }

    func run() async throws -> Int32 {
        do {
            let config = try ConfigLoader.load(path: context.configPath, environment: context.configEnvironment)
            if json {
                let value: JSONValue = ["ok": true, "config": .string(context.configPath),
                                        "connections": .integer(Int64(config.connections.count)),
                                        "subscribers": .integer(Int64(config.subscribers.count))]
                context.output.out(value.serialized() + "\n")
            } else {
                context.output.out("config OK: \(config.connections.count) connections, \(config.subscribers.count) subscribers\n")
            }
            return ExitCode.ok
        } catch {
            if json {
                // "file": the main config or the connections.d file the problem is in.
                let problems = error.problems.map { p -> JSONValue in
                    ["file": error.file(of: p).map { .string($0) } ?? .null, "path": .string(p.path),
                     "message": .string(p.message)]
                }
                let value: JSONValue = ["ok": false, "config": .string(context.configPath), "problems": .array(problems)]
                context.output.out(value.serialized() + "\n")
            } else {
                context.output.err("deltahook: \(error)\n")
            }
            return ExitCode.config
        }
    }
}
