// Normalized ServiceNow models (docs/DESIGN.md §4, docs/models.md).
import Core
import Providers
import Testing

@Suite("ServiceNow models")
struct ServiceNowModelTests {
    private let base = "https://acme.service-now.com"

    private func incident(state: String, assignee: JSONValue, group: JSONValue = "") -> JSONValue {
        .object(JSONObject([
            ("sys_id", "9d385017c611228701d22104cc95c371"), ("number", "INC0010001"), ("state", .string(state)),
            ("priority", "2"), ("short_description", "Mail is down"), ("description", ""),
            ("assigned_to", assignee), ("assignment_group", group), ("opened_at", "2026-11-29 05:59:00"),
            ("resolved_at", ""), ("sys_updated_on", "2026-11-29 06:00:00"), ("sys_mod_count", "3"),
        ]))
    }

    @Test("incident → ticket: state codes, title, priority, times in RFC 3339, url", arguments: [
        ("1", "open"), ("2", "in_progress"), ("3", "on_hold"), ("6", "resolved"), ("7", "closed"), ("8", "canceled"),
        ("42", "unknown"),
    ])
    func ticket(code: String, status: String) {
        let record = ServiceNowModel.ticket.normalize(incident(state: code, assignee: ""), table: "incident", baseURL: base)
        #expect(record["status"] == .string(status))
        #expect(record["state_code"] == .string(code))
        #expect(record["id"] == "9d385017c611228701d22104cc95c371")
        #expect(record["number"] == "INC0010001")
        #expect(record["title"] == "Mail is down")
        #expect(record["description"] == .null)
        #expect(record["priority"] == .integer(2))
        #expect(record["opened_at"] == "2026-11-29T05:59:00Z")
        #expect(record["resolved_at"] == .null)
        #expect(record["updated_at"] == "2026-11-29T06:00:00Z")
        #expect(record["url"] == "https://acme.service-now.com/incident.do?sys_id=9d385017c611228701d22104cc95c371")
        #expect(record["assignee_id"] == .null)
    }

    @Test("reference fields normalize to the sys_id in all three shapes", arguments: [
        JSONValue.string("46c6f9efa9fe198101ddf5eed9adf6e7"),
        .object(JSONObject([("link", "https://acme.service-now.com/api/now/table/sys_user/46c6f9efa9fe198101ddf5eed9adf6e7"),
                            ("value", "46c6f9efa9fe198101ddf5eed9adf6e7")])),
        .object(JSONObject([("display_value", "Beth Anglin"), ("link", "https://x/api/now/table/sys_user/46c6f9efa9fe198101ddf5eed9adf6e7"),
                            ("value", "46c6f9efa9fe198101ddf5eed9adf6e7")])),
    ])
    func referenceShapes(shape: JSONValue) {
        let record = ServiceNowModel.ticket.normalize(incident(state: "2", assignee: shape, group: shape), table: "incident", baseURL: base)
        #expect(record["assignee_id"] == "46c6f9efa9fe198101ddf5eed9adf6e7")
        #expect(record["group_id"] == "46c6f9efa9fe198101ddf5eed9adf6e7")
        #expect(ServiceNowModel.reference("") == nil)
    }

    @Test("a ticket on another task table passes its raw state through instead of guessing incident codes")
    func otherTaskTable() {
        let record = ServiceNowModel.ticket.normalize(incident(state: "-5", assignee: ""), table: "change_request", baseURL: base)
        #expect(record["status"] == "-5")
        #expect(record["url"]?.stringValue?.contains("/change_request.do?sys_id=") == true)
    }

    @Test("sys_user → user and sys_user_group → group; booleans from \"true\"/\"false\"")
    func userAndGroup() {
        let user: JSONValue = ["sys_id": "u1", "user_name": "beth.anglin", "name": "Beth Anglin", "email": "beth@example.com",
                               "active": "true", "manager": "", "department": "d1", "sys_updated_on": "2026-11-29 06:00:00"]
        let u = ServiceNowModel.user.normalize(user, table: "sys_user", baseURL: base)
        #expect(u["user_name"] == "beth.anglin" && u["active"] == .bool(true) && u["manager_id"] == .null)
        #expect(u["department_id"] == "d1" && u["updated_at"] == "2026-11-29T06:00:00Z")
        let group: JSONValue = ["sys_id": "g1", "name": "Service Desk", "active": "false", "manager": "u1", "parent": ""]
        let g = ServiceNowModel.group.normalize(group, table: "sys_user_group", baseURL: base)
        #expect(g["name"] == "Service Desk" && g["active"] == .bool(false) && g["manager_id"] == "u1" && g["parent_id"] == .null)
    }

    @Test("model record passes raw fields through; bookkeeping fields are volatile by default (§4)")
    func recordAndVolatile() {
        let raw: JSONValue = ["sys_id": "x", "u_field": "1"]
        #expect(ServiceNowModel.record.normalize(raw, table: "u_custom", baseURL: base) == raw)
        #expect(ServiceNowModel.defaultVolatileFields.isSuperset(of: ["sys_updated_on", "sys_mod_count", "updated_at"]))
        let a = ContentHash.of(incident(state: "2", assignee: ""), ignoring: ServiceNowModel.defaultVolatileFields)
        var touched = incident(state: "2", assignee: "").objectValue ?? JSONObject()
        touched["sys_mod_count"] = "4"
        touched["sys_updated_on"] = "2026-11-29 06:01:00"
        #expect(a == ContentHash.of(.object(touched), ignoring: ServiceNowModel.defaultVolatileFields))
    }
}
