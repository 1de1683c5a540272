// GitHub issue → normalized `ticket` model (docs/DESIGN.md §4). Field by field (also in docs/models.md, GitHub section):
//
//   ticket field      GitHub issue field (GET /repos/{owner}/{repo}/issues, REST API 2022-11-28)
//   id                `id` as a decimal string (the issue id, not its number; PRs share the id space)
//   number            `number` (integer)
//   title             `title`
//   status            `state`: "open" | "closed"
//   body              `body` (Markdown text, null when empty) — kept: it is what people edit most
//   assignees         `assignees[].login`, in GitHub's order
//   labels            `labels[].name` (label objects; plain strings are accepted too), in GitHub's order
//   url               `html_url`
//   created_at        `created_at`, RFC 3339 UTC
//   updated_at        `updated_at`, RFC 3339 UTC (volatile: a change in it alone emits nothing)
//   closed_at         `closed_at`, RFC 3339 UTC or null
//   is_pull_request   true when the row carries a `pull_request` key (GitHub lists PRs among issues)
//
// Model `record` passes the raw issue through unchanged.
import Core
import Foundation

enum GitHubTicket {
    /// Builds the normalized ticket; `path` names the row in errors (`$[3]`).
    static func normalize(_ raw: JSONValue, path: String) throws -> JSONValue {
        let reader = FieldReader(raw, path: path)
        guard raw.objectValue != nil else {
            throw ProviderError.malformed(path: path, message: "expected an issue object, found \(raw.typeName)")
        }
        let id = try reader.requiredString("id")
        guard let number = raw["number"]?.int64Value else {
            throw ProviderError.malformed(path: "\(path).number", message: "expected the issue number (an integer)")
        }
        guard let state = raw["state"]?.stringValue, state == "open" || state == "closed" else {
            throw ProviderError.malformed(path: "\(path).state", message: "expected \"open\" or \"closed\"")
        }
        let created = try reader.requiredTimestamp("created_at", format: "RFC 3339", Timestamps.parseRFC3339)
        let updated = try reader.requiredTimestamp("updated_at", format: "RFC 3339", Timestamps.parseRFC3339)
        var closed: JSONValue = .null
        switch raw["closed_at"] {
        case .none, .null?: break
        case .string(let text)?:
            guard let date = Timestamps.parseRFC3339(text) else {
                throw ProviderError.malformed(path: "\(path).closed_at", message: "\"\(text)\" is not an RFC 3339 timestamp")
            }
            closed = .string(Timestamps.rfc3339(date))
        case .some(let other):
            throw ProviderError.malformed(path: "\(path).closed_at", message: "expected a timestamp or null, found \(other.typeName)")
        }
        var assignees: [JSONValue] = []
        if let list = raw["assignees"]?.arrayValue {
            for (i, person) in list.enumerated() {
                guard let login = person["login"]?.stringValue else {
                    throw ProviderError.malformed(path: "\(path).assignees[\(i)].login", message: "missing login")
                }
                assignees.append(.string(login))
            }
        }
        var labels: [JSONValue] = []
        if let list = raw["labels"]?.arrayValue {
            for (i, label) in list.enumerated() {
                if let name = label.stringValue ?? label["name"]?.stringValue {
                    labels.append(.string(name))
                } else {
                    throw ProviderError.malformed(path: "\(path).labels[\(i)]", message: "expected a label name")
                }
            }
        }
        var body: JSONValue = .null
        if let text = raw["body"]?.stringValue { body = .string(text) }
        var object = JSONObject()
        object["id"] = .string(id)
        object["number"] = .integer(number)
        object["title"] = .string(raw["title"]?.stringValue ?? "")
        object["status"] = .string(state)
        object["body"] = body
        object["assignees"] = .array(assignees)
        object["labels"] = .array(labels)
        object["url"] = raw["html_url"]?.stringValue.map(JSONValue.string) ?? .null
        object["created_at"] = .string(Timestamps.rfc3339(created))
        object["updated_at"] = .string(Timestamps.rfc3339(updated))
        object["closed_at"] = closed
        object["is_pull_request"] = .bool(raw["pull_request"] != nil)
        return .object(object)
    }
}
