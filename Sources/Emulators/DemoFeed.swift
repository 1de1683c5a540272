// What `deltahook demo` prints: one line per webhook the receiver got (time, event type, provider/object, record,
// changed fields, delivery latency, signature check) and the closing summary. Everything here is computed from what
// arrived at the receiver — the body a subscriber sees (docs/DESIGN.md §4) and the receiver's own signature verdict — plus
// the enqueue time the demo looks up in the store for the latency.
public import Foundation
public import Core

/// One delivery as the demo reports it.
public struct DemoDelivery: Sendable {
    public var receivedAt: Date
    public var webhookID: String
    /// `ticket.updated`, …
    public var type: String
    public var provider: String
    public var connection: String
    public var object: String
    public var recordID: String
    /// A human handle for the record: `INC0010002`, `#3`, a customer name.
    public var label: String
    /// Field-level changes (updated events), in the body's order.
    public var changes: [(field: String, from: JSONValue, to: JSONValue)]
    /// Whether the receiver verified the Standard Webhooks signature with its own copy of the secret.
    public var verified: Bool
    public var verificationError: String?
    /// Enqueue (the page commit that created the delivery row) → arrival at the receiver; nil when unknown.
    public var latency: Duration?
    /// The event came from a poll a push hint triggered (the demo's GitHub side sends one after each change).
    public var hinted = false

    /// Parses what the receiver recorded; nil when the body is not a deltahook event (it never should be).
    public init?(_ webhook: ReceivedWebhook, latency: Duration?) {
        guard let json = try? JSONValue.parse(webhook.body), let data = json["data"] else { return nil }
        receivedAt = webhook.receivedAt
        webhookID = webhook.webhookID ?? data["event_id"]?.stringValue ?? "?"
        type = json["type"]?.stringValue ?? "?"
        provider = data["provider"]?.stringValue ?? "?"
        connection = data["connection"]?.stringValue ?? "?"
        object = data["object"]?.stringValue ?? "?"
        recordID = data["record_id"]?.stringValue ?? "?"
        label = DemoDelivery.label(of: data["record"])
        var changes: [(String, JSONValue, JSONValue)] = []
        if let members = data["changes"]?.objectValue {
            for (field, change) in members {
                changes.append((field, change["from"] ?? .null, change["to"] ?? .null))
            }
        }
        self.changes = changes
        verified = webhook.verified
        verificationError = webhook.verificationError
        self.latency = latency
    }

    /// `number` for tickets (`#` + number on GitHub, where it is an integer), else a name.
    static func label(of record: JSONValue?) -> String {
        guard let record else { return "" }
        if let number = record["number"]?.stringValue { return number }
        if let number = record["number"]?.int64Value { return "#\(number)" }
        for key in ["name", "user_name", "entity_id", "title"] {
            if let text = record[key]?.stringValue, !text.isEmpty { return text }
        }
        return ""
    }

    /// `ticket.updated` → `updated`.
    public var kind: String { type.split(separator: ".").last.map(String.init) ?? type }

    /// The one-line human form:
    /// `10:41:02.123  ticket.updated    servicenow/incident   9d385017…  INC0010002  status: new → in_progress   23 ms ✓`
    public func line(timeZone: TimeZone = .current) -> String {
        var what: String
        switch kind {
        case "updated":
            what = changes.isEmpty ? "(no field changes)"
                : changes.map { "\($0.field): \(Self.show($0.from)) → \(Self.show($0.to))" }.joined(separator: ", ")
        case "created":
            what = "new"
        case "deleted":
            what = "gone"
        default:
            what = ""
        }
        if !label.isEmpty { what = Self.clip(label, 28) + "  " + what }
        if hinted { what = "(hint) " + what }
        let latencyText = latency.map { Self.milliseconds($0) } ?? "   ? ms"
        let mark = verified ? "✓" : "✗ signature: \(verificationError ?? "invalid")"
        return Self.pad(Self.clock(receivedAt, timeZone: timeZone), 12) + "  " + Self.pad(type, 16) + "  "
            + Self.pad("\(provider)/\(object)", 20) + "  " + Self.pad(Self.shortID(recordID), 10) + "  "
            + latencyText + " " + mark + "  " + what
    }

