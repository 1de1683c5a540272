// The `subscribers` part of the config walk (docs/DESIGN.md §6): receiver URL, signing secrets, event globs, limits.
import Foundation
import Core

extension Validator {
    func validateSubscriber(_ s: Fields, connectionIDs: [String]) -> SubscriberConfig? {
        let allowInsecure = s.bool("allow_insecure_http") ?? false
        let allowPrivate = s.bool("allow_private_network") ?? false
        var url: URL?
        if let text = s.string("url", required: true, expected: "the receiver's https URL") {
            url = parseURL(text, path: s.child("url"), allowHTTP: allowInsecure, isBase: false)
        }
        var secrets: [WebhookSecret] = []
        var secretsOK = true
        if let items = s.array("secrets", required: true, expected: "an array of secret references such as [{\"credential\": \"crm-webhook-secret\"}]") {
            if items.isEmpty { problems.add(s.child("secrets"), "is empty; expected at least one whsec_ signing secret") }
            for (value, path) in items {
                guard let secret = secret(value, path: path) else { secretsOK = false; continue }
                switch WebhookSecret.parse(secret) {
                case .success(let w): secrets.append(w)
                case .failure(let e): problems.add(path, e.description); secretsOK = false
                }
            }
        } else { secretsOK = false }
        let events = s.stringArray("events", element: checkGlob) ?? ["*"]
        var connections: [String]?
        if let names = s.stringArray("connections") {
            for (i, name) in names.enumerated() where !connectionIDs.contains(name) {
                problems.add("\(s.child("connections"))[\(i)]", "no connection has id \"\(name)\"\(Suggestion.hint(for: name, in: connectionIDs))")
            }
            connections = names
        }
        let timeout = s.duration("timeout", minimum: .milliseconds(100)) ?? .seconds(15)
        let maxInFlight = s.integer("max_in_flight", in: 1...1024) ?? 16
        let rateLimit = s.number("rate_limit", in: 0.001...1_000_000, expected: "requests per second, a positive number")
        let styles = s.stringArray("signature_styles") { value, path in
            if SignatureStyle(rawValue: value) != nil { return true }
            problems.add(path, "\"\(value)\" is not a signature style; expected \"standard\" or \"github\"\(Suggestion.hint(for: value, in: SignatureStyle.allCases.map(\.rawValue)))")
            return false
        }
        let includeRaw = s.bool("include_raw") ?? false
        var caFile: String?
        if let path = s.string("ca_file", expected: "an absolute path to a PEM bundle") {
            if !path.hasPrefix("/") {
                problems.add(s.child("ca_file"), "\"\(path)\" is not an absolute path")
            } else if !FileManager.default.isReadableFile(atPath: path) {
                problems.add(s.child("ca_file"), "\"\(path)\" does not exist or is not readable")
            } else { caFile = path }
        }
        guard let id = s.object["id"]?.stringValue, let url, secretsOK, !secrets.isEmpty else { return nil }
        return SubscriberConfig(id: id, url: url, secrets: secrets, events: events.map(EventTypeGlob.init),
                                connections: connections, timeout: timeout, maxInFlight: maxInFlight,
                                rateLimit: rateLimit, signatureStyles: (styles ?? ["standard"]).compactMap(SignatureStyle.init),
                                includeRaw: includeRaw, allowInsecureHTTP: allowInsecure,
                                allowPrivateNetwork: allowPrivate, caFile: caFile)
    }

    /// An event glob must be able to match something: `*`, or `<model|*>.<created|updated|deleted|*>`.
    func checkGlob(_ glob: String, _ path: String) -> Bool {
        if glob == "*" { return true }
        let parts = glob.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let models = RecordModel.allCases.map(\.rawValue)
        let kinds = ["created", "updated", "deleted"]
        guard parts.count == 2 else {
            problems.add(path, "\"\(glob)\" is not an event pattern; expected \"*\", \"<model>.<kind>\", \"ticket.*\" or \"*.deleted\"")
            return false
        }
        var ok = true
        if parts[0] != "*" && !models.contains(parts[0]) {
            problems.add(path, "\"\(glob)\" names no model; models: \(models.joined(separator: ", "))\(Suggestion.hint(for: parts[0], in: models))")
            ok = false
        }
        if parts[1] != "*" && !kinds.contains(parts[1]) {
            problems.add(path, "\"\(glob)\" names no event kind; kinds: created, updated, deleted\(Suggestion.hint(for: parts[1], in: kinds))")
            ok = false
        }
        return ok
    }
}
