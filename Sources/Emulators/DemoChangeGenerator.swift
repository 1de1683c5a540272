// The demo's "users at work": every tick it mutates records in the emulated ServiceNow, GitHub, NetSuite and Zoho Books
// through the emulators' own mutation APIs — creates, status moves, field edits, closes and, now and then, deletes —
// so the daemon has real changes to detect. It never talks to deltahook; what the feed shows is only what the
// engine found by polling.
public import Foundation
import Core
import Synchronization

/// One mutation the generator made, for `--verbose` output and tests.
public struct DemoChange: Sendable, Hashable, CustomStringConvertible {
    public enum Provider: String, Sendable, Hashable { case servicenow, github, netsuite, zohoBooks = "zoho_books" }
    public var provider: Provider
    /// `incident`, `sys_user`, `issues`, `customer`, `invoices`, `contacts`.
    public var object: String
    /// created | updated | deleted
    public var kind: String
    /// Human text, e.g. `INC0010002 state 1 → 2`.
    public var summary: String

    public var description: String { "\(provider.rawValue)/\(object) \(kind): \(summary)" }
}

/// A small seedable generator (SplitMix64) so a test can replay the same sequence of changes. Not for secrets.
public struct DemoRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

public final class DemoChangeGenerator: Sendable {
    private struct Incident {
        var id: String
        var number: String
        var state: String
    }

    private struct State {
        var random: DemoRandom
        var tick = 0
        var incidents: [Incident] = []
        var nextIncident = 10004
        var users: [String] = []
        var issues: [Int64] = []
        var customers: [Int64] = []
        var nextCustomer: Int64 = 104
        var contacts: [(id: String, name: String)] = []
    }

    private let world: DemoWorld
    private let state: Mutex<State>

    /// Live records are read from the emulators once, so the generator starts from what `DemoWorld` seeded.
    public init(world: DemoWorld, seed: UInt64 = UInt64.random(in: 0...UInt64.max)) {
        self.world = world
        var initial = State(random: DemoRandom(seed: seed))
        for id in world.servicenow.ids("incident") {
            if let row = world.servicenow.row("incident", id) {
                initial.incidents.append(Incident(id: id, number: row["number"] ?? id, state: row["state"] ?? "1"))
            }
        }
        initial.users = world.servicenow.ids("sys_user")
        initial.issues = world.github.issues.map(\.number)
        initial.customers = DemoWorld.seededCustomers.map(\.id)
        initial.nextCustomer = (initial.customers.max() ?? 100) + 1
        initial.contacts = world.zoho.records("contacts").map { ($0.id, $0.fields["contact_name"]?.stringValue ?? $0.id) }
        state = Mutex(initial)
    }

    /// Mutates until the task is cancelled: one tick every `interval`.
    public func run(every interval: Duration, onChange: @escaping @Sendable (DemoChange) -> Void = { _ in }) async {
        while !Task.isCancelled {
            for change in step() { onChange(change) }
            try? await Task.sleep(for: interval)
        }
    }

    /// One tick: every provider changes something with probability 1/2, and at least one provider always does
    /// (the providers take turns being the sure one), so each shows up within four ticks.
    @discardableResult
    public func step(now: Date = Date()) -> [DemoChange] {
        state.withLock { s in
            s.tick += 1
            let sure = DemoChange.Provider.allCases[s.tick % DemoChange.Provider.allCases.count]
            var changes: [DemoChange] = []
            for provider in DemoChange.Provider.allCases where provider == sure || Bool.random(using: &s.random) {
                let change: DemoChange?
                switch provider {
                case .servicenow: change = serviceNow(&s, now: now)
                case .github: change = github(&s, now: now)
                case .netsuite: change = netsuite(&s, now: now)
                case .zohoBooks: change = zohoBooks(&s, now: now)
                }
                if let change { changes.append(change) }
            }
            return changes
        }
    }

    // MARK: ServiceNow: incidents move through New → In Progress → On Hold/Resolved → Closed; users change title.

