// Small helpers shared by the store's files: the per-record ordering key, JSON arrays of ids for `json_each`,
// JSON parsing that reports corrupt rows, and UTF-8-safe truncation.
import Core

extension StateStore {
    /// `connection/object/record_id`: the per-record ordering key of deliveries.
    public static func recordKey(connection: String, object: String, recordID: String) -> String {
        "\(connection)/\(object)/\(recordID)"
    }

    static func recordKey(_ event: ChangeEvent) -> String {
        recordKey(connection: event.connection, object: event.object, recordID: event.recordID)
    }


    static func jsonArray(_ strings: [String]) -> String {
        JSONValue.array(strings.map { .string($0) }).serialized()
    }

    static func parseJSON(_ text: String, _ context: String) throws -> JSONValue {
        do {
            return try JSONValue.parse(text)
        } catch {
            throw StoreError(code: .corruptData, message: "\(context) is not valid JSON: \(error.description)")
        }
    }

    /// The longest prefix of `text` of at most `limit` UTF-8 bytes that ends on a character boundary.
    static func truncateUTF8(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        let bytes = Array(text.utf8.prefix(limit + 1))
        var end = limit
        // Do not cut inside a multi-byte scalar: back up over continuation bytes (10xxxxxx).
        while end > 0, bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}