    /// The `--json` form: one object per line.
    public var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("received_at", .string(Timestamps.rfc3339Milliseconds(receivedAt))), ("webhook_id", .string(webhookID)),
            ("type", .string(type)), ("provider", .string(provider)), ("connection", .string(connection)),
            ("object", .string(object)), ("record_id", .string(recordID)), ("label", .string(label)),
        ]
        if !changes.isEmpty {
            members.append(("changes", .object(JSONObject(changes.map {
                ($0.field, .object(JSONObject([("from", $0.from), ("to", $0.to)])))
            }))))
        }
        members.append(("latency_ms", latency.map { .double((Self.ms($0) * 1000).rounded() / 1000) } ?? .null))
        members.append(("signature_verified", .bool(verified)))
        members.append(("hinted_poll", .bool(hinted)))
        return .object(JSONObject(members))
    }

    // MARK: formatting

    static func show(_ value: JSONValue) -> String {
        switch value {
        case .null: return "∅"
        case .string(let text): return clip(text.isEmpty ? "\"\"" : text, 40)
        case .array(let items): return "[" + items.map(show).joined(separator: ", ") + "]"
        default: return clip(value.serialized(), 40)
        }
    }

    static func clip(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }

    public static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    /// ServiceNow sys_ids are 32 hex digits: the first 8 identify a record in a demo.
    static func shortID(_ id: String) -> String { id.count > 10 ? String(id.prefix(8)) + "…" : id }

    static func ms(_ duration: Duration) -> Double {
        (Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15)
    }

    static func milliseconds(_ duration: Duration) -> String {
        let text = String(Int(ms(duration).rounded())) + " ms"
        return text.count >= 7 ? text : String(repeating: " ", count: 7 - text.count) + text
    }

    static func clock(_ date: Date, timeZone: TimeZone) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let c = calendar.dateComponents([.hour, .minute, .second, .nanosecond], from: date)
        return String(format: "%02d:%02d:%02d.%03d", c.hour ?? 0, c.minute ?? 0, c.second ?? 0, (c.nanosecond ?? 0) / 1_000_000)
    }
}

/// A budgeted connection at the end of the run (docs/DESIGN.md §2 rule 22), as `status` reads it from the store:
/// the requests counted in the current UTC windows against the limits, and each object's interval as the planner
/// last stretched it. The demo shows it so the budgeting is visible, not just asserted.
public struct DemoBudget: Sendable {
    public struct Interval: Sendable {
        public var object: String
        public var configured: Duration
        public var effective: Duration
        public init(object: String, configured: Duration, effective: Duration) {
            self.object = object
            self.configured = configured
            self.effective = effective
        }
    }
    public var connection: String
    public var usedToday: Int
    public var perDay: Int
    public var usedThisMinute: Int
    public var perMinute: Int?
    public var intervals: [Interval]

    public init(connection: String, usedToday: Int, perDay: Int, usedThisMinute: Int, perMinute: Int?,
                intervals: [Interval]) {
        self.connection = connection
        self.usedToday = usedToday
        self.perDay = perDay
        self.usedThisMinute = usedThisMinute
        self.perMinute = perMinute
        self.intervals = intervals
    }

    /// `demo-zoho-books: 41 requests today of 86400, 23 this minute of 60; intervals contacts 2.3s (configured 1s), …`
    public var line: String {
        let minute = perMinute.map { ", \(usedThisMinute) this minute of \($0)" } ?? ""
        let planned = intervals.map { i in
            i.object + " " + Self.format(i.effective)
                + (i.effective != i.configured ? " (configured \(Self.format(i.configured)))" : "")
        }
        return "\(connection): \(usedToday) requests today of \(perDay)\(minute); intervals "
            + (planned.isEmpty ? "not planned yet" : planned.joined(separator: ", "))
    }

    /// Tenths of a second: a stretched interval is rarely whole, and milliseconds are noise here.
    static func format(_ duration: Duration) -> String { String(format: "%.1fs", duration.seconds) }

    public var json: JSONValue {
        .object(JSONObject([
            ("connection", .string(connection)), ("used_today", .integer(Int64(usedToday))),
            ("per_day", .integer(Int64(perDay))), ("used_this_minute", .integer(Int64(usedThisMinute))),
            ("per_minute", perMinute.map { .integer(Int64($0)) } ?? .null),
            ("intervals", .object(JSONObject(intervals.map { i in
                (i.object, .object(JSONObject([("configured_s", .double(i.configured.seconds)),
                                               ("effective_s", .double(i.effective.seconds))])))
            }))),
        ]))
    }
}

/// Totals for the closing summary. Events are counted once per `webhook-id` (a redelivery is a delivery, not a
/// new event); latency percentiles use each event's first arrival.
public struct DemoSummary: Sendable {
    public private(set) var deliveries = 0
    public private(set) var verified = 0
    public private(set) var signatureFailures = 0
    public private(set) var eventsByType: [String: Int] = [:]
    public private(set) var eventsByProvider: [String: Int] = [:]
    public private(set) var eventsBySource: [String: Int] = [:]
    private var seen: Set<String> = []
    private var latenciesMS: [Double] = []
    public var duration: Duration = .zero
    /// Deliveries the store still held as pending when the daemon stopped (committed but not yet sent: the next
    /// start would send them); nil when unknown.
    public var pendingAtStop: Int?
    /// Budgeted connections at the end of the run, read from the store; empty when unknown.
    public var budgets: [DemoBudget] = []