    /// Incident `state` codes (docs/DESIGN.md §3): where each one may go next.
    private static let nextStates: [String: [String]] = ["1": ["2"], "2": ["3", "6"], "3": ["2"], "6": ["7", "2"]]
    private static let titles = ["Senior Analyst", "Team Lead", "Site Reliability Engineer", "Architect", "Manager"]
    private static let incidentTexts = ["Laptop will not boot", "Cannot reach the wiki", "Password reset loop",
                                        "Disk almost full on build01", "Slow database queries", "Badge reader offline"]

    private func serviceNow(_ s: inout State, now: Date) -> DemoChange? {
        let sn = world.servicenow
        let roll = Int.random(in: 0..<10, using: &s.random)
        do {
            if roll < 2 || s.incidents.isEmpty {
                let number = String(format: "INC%07d", s.nextIncident)
                s.nextIncident += 1
                let text = Self.incidentTexts.randomElement(using: &s.random) ?? "Something broke"
                let caller = s.users.randomElement(using: &s.random) ?? ""
                let id = try sn.insert("incident", ["number": number, "short_description": text, "state": "1",
                                                    "priority": String(Int.random(in: 2...4, using: &s.random)),
                                                    "active": "true", "category": "inquiry", "caller_id": caller,
                                                    "opened_at": Timestamps.sqlStyle(now)], at: now)
                s.incidents.append(Incident(id: id, number: number, state: "1"))
                return DemoChange(provider: .servicenow, object: "incident", kind: "created", summary: "\(number) \(text)")
            }
            if roll == 2, let user = s.users.randomElement(using: &s.random) {
                let title = Self.titles.randomElement(using: &s.random) ?? "Analyst"
                try sn.update("sys_user", user, ["title": title], at: now)
                return DemoChange(provider: .servicenow, object: "sys_user", kind: "updated", summary: "title → \(title)")
            }
            let index = Int.random(in: 0..<s.incidents.count, using: &s.random)
            var incident = s.incidents[index]
            if incident.state == "7" {
                // Closed incidents are deleted now and then (sys_audit_delete records it) or reopened.
                if roll < 7 {
                    try sn.delete("incident", incident.id, at: now)
                    s.incidents.remove(at: index)
                    return DemoChange(provider: .servicenow, object: "incident", kind: "deleted", summary: incident.number)
                }
                incident.state = "2"
                try sn.update("incident", incident.id, ["state": "2", "active": "true", "closed_at": ""], at: now)
            } else if roll == 3 {
                let priority = String(Int.random(in: 1...4, using: &s.random))
                try sn.update("incident", incident.id, ["priority": priority], at: now)
                return DemoChange(provider: .servicenow, object: "incident", kind: "updated",
                                  summary: "\(incident.number) priority → \(priority)")
            } else {
                let from = incident.state
                let to = Self.nextStates[from]?.randomElement(using: &s.random) ?? "2"
                var fields = ["state": to]
                if to == "6" { fields["resolved_at"] = Timestamps.sqlStyle(now) }
                if to == "7" {
                    fields["closed_at"] = Timestamps.sqlStyle(now)
                    fields["active"] = "false"
                }
                try sn.update("incident", incident.id, fields, at: now)
                incident.state = to
            }
            s.incidents[index] = incident
            return DemoChange(provider: .servicenow, object: "incident", kind: "updated",
                              summary: "\(incident.number) state → \(incident.state)")
        } catch {
            // A record the generator believed live is gone: forget the bookkeeping and carry on.
            s.incidents = sn.ids("incident").compactMap { id in
                sn.row("incident", id).map { Incident(id: id, number: $0["number"] ?? id, state: $0["state"] ?? "1") }
            }
            return nil
        }
    }

    // MARK: GitHub: issues are opened, retitled, labelled, assigned, closed, reopened, now and then deleted.

    private static let issueTitles = ["Flaky test in CI", "Add --json to status", "Typo in README",
                                      "Memory grows with many connections", "Support proxies", "Improve error for 401"]
    private static let labels = ["bug", "docs", "enhancement", "good first issue", "question"]
    private static let people = ["octocat", "hubot", "monalisa"]

