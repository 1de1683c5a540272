// The engine's Prometheus families (docs/DESIGN.md §8). Labels are connection/object/type/outcome only — never record
// ids — so cardinality is bounded by the configuration.
import Core
import Foundation

struct EngineMetrics: Sendable {
    static let polls = "deltahook_polls_total"
    static let records = "deltahook_records_read_total"
    static let events = "deltahook_events_total"
    static let cursorLag = "deltahook_cursor_lag_seconds"
    static let lastSuccess = "deltahook_last_success_timestamp_seconds"
    static let futureRecords = "deltahook_future_records_total"
    static let scansCapped = "deltahook_scans_capped_total"
    static let pageShrinks = "deltahook_page_size_halved_total"
    static let quarantined = "deltahook_quarantined_records_total"
    static let sweepsHeld = "deltahook_sweeps_held_total"

    /// Poll outcomes, the values of the `outcome` label.
    enum Outcome: String { case success, notModified = "not_modified", error, rateLimited = "rate_limited" }

    /// One family of the table below. Every engine family is per object; `extraLabel` names a third label.
    private struct Family {
        let name: String
        let kind: MetricsRegistry.Kind
        let help: String
        var extraLabel: String? = nil
    }

    /// The families, declared in one loop so that a new metric is one row here plus one recording method.
    private static let families: [Family] = [
        Family(name: polls, kind: .counter, help: "Poll cycles by outcome.", extraLabel: "outcome"),
        Family(name: records, kind: .counter, help: "Records read from providers by delta scans."),
        Family(name: events, kind: .counter, help: "Change events committed to the outbox.", extraLabel: "type"),
        Family(name: cursorLag, kind: .gauge,
               help: "Seconds between now and the newest source timestamp committed (the watermark)."),
        Family(name: lastSuccess, kind: .gauge, help: "Unix time of the last successful poll cycle."),
        Family(name: futureRecords, kind: .counter,
               help: "Changed records dated later than scan start + max_clock_skew (left out of the watermark)."),
        Family(name: scansCapped, kind: .counter,
               help: "Delta scans stopped at max_pages_per_scan (resumed by the next cycle)."),
        Family(name: pageShrinks, kind: .counter,
               help: "Pages over max_response_bytes that halved the page size for the rest of a scan."),
        Family(name: quarantined, kind: .counter,
               help: "Records the adapter rejected that entered quarantine (first sightings only)."),
        Family(name: sweepsHeld, kind: .counter,
               help: "Reconciliation sweeps the mass-delete guard held for an operator."),
    ]

    let registry: MetricsRegistry?

    init(_ registry: MetricsRegistry?) {
        self.registry = registry
        guard let registry else { return }
        for family in Self.families {
            registry.declare(family.name, kind: family.kind, help: family.help,
                             labels: ["connection", "object"] + (family.extraLabel.map { [$0] } ?? []))
        }
    }

    /// Adds `count` to the object's counter `name` (with the family's extra label value, if any). A zero count
    /// records nothing, so an idle object shows no sample rather than a 0 that was never counted.
    private func add(_ name: String, _ descriptor: ObjectDescriptor, _ count: Int = 1, extra: String? = nil) {
        guard count > 0 else { return }
        registry?.increment(name, by: Double(count),
                            labels: [descriptor.connection, descriptor.object] + (extra.map { [$0] } ?? []))
    }

    func quarantined(_ descriptor: ObjectDescriptor, _ count: Int) { add(Self.quarantined, descriptor, count) }
    func sweepHeld(_ descriptor: ObjectDescriptor) { add(Self.sweepsHeld, descriptor) }
    func futureRecords(_ descriptor: ObjectDescriptor, _ count: Int) { add(Self.futureRecords, descriptor, count) }
    func scanCapped(_ descriptor: ObjectDescriptor) { add(Self.scansCapped, descriptor) }
    func pageSizeHalved(_ descriptor: ObjectDescriptor) { add(Self.pageShrinks, descriptor) }
    func cycle(_ descriptor: ObjectDescriptor, outcome: Outcome) {
        add(Self.polls, descriptor, extra: outcome.rawValue)
    }
    func recordsRead(_ descriptor: ObjectDescriptor, _ count: Int) { add(Self.records, descriptor, count) }
    func eventCommitted(_ descriptor: ObjectDescriptor, type: String) { add(Self.events, descriptor, extra: type) }

    func success(_ descriptor: ObjectDescriptor, at now: Date, watermark: Date?) {
        guard let registry else { return }
        let labels = [descriptor.connection, descriptor.object]
        registry.set(Self.lastSuccess, to: now.timeIntervalSince1970.rounded(.down), labels: labels)
        if let watermark {
            registry.set(Self.cursorLag, to: max(0, now.timeIntervalSince(watermark)), labels: labels)
        }
    }
}

/// The request-budget gauges (docs/DESIGN.md §2 rule 22), set from every plan: today's shared count and the day's
/// limit per connection, and each object's effective interval.
struct BudgetMetrics: Sendable {
    static let used = "deltahook_budget_requests_used"
    static let limit = "deltahook_budget_requests_limit"
    static let projected = "deltahook_budget_requests_projected"
    static let interval = "deltahook_budget_effective_interval_seconds"

    let registry: MetricsRegistry?

    init(_ registry: MetricsRegistry?) {
        self.registry = registry
        guard let registry else { return }
        registry.declare(Self.used, kind: .gauge, help: "Requests the connection sent today (UTC day, all nodes).",
                         labels: ["connection"])
        registry.declare(Self.limit, kind: .gauge, help: "The connection's budget.per_day.", labels: ["connection"])
        registry.declare(Self.projected, kind: .gauge,
                         help: "Requests the connection will have sent by the day's end at the current plan.",
                         labels: ["connection"])
        registry.declare(Self.interval, kind: .gauge,
                         help: "Seconds between cycles of the object under its connection's request budget.",
                         labels: ["connection", "object"])
    }

    func record(_ report: BudgetPlanReport) {
        guard let registry else { return }
        registry.set(Self.used, to: Double(report.usedToday), labels: [report.connection])
        registry.set(Self.limit, to: Double(report.limits.perDay), labels: [report.connection])
        registry.set(Self.projected, to: report.plan.projectedToday.rounded(), labels: [report.connection])
        for object in report.objects {
            let seconds = (report.plan.effective[object.object] ?? object.configured).seconds
            registry.set(Self.interval, to: seconds, labels: [report.connection, object.object])
        }
    }
}
