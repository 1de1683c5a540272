// Secret references in the config (docs/DESIGN.md §1, §6): `{"credential": NAME}`, `{"file": PATH}` or `{"env": NAME}`,
// parsed and resolved during validation so `check-config` proves every secret is there; values never appear in problems.
import Foundation
import Core

extension Validator {
    /// Parses a secret reference and resolves it now, so `check-config` proves the secret is there.
    func secret(_ f: Fields, _ key: String) -> Secret? {
        guard let value = f.raw(key) else {
            problems.add(f.child(key), "is required; expected a secret reference: {\"credential\": \"name\"}, {\"file\": \"/path\"} or {\"env\": \"NAME\"}")
            return nil
        }
        return secret(value, path: f.child(key))
    }

    func secret(_ value: JSONValue, path: String) -> Secret? {
        guard let reference = secretReference(value, path: path) else { return nil }
        switch environment.resolve(reference) {
        case .success(let secret): return secret
        case .failure(let error):
            problems.add(path, error.description)
            return nil
        }
    }

    func secretReference(_ value: JSONValue, path: String) -> SecretReference? {
        let usage = "{\"credential\": \"name\"}, {\"file\": \"/path\"} or {\"env\": \"NAME\"}"
        if value.stringValue != nil {
            // Never echo the string: it is probably the secret itself.
            problems.add(path, "a plain string is not accepted for a secret (keep secrets out of the config file); use \(usage)")
            return nil
        }
        guard let f = Fields(value, path: path, problems: problems) else { return nil }
        let credential = f.string("credential", expected: "a credential name")
        let file = f.string("file", expected: "an absolute file path")
        let env = f.string("env", expected: "an environment variable name")
        f.reportUnknownKeys()
        let given = [credential, file, env].compactMap { $0 }
        guard given.count == 1 else {
            if given.count > 1 || f.object.keys.allSatisfy({ $0.hasPrefix(commentKeyPrefix) }) {
                problems.add(path, "expected exactly one of \"credential\", \"file\", \"env\": \(usage)")
            }
            return nil
        }
        if let credential {
            guard !credential.contains("/"), credential != ".", credential != ".." else {
                problems.add(joinPath(path, "credential"), "\"\(credential)\" is not a credential name (no \"/\"); use {\"file\": …} for paths")
                return nil
            }
            return .credential(credential)
        }
        if let file {
            guard file.hasPrefix("/") else {
                problems.add(joinPath(path, "file"), "\"\(file)\" is not an absolute path")
                return nil
            }
            return .file(file)
        }
        if let env {
            let ok = env.first.map { $0 == "_" || ($0.isASCII && $0.isLetter) } ?? false
                && env.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
            guard ok else {
                problems.add(joinPath(path, "env"), "\"\(env)\" is not an environment variable name; expected e.g. \"GITHUB_TOKEN\"")
                return nil
            }
            return .environment(env)
        }
        return nil
    }
}
