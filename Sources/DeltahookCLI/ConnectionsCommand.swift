// `deltahook connections list [--json]`: every configured connection with its provider, objects and the file it
// comes from (config.json or a `connections.d` file, docs/DESIGN.md §6). The config is loaded as check-config loads
// it (full validation, secrets resolved); when that fails — typically an operator's shell that cannot read the
// unit's credentials — the connections are still listed from the files as written, with the problems noted.
import Config
import Core
import Foundation

struct ConnectionsCommand: Command {
    static let name = "connections"
    static let summary = "List configured connections with provider, objects and source file"
    static let arguments = "list"
    static let options: [OptionSpec] = [
        .flag("--json", "print {\"config\", \"connections_directory\", \"ok\", \"connections\": [{\"id\", \"provider\", "
            + "\"objects\", \"source\"}], \"problems\": [{\"file\", \"path\", \"message\"}]}"),
    ]
    static let details = """
        Reads the config file and every *.json file in its connections directory ("connections_directory",
        default connections.d next to the config), as the daemon does on start and on reload.
        When the config does not validate (for example a secret this shell cannot read), the connections are
        listed as written and the problems are noted ("ok": false with --json; a note on stderr otherwise);
        run 'deltahook check-config' for the full report.
        Exit status: 0 listed, 78 the config file itself cannot be read or parsed, 64 usage.
        """

    let json: Bool
    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        json = arguments.flag("--json")
        switch arguments.nextPositional() {
        case "list": break
        case let other?: throw UsageError("unknown subcommand \"\(other)\" (expected list)")
        case nil: throw UsageError("missing subcommand (list)")
        }
        self.context = context
    }

    /// One row: what the files say, whether or not the whole config validates.
    struct Row {
        var id: String
        var provider: String
        var objects: [String]
        var source: String
    }

    func run() async throws -> Int32 {
        let path = context.configPath
        var rows: [Row] = []
        var problems: [(file: String?, problem: ConfigProblem)] = []
        do {
            let config = try ConfigLoader.load(path: path, environment: context.configEnvironment)
            config.register(in: context.scrubber)
            rows = config.connections.map {
                Row(id: $0.id, provider: $0.provider.rawValue, objects: $0.objects.map(\.name), source: $0.source ?? path)
            }
        } catch {
            problems = error.problems.map { (error.file(of: $0), $0) }
            guard let data = FileManager.default.contents(atPath: path), let root = try? JSONValue.parse(data) else {
                // Nothing to list as written: the main file is missing or not JSON (the problem says which).
                report(rows: [], problems: problems, directory: nil)
                return ExitCode.config
            }
            rows = ConnectionsCommand.rowsAsWritten(configPath: path, root: root)
        }
        let root = FileManager.default.contents(atPath: path).flatMap { try? JSONValue.parse($0) } ?? .null
        report(rows: rows, problems: problems, directory: ConnectionsDirectory(configPath: path, root: root).path)
        return ExitCode.ok
    }

    /// The connections in config.json and the directory's files, unvalidated (ids, providers, object names).
    static func rowsAsWritten(configPath: String, root: JSONValue) -> [Row] {
        func rows(_ value: JSONValue, source: String) -> [Row] {
            let entries = value.arrayValue ?? [value]
            return entries.compactMap { entry in
                guard let id = entry["id"]?.stringValue else { return nil }
                return Row(id: id, provider: entry["provider"]?.stringValue ?? "?",
                           objects: (entry["objects"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue },
                           source: source)
            }
        }
        var out = (root["connections"]?.arrayValue ?? []).flatMap { rows($0, source: configPath) }
        for file in ConnectionsDirectory(configPath: configPath, root: root).read().files {
            out += rows(file.json, source: file.path)
        }
        return out
    }

    private func report(rows: [Row], problems: [(file: String?, problem: ConfigProblem)], directory: String?) {
        // Problems of a connections.d file belong to the connections in it; config.json's could be anywhere in it.
        var inFile: [String: Int] = [:]
        for item in problems where item.problem.file != nil {
            if let file = item.file { inFile[file, default: 0] += 1 }
        }
        if json {
            var object = JSONObject()
            object["config"] = .string(context.configPath)
            object["connections_directory"] = directory.map { .string($0) } ?? .null
            object["ok"] = .bool(problems.isEmpty)
            object["connections"] = .array(rows.map { row in
                ["id": .string(row.id), "provider": .string(row.provider),
                 "objects": .array(row.objects.map { .string($0) }), "source": .string(row.source),
                 "file_problems": .integer(Int64(inFile[row.source] ?? 0))]
            })
            object["problems"] = .array(problems.map { item in
                ["file": item.file.map { .string($0) } ?? .null, "path": .string(item.problem.path),
                 "message": .string(item.problem.message)]
            })
            context.output.out(JSONValue.object(object).serialized() + "\n")
            return
        }
        if !problems.isEmpty {
            context.output.err("note: config \(context.configPath) has \(problems.count) problem\(problems.count == 1 ? "" : "s"); "
                + "listing the connections as written (run 'deltahook check-config' for details):\n"
                + problems.map { "  - \($0.problem)\n" }.joined())
        }
        if rows.isEmpty {
            context.output.out("no connections\n")
        } else {
            context.output.out(StoreCLI.table(["CONNECTION", "PROVIDER", "OBJECTS", "SOURCE"], rows.map {
                [$0.id, $0.provider, $0.objects.joined(separator: ","),
                 $0.source + (inFile[$0.source].map { " (\($0) problem\($0 == 1 ? "" : "s"))" } ?? "")]
            }))
        }
    }
}