    public init() {}

    public var events: Int { seen.count }
    public var duplicates: Int { deliveries - seen.count }

    public mutating func add(_ delivery: DemoDelivery) {
        deliveries += 1
        if delivery.verified { verified += 1 } else { signatureFailures += 1 }
        guard seen.insert(delivery.webhookID).inserted else { return }
        eventsByType[delivery.type, default: 0] += 1
        eventsByProvider[delivery.provider, default: 0] += 1
        eventsBySource["\(delivery.provider)/\(delivery.object)", default: 0] += 1
        if let latency = delivery.latency { latenciesMS.append(DemoDelivery.ms(latency)) }
    }

    /// A receipt that was not a deltahook event at all (unparseable body): counted, and a failure if unsigned.
    public mutating func addUnparsed(verified isVerified: Bool) {
        deliveries += 1
        if isVerified { verified += 1 } else { signatureFailures += 1 }
    }

    /// Nearest-rank percentile of the enqueue → receipt latencies, in milliseconds; nil without samples.
    public func latencyPercentile(_ p: Double) -> Double? {
        guard !latenciesMS.isEmpty else { return nil }
        let sorted = latenciesMS.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    /// The demo's verdict: at least one event arrived and every signature verified.
    public var succeeded: Bool { events > 0 && signatureFailures == 0 }

    public func render() -> String {
        func table(_ counts: [String: Int]) -> String {
            let width = counts.keys.map(\.count).max() ?? 0
            return counts.sorted { $0.key < $1.key }
                .map { "    " + DemoDelivery.pad($0.key, width) + "  " + String($0.value) }.joined(separator: "\n")
        }
        func ms(_ value: Double?) -> String { value.map { String(format: "%.1f ms", $0) } ?? "n/a" }
        var lines = [
            "── summary " + String(repeating: "─", count: 60),
            "  ran " + String(format: "%.1f s", DemoDelivery.ms(duration) / 1000) + "; \(events) events, \(deliveries) deliveries"
                + (duplicates > 0 ? " (\(duplicates) redelivered)" : ""),
            "  signatures verified by the receiver: \(verified)/\(deliveries); signature failures: \(signatureFailures)",
            "  delivery latency (enqueue → receipt): p50 \(ms(latencyPercentile(50))), p99 \(ms(latencyPercentile(99)))",
        ]
        if let pendingAtStop, pendingAtStop > 0 {
            lines.append("  still pending at stop: \(pendingAtStop) (kept in the outbox; the next start would deliver them)")
        }
        if !eventsByType.isEmpty { lines += ["  events by type:", table(eventsByType)] }
        if !eventsByProvider.isEmpty { lines += ["  events by provider:", table(eventsByProvider)] }
        if !eventsBySource.isEmpty { lines += ["  events by provider/object:", table(eventsBySource)] }
        if !budgets.isEmpty { lines += ["  request budgets (used vs budget, intervals as planned):"] + budgets.map { "    " + $0.line } }
        if events == 0 { lines.append("  no event arrived: the demo failed (run with --verbose to see the daemon's log)") }
        if signatureFailures > 0 { lines.append("  SIGNATURE FAILURES: a receiver would have rejected these deliveries") }
        return lines.joined(separator: "\n") + "\n"
    }

    public var json: JSONValue {
        func counts(_ map: [String: Int]) -> JSONValue {
            .object(JSONObject(map.sorted { $0.key < $1.key }.map { ($0.key, .integer(Int64($0.value))) }))
        }
        return .object(JSONObject([("summary", .object(JSONObject([
            ("duration_ms", .double(DemoDelivery.ms(duration))),
            ("events", .integer(Int64(events))), ("deliveries", .integer(Int64(deliveries))),
            ("redeliveries", .integer(Int64(duplicates))),
            ("signatures_verified", .integer(Int64(verified))),
            ("signature_failures", .integer(Int64(signatureFailures))),
            ("pending_at_stop", pendingAtStop.map { .integer(Int64($0)) } ?? .null),
            ("latency_p50_ms", latencyPercentile(50).map(JSONValue.double) ?? .null),
            ("latency_p99_ms", latencyPercentile(99).map(JSONValue.double) ?? .null),
            ("events_by_type", counts(eventsByType)), ("events_by_provider", counts(eventsByProvider)),
            ("events_by_object", counts(eventsBySource)), ("budgets", .array(budgets.map(\.json))),
            ("ok", .bool(succeeded)),
        ])))]))
    }
}
