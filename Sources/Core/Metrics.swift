// In-process metrics with Prometheus text exposition 0.0.4 (docs/DESIGN.md §8): counters, gauges and histograms
// with low-cardinality labels (connection, object, subscriber, outcome — never record ids). No sample
// timestamps: node_exporter's textfile collector drops a whole file that has any. Registry-wide constant labels
// (a cluster node's `node="<id>"`) go on every sample, so the series of N daemons sharing one database stay apart
// when one Prometheus scrapes them all.
import Synchronization

/// A thread-safe registry. Components record into it; the daemon renders it to `/metrics` and to the
/// textfile `deltahook.prom`.
public final class MetricsRegistry: Sendable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }

    struct Family {
        var kind: Kind
        var help: String
        var buckets: [Double] = []
        var samples: [[String]: Double] = [:]               // counters and gauges, keyed by label values
        var histograms: [[String]: Histogram] = [:]
        var labelNames: [String]
    }

    struct Histogram {
        var counts: [UInt64]
        var sum: Double = 0
        var count: UInt64 = 0
    }

    private let families = Mutex<[String: Family]>([:])
    /// Label values pass it when rendered (docs/DESIGN.md §1): labels are ids from the config, but an exit is an
    /// exit, and one scrubber at every exit is the rule. nil in unit tests.
    private let scrubber: SecretScrubber?
    /// Rendered first on every sample of every family, histogram buckets included.
    private let constants = Mutex<[(name: String, value: String)]>([])

    /// - Parameter constantLabels: labels every sample carries (``setConstantLabels(_:)``).
    public init(scrubber: SecretScrubber? = nil, constantLabels: [(name: String, value: String)] = []) {
        self.scrubber = scrubber
        setConstantLabels(constantLabels)
    }

    /// Labels put on every sample from the next render on, e.g. `[("node", nodeID)]` for a cluster node; `[]`
    /// removes them. Values are escaped (and scrubbed) like every label value. Kept valid for the exposition
    /// format: names that are not Prometheus label names (`[a-zA-Z_][a-zA-Z0-9_]*`), reserved ones (`__…`, `le`,
    /// `quantile`) and repeated ones (the first wins) are left out; a family that has a label of the same name
    /// keeps its own and omits the constant.
    public func setConstantLabels(_ labels: [(name: String, value: String)]) {
        var seen = Set<String>()
        let valid = labels.filter { label in
            Self.isValidLabelName(label.name) && !label.name.hasPrefix("__") && label.name != "le"
                && label.name != "quantile" && seen.insert(label.name).inserted
        }
        constants.withLock { $0 = valid }
    }

    /// The labels every sample carries.
    public var constantLabels: [(name: String, value: String)] { constants.withLock { $0 } }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, the Prometheus label-name grammar.
    public static func isValidLabelName(_ name: String) -> Bool {
        guard let first = name.utf8.first else { return false }
        func letter(_ c: UInt8) -> Bool { (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 }
        return letter(first) && name.utf8.allSatisfy { letter($0) || ($0 >= 48 && $0 <= 57) }
    }

    /// Declares a metric family; re-declaring with the same shape is harmless.
    public func declare(_ name: String, kind: Kind, help: String, labels: [String] = [],
                        buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]) {
        families.withLock { map in
            if map[name] == nil {
                map[name] = Family(kind: kind, help: help, buckets: kind == .histogram ? buckets.sorted() : [],
                                   labelNames: labels)
            }
        }
    }

    /// Adds `value` to a counter (or gauge).
    public func increment(_ name: String, by value: Double = 1, labels: [String] = []) {
        families.withLock { map in map[name]?.samples[labels, default: 0] += value }
    }

    /// Sets a gauge.
    public func set(_ name: String, to value: Double, labels: [String] = []) {
        families.withLock { map in map[name]?.samples[labels] = value }
    }

    /// Removes every sample of a family (gauges recomputed from scratch, e.g. per-object lag after reload).
    public func reset(_ name: String) {
        families.withLock { map in
            map[name]?.samples.removeAll()
            map[name]?.histograms.removeAll()
        }
    }

    /// Replaces every sample of a gauge family at once, so a scrape never sees it half recomputed (gauges
    /// derived from the store: backlog per subscriber, lag per object; rows of removed objects disappear).
    public func replace(_ name: String, with samples: [(labels: [String], value: Double)]) {
        families.withLock { map in
            guard map[name] != nil else { return }
            var fresh: [[String]: Double] = [:]
            for sample in samples { fresh[sample.labels] = sample.value }
            map[name]?.samples = fresh
        }
    }

    /// Records one observation into a histogram.
    public func observe(_ name: String, _ value: Double, labels: [String] = []) {
        families.withLock { map in
            guard var family = map[name], family.kind == .histogram else { return }
            var histogram = family.histograms[labels] ?? Histogram(counts: Array(repeating: 0, count: family.buckets.count))
            for (i, bound) in family.buckets.enumerated() where value <= bound { histogram.counts[i] += 1 }
            histogram.sum += value
            histogram.count += 1
            family.histograms[labels] = histogram
            map[name] = family
        }
    }

    /// Current value of a counter/gauge sample (tests, status).
    public func value(_ name: String, labels: [String] = []) -> Double? {
        families.withLock { $0[name]?.samples[labels] }
    }

    /// The text exposition format, families sorted by name, ending with a newline.
    public func render() -> String {
        let snapshot = families.withLock { $0 }
        let constants = constantLabels
        let scrubber = self.scrubber
        var out = ""
        for name in snapshot.keys.sorted() {
            guard let family = snapshot[name] else { continue }
            let shared = constants.filter { !family.labelNames.contains($0.name) }
            func labelText(_ names: [String], _ values: [String]) -> String {
                let all = shared.map(\.value) + values
                return Self.labelText(shared.map(\.name) + names,
                                      scrubber.map { scrubber in all.map { scrubber.scrub($0) } } ?? all)
            }
            out += "# HELP \(name) \(Self.escapeHelp(family.help))\n"
            out += "# TYPE \(name) \(family.kind.rawValue)\n"
            switch family.kind {
            case .counter, .gauge:
                for labels in family.samples.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                    out += "\(name)\(labelText(family.labelNames, labels)) \(Self.number(family.samples[labels] ?? 0))\n"
                }
            case .histogram:
                for labels in family.histograms.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                    guard let h = family.histograms[labels] else { continue }
                    for (i, bound) in family.buckets.enumerated() {
                        let le = labelText(family.labelNames + ["le"], labels + [Self.number(bound)])
                        out += "\(name)_bucket\(le) \(h.counts[i])\n"
                    }
                    out += "\(name)_bucket\(labelText(family.labelNames + ["le"], labels + ["+Inf"])) \(h.count)\n"
                    out += "\(name)_sum\(labelText(family.labelNames, labels)) \(Self.number(h.sum))\n"
                    out += "\(name)_count\(labelText(family.labelNames, labels)) \(h.count)\n"
                }
            }
        }
        return out
    }

    static func labelText(_ names: [String], _ values: [String]) -> String {
        guard !names.isEmpty else { return "" }
        let pairs = zip(names, values).map { "\($0)=\"\(escapeLabel($1))\"" }
        return "{" + pairs.joined(separator: ",") + "}"
    }

    static func escapeLabel(_ s: String) -> String {
        s.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"").replacingAll("\n", with: "\\n")
    }

    static func escapeHelp(_ s: String) -> String {
        s.replacingAll("\\", with: "\\\\").replacingAll("\n", with: "\\n")
    }

    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value.rounded() == value && abs(value) < 1e15 { return String(Int64(value)) }
        return value.description
    }
}

extension String {
    /// Replaces every occurrence of `target` (no Foundation dependency).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty, contains(target) else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
