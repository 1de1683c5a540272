// Loading = read the file, parse JSON with line/column errors, validate everything, resolve every secret.
public import Foundation
public import Core

/// Entry points for turning a config file or document into a `DeltahookConfig`.
public enum ConfigLoader {
    /// The path used when `--config` is not given.
    public static let defaultPath = "/etc/deltahook/config.json"

    /// Reads, parses and validates `path`. Throws `ConfigError` listing every problem (never a secret value).
    public static func load(path: String, environment: ConfigEnvironment = .process()) throws(ConfigError)
        -> DeltahookConfig
    {
        let data: Data
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ConfigError(file: path, problems: [ConfigProblem(
                path: "", message: "config file \(path) does not exist (pass --config PATH or create it from config.example.json)")])
        }
        guard !isDirectory.boolValue else {
            throw ConfigError(file: path, problems: [ConfigProblem(path: "", message: "\(path) is a directory, not a config file")])
        }
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError(file: path, problems: [ConfigProblem(
                path: "", message: "config file \(path) is not readable (check its owner and mode)")])
        }
        return try load(data: data, file: path, environment: environment)
    }

    /// Parses and validates JSON text; `file` only labels the error.
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
        let config = validator.validate(json)
        if let config, validator.problems.problems.isEmpty { return config }
        var problems = validator.problems.problems
        if problems.isEmpty {
            problems = [ConfigProblem(path: "", message: "the config is invalid")]
        }
        throw ConfigError(file: file, problems: problems)
    }
}
