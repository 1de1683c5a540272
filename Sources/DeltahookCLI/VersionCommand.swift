// `deltahook version`.

struct VersionCommand: Command {
    static let name = "version"
    static let summary = "Print the version"

    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        self.context = context
    }

    func run() async throws -> Int32 {
        context.output.out("deltahook \(DeltahookVersion.current)\n")
        return ExitCode.ok
    }
}
