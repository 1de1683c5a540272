// Secrets come from a systemd credential, a file or an environment variable (docs/DESIGN.md §1, §6) and are
// resolved while the config loads, so `check-config` proves they are present. Their values never appear in
// errors, descriptions, dumps or logs.
import Foundation

/// Where a secret value lives. Describing a reference is safe: it names the source, never the value.
public enum SecretReference: Sendable, Hashable, CustomStringConvertible {
    /// `{"credential": "name"}`: `$CREDENTIALS_DIRECTORY/name` (systemd `LoadCredential=`, docs/CREDENTIALS.md).
    case credential(String)
    /// `{"file": "/absolute/path"}`.
    case file(String)
    /// `{"env": "NAME"}`.
    case environment(String)

    public var description: String {
        switch self {
        case .credential(let name): "credential \"\(name)\""
        case .file(let path): "file \"\(path)\""
        case .environment(let name): "environment variable \"\(name)\""
        }
    }
}

/// A resolved secret. `description`, `debugDescription` and `dump` all print `<redacted>`; the value is only
/// reachable through the deliberately named `unredactedValue`, so a leak is visible in code review.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let value: String
    /// Where the value came from (safe to print).
    public let reference: SecretReference

    public init(unredactedValue: String, reference: SecretReference) {
        self.value = unredactedValue
        self.reference = reference
    }

    /// The secret text itself. Use it only to build a request or key; never log or store it.
    public var unredactedValue: String { value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

/// A Standard Webhooks signing secret: `whsec_` + base64 of 24–64 random bytes (standardwebhooks.com).
public struct WebhookSecret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The text as configured (`whsec_…`), e.g. for registering with a log scrubber.
    public let secret: Secret
    private let keyBytes: [UInt8]

    /// The base64-decoded HMAC key. Never log it.
    public var unredactedKey: [UInt8] { keyBytes }
    public var reference: SecretReference { secret.reference }

    public static let prefix = "whsec_"
    public static let allowedKeyLengths = 24...64

    /// Checks the shape of `secret`; the failure message describes the problem without quoting the value.
    public static func parse(_ secret: Secret) -> Result<WebhookSecret, SecretShapeError> {
        let text = secret.unredactedValue
        guard text.hasPrefix(prefix) else {
            return .failure(SecretShapeError(reference: secret.reference,
                                             problem: "does not start with \"whsec_\" (expected \"whsec_\" + base64 of 24–64 random bytes, e.g. from `openssl rand -base64 32`)"))
        }
        guard let decoded = Data(base64Encoded: String(text.dropFirst(prefix.count))) else {
            return .failure(SecretShapeError(reference: secret.reference,
                                             problem: "has a \"whsec_\" prefix but the rest is not valid base64"))
        }
        guard allowedKeyLengths.contains(decoded.count) else {
            return .failure(SecretShapeError(reference: secret.reference,
                                             problem: "decodes to \(decoded.count) bytes; a webhook key must be 24–64 bytes"))
        }
        return .success(WebhookSecret(secret: secret, keyBytes: Array(decoded)))
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

/// Why a secret's value has the wrong shape (never includes the value).
public struct SecretShapeError: Error, Sendable, CustomStringConvertible {
    public let reference: SecretReference
    public let problem: String
    public var description: String { "\(reference) \(problem)" }
}

/// The process environment seen by config loading, injectable so tests never touch the real environment.
public struct ConfigEnvironment: Sendable {
    public var variables: [String: String]
    /// `$CREDENTIALS_DIRECTORY` unless overridden.
    public var credentialsDirectory: String?

    public init(variables: [String: String], credentialsDirectory: String? = nil) {
        self.variables = variables
        self.credentialsDirectory = credentialsDirectory ?? variables["CREDENTIALS_DIRECTORY"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The real process environment.
    public static func process() -> ConfigEnvironment {
        ConfigEnvironment(variables: ProcessInfo.processInfo.environment)
    }

    /// Largest secret accepted from a file: systemd caps all credentials of a unit at 1 MB.
    static let maximumSecretFileSize = 1 << 20

    /// Reads the value a reference points at. Errors name the reference and never the value.
    public func resolve(_ reference: SecretReference) -> Result<Secret, SecretResolutionError> {
        switch reference {
        case .environment(let name):
            guard let value = variables[name] else {
                return .failure(SecretResolutionError(reference: reference, problem: "is not set"))
            }
            guard !value.isEmpty else {
                return .failure(SecretResolutionError(reference: reference, problem: "is empty"))
            }
            return .success(Secret(unredactedValue: value, reference: reference))
        case .credential(let name):
            guard let directory = credentialsDirectory else {
                return .failure(SecretResolutionError(
                    reference: reference,
                    problem: "cannot be read: $CREDENTIALS_DIRECTORY is not set (run under systemd with LoadCredential=\(name):/path, or export CREDENTIALS_DIRECTORY; Scripts/example-secrets.sh shows how)"))
            }
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            return readFile(path, reference: reference, whereText: "in $CREDENTIALS_DIRECTORY (\(directory))")
        case .file(let path):
            return readFile(path, reference: reference, whereText: nil)
        }
    }

    private func readFile(_ path: String, reference: SecretReference, whereText: String?) -> Result<Secret, SecretResolutionError> {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
            let location = whereText ?? "(\(path))"
            return .failure(SecretResolutionError(reference: reference, problem: "not found \(location)"))
        }
        guard !isDirectory.boolValue else {
            return .failure(SecretResolutionError(reference: reference, problem: "is a directory (\(path)), not a file"))
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            return .failure(SecretResolutionError(reference: reference,
                                                  problem: "is not readable (\(path)): check its owner and mode"))
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: ConfigEnvironment.maximumSecretFileSize + 1) ?? Data()
        } catch {
            return .failure(SecretResolutionError(reference: reference, problem: "could not be read (\(path))"))
        }
        guard data.count <= ConfigEnvironment.maximumSecretFileSize else {
            return .failure(SecretResolutionError(reference: reference, problem: "is larger than 1 MB (\(path))"))
        }
        guard var text = String(data: data, encoding: .utf8) else {
            return .failure(SecretResolutionError(reference: reference, problem: "is not UTF-8 text (\(path))"))
        }
        // `echo secret > file` and editors add a final newline that is never part of the secret.
        while let last = text.unicodeScalars.last, last == "\n" || last == "\r" { text.unicodeScalars.removeLast() }
        guard !text.isEmpty else {
            return .failure(SecretResolutionError(reference: reference, problem: "is empty (\(path))"))
        }
        return .success(Secret(unredactedValue: text, reference: reference))
    }
}

/// A secret that could not be resolved. The message names the reference and where it looked, not a value.
public struct SecretResolutionError: Error, Sendable, CustomStringConvertible {
    public let reference: SecretReference
    public let problem: String
    public var description: String { "\(reference) \(problem)" }
}