    private func github(_ s: inout State, now: Date) -> DemoChange? {
        let gh = world.github
        let roll = Int.random(in: 0..<12, using: &s.random)
        if roll < 2 || s.issues.isEmpty {
            let title = Self.issueTitles.randomElement(using: &s.random) ?? "New issue"
            let issue = gh.createIssue(title: title, labels: [Self.labels.randomElement(using: &s.random) ?? "bug"],
                                       at: now)
            s.issues.append(issue.number)
            return DemoChange(provider: .github, object: "issues", kind: "created", summary: "#\(issue.number) \(title)")
        }
        let index = Int.random(in: 0..<s.issues.count, using: &s.random)
        let number = s.issues[index]
        guard let issue = gh.issue(number: number) else {
            s.issues.remove(at: index)
            return nil
        }
        if roll == 11 && s.issues.count > 3 {
            // Only a reconciliation sweep can see this one (GitHub has no delete feed): reconcile_every 1m.
            gh.delete(number)
            s.issues.remove(at: index)
            return DemoChange(provider: .github, object: "issues", kind: "deleted", summary: "#\(number)")
        }
        switch roll {
        case 2, 3:
            if issue.state == "open" {
                gh.close(number, at: now)
                return DemoChange(provider: .github, object: "issues", kind: "updated", summary: "#\(number) closed")
            }
            gh.reopen(number, at: now)
            return DemoChange(provider: .github, object: "issues", kind: "updated", summary: "#\(number) reopened")
        case 4, 5:
            let title = (Self.issueTitles.randomElement(using: &s.random) ?? "Issue") + " (v\(s.tick))"
            gh.updateIssue(number, at: now) { $0.title = title }
            return DemoChange(provider: .github, object: "issues", kind: "updated", summary: "#\(number) title → \(title)")
        case 6, 7:
            let person = Self.people.randomElement(using: &s.random) ?? "octocat"
            gh.updateIssue(number, at: now) { $0.assignees = $0.assignees == [person] ? [] : [person] }
            return DemoChange(provider: .github, object: "issues", kind: "updated", summary: "#\(number) assignee \(person)")
        default:
            let label = Self.labels.randomElement(using: &s.random) ?? "bug"
            gh.updateIssue(number, at: now) { issue in
                if issue.labels.contains(label) { issue.labels.removeAll { $0 == label } } else { issue.labels.append(label) }
            }
            return DemoChange(provider: .github, object: "issues", kind: "updated", summary: "#\(number) label \(label)")
        }
    }

    // MARK: NetSuite: customers are added, change email/phone/status, go inactive, and are deleted now and then.

    private static let companies = ["Umbrella Corp", "Stark Industries", "Wayne Enterprises", "Hooli", "Vandelay Industries",
                                    "Soylent Co"]

