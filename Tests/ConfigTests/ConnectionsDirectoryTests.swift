// One file per connection (issue 16): `connections.d` next to config.json (or `connections_directory`), every
// `*.json` in name order, each one connection or a list; problems carry their file and `$`-rooted JSON path.
import Foundation
import Testing
import Core
@testable import Config

@Suite struct ConnectionsDirectoryTests {
    static func connection(_ id: String, interval: String = "60s", token: String = "GH_TOKEN") -> String {
        """
        {"id": "\(id)", "provider": "github", "auth": {"type": "token", "token": {"env": "\(token)"}},
         "objects": [{"name": "issues", "repository": "octo/\(id)", "interval": "\(interval)"}]}
        """
    }

    let environment = ConfigEnvironment(variables: ["GH_TOKEN": "ghp_Zq9-DISTINCTIVE-secret-4711", "OTHER": "ghp_other"])

    /// A scratch directory with `config.json` (no inline connections unless given) and `connections.d`.
    func layout(main: String = #"{"state_directory": "/tmp/x"}"#, files: [String: String]) throws
        -> (TemporaryDirectory, String)
    {
        let dir = try TemporaryDirectory()
        let path = try dir.write("config.json", main)
        try FileManager.default.createDirectory(atPath: dir.path + "/connections.d", withIntermediateDirectories: true)
        for (name, text) in files { try dir.write("connections.d/" + name, text) }
        return (dir, path)
    }

    func problems(_ path: String) -> ConfigError? {
        do {
            _ = try ConfigLoader.load(path: path, environment: environment)
            return nil
        } catch {
            return error
        }
    }

    @Test func filesAreReadInNameOrderAsOneConnectionOrAList() throws {
        let (dir, path) = try layout(
            main: #"{"state_directory": "/tmp/x", "connections": [\#(Self.connection("inline"))]}"#,
            files: ["20-b.json": "[\(Self.connection("b1")), \(Self.connection("b2"))]",
                    "10-a.json": Self.connection("a"),
                    "30-c.json": Self.connection("c")])
        let config = try ConfigLoader.load(path: path, environment: environment)
        #expect(config.connections.map(\.id) == ["inline", "a", "b1", "b2", "c"])
        #expect(config.connections.map(\.source) == [path, dir.path + "/connections.d/10-a.json",
                                                     dir.path + "/connections.d/20-b.json",
                                                     dir.path + "/connections.d/20-b.json",
                                                     dir.path + "/connections.d/30-c.json"])
    }

    @Test func hiddenFilesAndOtherExtensionsAreIgnoredAndTheDefaultDirectoryMayBeAbsent() throws {
        let (dir, path) = try layout(files: ["a.json": Self.connection("a"), ".a.json.swp": "{", "b.json.disabled": "{",
                                             "c.json~": "{", "README": "notes"])
        try FileManager.default.createDirectory(atPath: dir.path + "/connections.d/sub.d", withIntermediateDirectories: true)
        #expect(try ConfigLoader.load(path: path, environment: environment).connections.map(\.id) == ["a"])

        let alone = try TemporaryDirectory()
        let main = try alone.write("config.json", #"{"connections": [\#(Self.connection("x"))]}"#)
        #expect(try ConfigLoader.load(path: main, environment: environment).connections.map(\.id) == ["x"])
        // Nothing anywhere: the familiar problem, pointing at the directory too.
        let empty = try alone.write("empty.json", "{}")
        let error = try #require(problems(empty))
        #expect(error.problems.map(\.path) == ["connections"])
        #expect(error.problems[0].message.contains("connections directory"))
    }

    @Test func anExplicitDirectoryIsRelativeToTheConfigAndMustExist() throws {
        let dir = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.path + "/tenants", withIntermediateDirectories: true)
        try dir.write("tenants/a.json", Self.connection("a"))
        let path = try dir.write("config.json", #"{"connections_directory": "tenants"}"#)
        #expect(try ConfigLoader.load(path: path, environment: environment).connections.map(\.id) == ["a"])

        let missing = try dir.write("missing.json", #"{"connections_directory": "/nonexistent/deltahook.d"}"#)
        let error = try #require(problems(missing))
        #expect(error.problems.contains { $0.path == "connections_directory" && $0.message.contains("does not exist") })
    }

    @Test func everyProblemOfEveryFileIsListedWithItsFileAndPath() throws {
        let (dir, path) = try layout(
            main: #"{"state_directory": "relative", "connections": [\#(Self.connection("main"))]}"#,
            files: ["a.json": #"{"id": "a", "provider": "github", "auth": {"type": "token", "token": {"env": "GH_TOKEN"}}, "objects": [{"name": "issues", "repository": "o/r", "interval": "soon"}]}"#,
                    "b.json": "[\(Self.connection("b")), {\"id\": \"b2\", \"provider\": \"gitlab\", \"objects\": []}]",
                    "c.json": #"{"id": "c", "#,
                    "d.json": "[]"])
        let error = try #require(problems(path))
        let d = dir.path + "/connections.d/"
        let lines = error.problems.map(\.description)
        #expect(lines.contains { $0.hasPrefix("state_directory: ") }, "config.json problems keep their rendering: \(lines)")
        #expect(lines.contains { $0.hasPrefix(d + "a.json: $.objects[0].interval: ") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix(d + "b.json: $[1].provider: ") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix(d + "c.json: ") }, "a parse error names its file: \(lines)")
        #expect(lines.contains { $0.hasPrefix(d + "d.json: $: is an empty list") }, "\(lines)")
        #expect(error.file(of: error.problems[0]) == path || error.problems[0].file != nil)
        #expect(error.problems.filter { $0.file == nil }.allSatisfy { error.file(of: $0) == path })
        #expect(!error.description.contains("DISTINCTIVE"))
    }

    @Test func aDuplicateIdAcrossFilesNamesBothFiles() throws {
        let (dir, path) = try layout(
            main: #"{"connections": [\#(Self.connection("shared"))]}"#,
            files: ["a.json": Self.connection("twice"), "b.json": Self.connection("twice"), "c.json": Self.connection("shared")])
        let error = try #require(problems(path))
        let d = dir.path + "/connections.d/"
        let duplicates = error.problems.filter { $0.message.contains("duplicate connection id") }
        #expect(duplicates.count == 2, "\(error)")
        #expect(duplicates.contains { $0.file == d + "b.json" && $0.path == "$.id" && $0.message.contains(d + "a.json at $.id") })
        #expect(duplicates.contains { $0.file == d + "c.json" && $0.message.contains(path + " at connections[0].id") })
    }

    @Test func subscribersMayNameConnectionsFromFiles() throws {
        let (dir, path) = try layout(
            main: #"{"subscribers": [{"id": "crm", "url": "https://hooks.example.com/x", "secrets": [{"env": "WH"}], "connections": ["a", "nope"]}]}"#,
            files: ["a.json": Self.connection("a")])
        let error = try #require(problems(path))
        #expect(error.problems.contains { $0.path == "subscribers[0].connections[1]" && $0.message.contains("\"nope\"") }, "\(error)")
        #expect(!error.problems.contains { $0.path == "subscribers[0].connections[0]" })
        withExtendedLifetime(dir) {}
    }

    @Test func theRevisionChangesWithTheConnectionOrItsSecretOnly() throws {
        let (dir, path) = try layout(files: ["a.json": Self.connection("a"), "b.json": Self.connection("b")])
        let first = try ConfigLoader.load(path: path, environment: environment)
        try dir.write("connections.d/b.json", Self.connection("b", interval: "30s"))
        let second = try ConfigLoader.load(path: path, environment: environment)
        let rotated = try ConfigLoader.load(path: path, environment: ConfigEnvironment(variables: ["GH_TOKEN": "ghp_rotated"]))
        #expect(first.connections[0].revision == second.connections[0].revision)
        #expect(first.connections[1].revision != second.connections[1].revision)
        #expect(rotated.connections[0].revision != second.connections[0].revision)
        #expect(second.connectionChanges(since: first) == ConnectionChanges(changed: ["b"]))
        try FileManager.default.removeItem(atPath: dir.path + "/connections.d/a.json")
        try dir.write("connections.d/c.json", Self.connection("c"))
        let third = try ConfigLoader.load(path: path, environment: environment)
        #expect(third.connectionChanges(since: second) == ConnectionChanges(added: ["c"], removed: ["a"]))
    }

    @Test func aSymbolicLinkIsFollowedToARegularFileOnly() throws {
        let (dir, path) = try layout(files: [:])
        let available = try dir.write("available-a.json", Self.connection("a"))
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/connections.d/a.json", withDestinationPath: available)
        #expect(try ConfigLoader.load(path: path, environment: environment).connections.map(\.id) == ["a"])
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/connections.d/b.json", withDestinationPath: "/dev/zero")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/connections.d/c.json", withDestinationPath: dir.path + "/gone")
        let error = try #require(problems(path))
        #expect(error.problems.contains { $0.file?.hasSuffix("/b.json") == true && $0.message.contains("not a regular file") })
        #expect(error.problems.contains { $0.file?.hasSuffix("/c.json") == true && $0.message.contains("dangling") })
    }
}
