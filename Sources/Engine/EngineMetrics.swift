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

    let registry: MetricsRegistry?

    init(_ registry: MetricsRegistry?) {
        self.registry = registry
        guard let registry else { return }
        registry.declare(Self.polls, kind: .counter, help: "Poll cycles by outcome.",
                         labels: ["connection", "object", "outcome"])
        registry.declare(Self.records, kind: .counter, help: "Records read from providers by delta scans.",
                         labels: ["connection", "object"])
        registry.declare(Self.events, kind: .counter, help: "Change events committed to the outbox.",
                         labels: ["connection", "object", "type"])
        registry.declare(Self.cursorLag, kind: .gauge,
                         help: "Seconds between now and the newest source timestamp committed (the watermark).",
                         labels: ["connection", "object"])
        registry.declare(Self.lastSuccess, kind: .gauge, help: "Unix time of the last successful poll cycle.",
                         labels: ["connection", "object"])
        registry.declare(Self.futureRecords, kind: .counter,
                         help: "Changed records dated later than scan start + max_clock_skew (left out of the watermark).",
                         labels: ["connection", "object"])
        registry.declare(Self.scansCapped, kind: .counter,
                         help: "Delta scans stopped at max_pages_per_scan (resumed by the next cycle).",
                         labels: ["connection", "object"])
        registry.declare(Self.pageShrinks, kind: .counter,
                         help: "Pages over max_response_bytes that halved the page size for the rest of a scan.",
                         labels: ["connection", "object"])
        registry.declare(Self.quarantined, kind: .counter,
                         help: "Records the adapter rejected that entered quarantine (first sightings only).",
                         labels: ["connection", "object"])
        registry.declare(Self.sweepsHeld, kind: .counter,
                         help: "Reconciliation sweeps the mass-delete guard held for an operator.",
                         labels: ["connection", "object"])
    }

    func quarantined(_ descriptor: ObjectDescriptor, _ count: Int) {
        guard count > 0 else { return }
        registry?.increment(Self.quarantined, by: Double(count), labels: [descriptor.connection, descriptor.object])
    }

    func sweepHeld(_ descriptor: ObjectDescriptor) {
        registry?.increment(Self.sweepsHeld, labels: [descriptor.connection, descriptor.object])
    }

    func futureRecords(_ descriptor: ObjectDescriptor, _ count: Int) {
        guard count > 0 else { return }
        registry?.increment(Self.futureRecords, by: Double(count), labels: [descriptor.connection, descriptor.object])
    }

    func scanCapped(_ descriptor: ObjectDescriptor) {
        registry?.increment(Self.scansCapped, labels: [descriptor.connection, descriptor.object])
    }

    func pageSizeHalved(_ descriptor: ObjectDescriptor) {
        registry?.increment(Self.pageShrinks, labels: [descriptor.connection, descriptor.object])
    }

    func cycle(_ descriptor: ObjectDescriptor, outcome: Outcome) {
        registry?.increment(Self.polls, labels: [descriptor.connection, descriptor.object, outcome.rawValue])
    }

    func recordsRead(_ descriptor: ObjectDescriptor, _ count: Int) {
        guard count > 0 else { return }
        registry?.increment(Self.records, by: Double(count), labels: [descriptor.connection, descriptor.object])
    }

    func eventCommitted(_ descriptor: ObjectDescriptor, type: String) {
        registry?.increment(Self.events, labels: [descriptor.connection, descriptor.object, type])
    }

    func success(_ descriptor: ObjectDescriptor, at now: Date, watermark: Date?) {
        guard let registry else { return }
        let labels = [descriptor.connection, descriptor.object]
        registry.set(Self.lastSuccess, to: now.timeIntervalSince1970.rounded(.down), labels: labels)
        if let watermark {
            registry.set(Self.cursorLag, to: max(0, now.timeIntervalSince(watermark)), labels: labels)
        }
    }
}