    private func netsuite(_ s: inout State, now: Date) -> DemoChange? {
        let ns = world.netsuite
        let roll = Int.random(in: 0..<10, using: &s.random)
        if roll < 2 || s.customers.isEmpty {
            let id = s.nextCustomer
            s.nextCustomer += 1
            let company = Self.companies.randomElement(using: &s.random) ?? "New Customer"
            ns.upsert("customer", id: id, modifiedAt: now,
                      fields: DemoWorld.customerFields(id: id, company: company, status: "6"))
            s.customers.append(id)
            return DemoChange(provider: .netsuite, object: "customer", kind: "created", summary: "\(id) \(company)")
        }
        let index = Int.random(in: 0..<s.customers.count, using: &s.random)
        let id = s.customers[index]
        switch roll {
        case 2:
            if s.customers.count > 3 {
                ns.delete("customer", id: id, at: now)  // recorded in DeletedRecord, the delete feed
                s.customers.remove(at: index)
                return DemoChange(provider: .netsuite, object: "customer", kind: "deleted", summary: "\(id)")
            }
            fallthrough
        case 3, 4:
            let status = ["6", "13", "15"].randomElement(using: &s.random) ?? "13"
            ns.upsert("customer", id: id, modifiedAt: now, fields: [("entitystatus", .text(status))])
            return DemoChange(provider: .netsuite, object: "customer", kind: "updated", summary: "\(id) status → \(status)")
        case 5, 6:
            let phone = "555-\(Int.random(in: 1000...9999, using: &s.random))"
            ns.upsert("customer", id: id, modifiedAt: now, fields: [("phone", .text(phone))])
            return DemoChange(provider: .netsuite, object: "customer", kind: "updated", summary: "\(id) phone → \(phone)")
        case 7:
            let inactive = Bool.random(using: &s.random) ? "T" : "F"
            ns.upsert("customer", id: id, modifiedAt: now, fields: [("isinactive", .text(inactive))])
            return DemoChange(provider: .netsuite, object: "customer", kind: "updated", summary: "\(id) inactive → \(inactive)")
        default:
            let user = ["ap", "billing", "finance", "accounts"].randomElement(using: &s.random) ?? "billing"
            let email = "\(user)\(s.tick)@customer\(id).example"
            ns.upsert("customer", id: id, modifiedAt: now, fields: [("email", .text(email))])
            return DemoChange(provider: .netsuite, object: "customer", kind: "updated", summary: "\(id) email → \(email)")
        }
    }
}

extension DemoChange.Provider: CaseIterable {}

// MARK: Zoho Books: invoices are raised, sent, paid in part or in full, voided; a contact changes phone now and then.

extension DemoChangeGenerator {
    /// Invoice `status` values (Zoho Books API): where each one may go next.
    private static let invoiceNext: [String: [String]] = ["draft": ["sent"], "sent": ["partially_paid", "paid", "void"],
                                                          "partially_paid": ["paid"], "overdue": ["paid"]]

    private func zohoBooks(_ s: inout State, now: Date) -> DemoChange? {
        let zoho = world.zoho
        let roll = Int.random(in: 0..<10, using: &s.random)
        if roll == 9, let contact = s.contacts.randomElement(using: &s.random) {
            let phone = "+91 80 \(Int.random(in: 1000_0000...9999_9999, using: &s.random))"
            guard zoho.updateContact(contact.id, at: now, { $0["phone"] = .string(phone) }) != nil else { return nil }
            return DemoChange(provider: .zohoBooks, object: "contacts", kind: "updated", summary: "\(contact.name) phone → \(phone)")
        }
        // Invoices that can still move (a paid or void one is final).
        let open = zoho.records("invoices").filter { Self.invoiceNext[$0.fields["status"]?.stringValue ?? ""] != nil }.map(\.id)
        if roll < 3 || open.isEmpty {
            let contact = s.contacts.randomElement(using: &s.random) ?? (id: "460000000000900", name: "Zylker Traders")
            let total = Double(Int.random(in: 5...80, using: &s.random) * 50)
            let invoice = zoho.createInvoice(customerID: contact.id, customerName: contact.name, total: total, at: now)
            let number = invoice.fields["invoice_number"]?.stringValue ?? invoice.id
            return DemoChange(provider: .zohoBooks, object: "invoices", kind: "created", summary: "\(number) \(contact.name)")
        }
        let id = open[Int.random(in: 0..<open.count, using: &s.random)]
        var summary = ""
        let updated = zoho.updateInvoice(id, at: now) { fields in
            let from = fields["status"]?.stringValue ?? "draft"
            let to = Self.invoiceNext[from]?.randomElement(using: &s.random) ?? "sent"
            let total = fields["total"]?.doubleValue ?? 0
            fields["status"] = .string(to)
            switch to {
            case "paid": fields["balance"] = .double(0)
            case "partially_paid": fields["balance"] = .double((total / 2).rounded())
            default: break
            }
            summary = "\(fields["invoice_number"]?.stringValue ?? id) status \(from) → \(to)"
        }
        guard updated != nil else { return nil }
        return DemoChange(provider: .zohoBooks, object: "invoices", kind: "updated", summary: summary)
    }
}
