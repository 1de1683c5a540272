// Loading = read the file, parse JSON with line/column errors, validate everything, resolve every secret.
public import Foundation
public import Core
#if canImport(Glibc)
import Glibc
#endif

/// Entry points for turning a config file or document into a `DeltahookConfig`.
public enum ConfigLoader {
    /// The path used when `--config` is not given.
    public static let defaultPath = "/etc/deltahook/config.json"

    /// The directory of connection files when the config does not name one: `connections.d` next to it.
    public static let defaultConnectionsDirectoryName = "connections.d"
    /// A connection file larger than this is refused unread (one connection is a few kilobytes).
    static let maximumConnectionFileBytes = 4 << 20

    /// Reads, parses and validates `path` and every `*.json` file of its connections directory (docs/DESIGN.md §6
    /// `connections_directory`). Throws `ConfigError` listing every problem of every file (never a secret value).
    public static func load(path: String, environment: ConfigEnvironment = .process()) throws(ConfigError)
        -> DeltahookConfig
    {
        let data = try readMainFile(path)
        let json: JSONValue
        do {
            json = try JSONValue.parse(data)
        } catch {
            throw ConfigError(file: path, problems: [ConfigProblem(path: "", message: error.description)])
        }
        let directory = ConnectionsDirectory(configPath: path, root: json)
        let listing = directory.read()
        let validator = Validator(environment: environment)
        let config = validator.validate(json, mainFile: path, connectionFiles: listing.parsed,
                                        unreadableFiles: listing.problems.count)
        let problems = listing.problems + validator.problems.problems
        if let config, problems.isEmpty { return config }
        throw ConfigError(file: path, problems: problems.isEmpty
            ? [ConfigProblem(path: "", message: "the config is invalid")] : problems)
    }

    private static func readMainFile(_ path: String) throws(ConfigError) -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ConfigError(file: path, problems: [ConfigProblem(
                path: "", message: "config file \(path) does not exist (pass --config PATH or create it from config.example.json)")])
        }
        guard !isDirectory.boolValue else {
            throw ConfigError(file: path, problems: [ConfigProblem(path: "", message: "\(path) is a directory, not a config file")])
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError(file: path, problems: [ConfigProblem(
                path: "", message: "config file \(path) is not readable (check its owner and mode)")])
        }
    }

    /// Parses and validates JSON text; `file` only labels the error. Connection files are not read (no directory).
    public static func load(data: Data, file: String? = nil, environment: ConfigEnvironment) throws(ConfigError)
        -> DeltahookConfig
    {
        let json: JSONValue
        do {
            json = try JSONValue.parse(data)
        } catch {
            throw ConfigError(file: file, problems: [ConfigProblem(path: "", message: error.description)])
        }
        return try validate(json: json, file: file, environment: environment)
    }

    /// Validates an already parsed document (pure apart from reading secret sources through `environment`).
    public static func validate(json: JSONValue, file: String? = nil, environment: ConfigEnvironment) throws(ConfigError)
        -> DeltahookConfig
    {
        let validator = Validator(environment: environment)
        let config = validator.validate(json, mainFile: file)
        if let config, validator.problems.problems.isEmpty { return config }
        var problems = validator.problems.problems
        if problems.isEmpty {
            problems = [ConfigProblem(path: "", message: "the config is invalid")]
        }
        throw ConfigError(file: file, problems: problems)
    }
}

/// The `connections_directory` of a config (default `connections.d` next to the config file): which `*.json` files
/// it holds, in name order, parsed but not validated. Also used by commands that only need the connection ids
/// (`status`), so they see the same files the daemon reads.
public struct ConnectionsDirectory: Sendable {
    /// The directory's path (relative values are resolved against the config file's directory).
    public let path: String
    /// Whether the config named it: a named directory must exist; the default one may be absent (no files).
    public let explicit: Bool

    public init(configPath: String, root: JSONValue) {
        let base = (configPath as NSString).deletingLastPathComponent
        if let named = root["connections_directory"]?.stringValue, !named.isEmpty {
            path = named.hasPrefix("/") ? named : (base.isEmpty ? named : base + "/" + named)
            explicit = true
        } else {
            path = (base.isEmpty ? "" : base + "/") + ConfigLoader.defaultConnectionsDirectoryName
            explicit = false
        }
    }

    /// Parsed files, and a problem (labelled with its file, or with `connections_directory`) for each file that
    /// cannot be read or parsed.
    public struct Listing: Sendable {
        public var files: [(path: String, json: JSONValue)] { parsed.map { ($0.path, $0.json) } }
        var parsed: [ConnectionFile] = []
        public var problems: [ConfigProblem] = []
    }

    /// The `*.json` files in name order. Dotfiles (editor and package-manager leftovers such as `.x.json.swp`,
    /// `.#x.json`) and other extensions (`x.json.disabled`, `x.json~`) are ignored, so a connection is switched off
    /// by renaming its file. Symbolic links are followed (links into a `connections-available` directory are a
    /// common layout) but must end at a regular file: a FIFO or device would block or never end.
    public func read() -> Listing {
        var listing = Listing()
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else {
            if explicit {
                listing.problems.append(ConfigProblem(path: "connections_directory", message:
                    "\(path) does not exist; create it (one *.json file per connection) or remove the key"))
            }
            return listing
        }
        guard isDirectory.boolValue else {
            listing.problems.append(ConfigProblem(path: explicit ? "connections_directory" : "", message:
                "\(path) is not a directory; connection files go in a directory (one *.json file per connection)"))
            return listing
        }
        let names: [String]
        do {
            names = try manager.contentsOfDirectory(atPath: path)
        } catch {
            listing.problems.append(ConfigProblem(path: explicit ? "connections_directory" : "", message:
                "the connections directory \(path) is not readable (check its owner and mode)"))
            return listing
        }
        for name in names.filter(ConnectionsDirectory.isConnectionFileName).sorted(by: ConnectionsDirectory.precedes) {
            let file = path + "/" + name
            switch ConnectionsDirectory.readFile(file) {
            case .parsed(let json): listing.parsed.append(ConnectionFile(path: file, json: json))
            case .refused(let message): listing.problems.append(ConfigProblem(path: "", message: message, file: file))
            }
        }
        return listing
    }

    /// `*.json`, not hidden.
    public static func isConnectionFileName(_ name: String) -> Bool {
        !name.hasPrefix(".") && name.hasSuffix(".json") && name.count > ".json".count
    }

    /// Name order by UTF-8 bytes, as `ls` sorts in the C locale: the same on every machine.
    static func precedes(_ a: String, _ b: String) -> Bool { Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8)) }

    private enum FileOutcome {
        case parsed(JSONValue)
        case refused(String)
    }

    private static func readFile(_ file: String) -> FileOutcome {
        func problem(_ message: String) -> FileOutcome { .refused(message) }
        // stat follows a symbolic link: the file it ends at must be regular (and a dangling link fails here).
        var info = stat()
        guard stat(file, &info) == 0 else {
            return problem("cannot be read (a dangling symbolic link, or no permission); fix or remove it")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            return problem("is not a regular file; connection files must be plain *.json files (or links to one)")
        }
        guard Int(info.st_size) <= ConfigLoader.maximumConnectionFileBytes else {
            return problem("is larger than \(ConfigLoader.maximumConnectionFileBytes >> 20) MiB; one file holds one connection or a short list")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            return problem("is not readable (check its owner and mode)")
        }
        do throws(JSONSyntaxError) {
            return .parsed(try JSONValue.parse(data))
        } catch {
            return problem(error.description)
        }
    }
}
