// Registry-wide constant labels (a cluster node's `node="<id>"`, issue 14): on every sample of every family,
// histogram buckets, sums and counts included, escaped and scrubbed like any label value, the exposition valid.
import Core
import Testing

@Suite struct MetricsConstantLabelsTests {
    static func registry(_ constants: [(name: String, value: String)]) -> MetricsRegistry {
        let registry = MetricsRegistry(constantLabels: constants)
        registry.declare("deltahook_up", kind: .gauge, help: "up")
        registry.set("deltahook_up", to: 1)
        registry.declare("deltahook_polls_total", kind: .counter, help: "polls", labels: ["connection", "object"])
        registry.increment("deltahook_polls_total", labels: ["sn", "incident"])
        registry.declare("deltahook_request_seconds", kind: .histogram, help: "latency", labels: ["subscriber"],
                         buckets: [0.1, 1])
        registry.observe("deltahook_request_seconds", 0.5, labels: ["crm"])
        return registry
    }

    /// Sample lines (not comments) of a rendering.
    static func samples(_ text: String) -> [Substring] {
        text.split(separator: "\n").filter { !$0.hasPrefix("#") }
    }

    @Test("Every sample carries node, histogram buckets included; names and values otherwise unchanged")
    func everySample() {
        let text = Self.registry([("node", "node-a")]).render()
        let expected = """
            # HELP deltahook_polls_total polls
            # TYPE deltahook_polls_total counter
            deltahook_polls_total{node="node-a",connection="sn",object="incident"} 1
            # HELP deltahook_request_seconds latency
            # TYPE deltahook_request_seconds histogram
            deltahook_request_seconds_bucket{node="node-a",subscriber="crm",le="0.1"} 0
            deltahook_request_seconds_bucket{node="node-a",subscriber="crm",le="1"} 1
            deltahook_request_seconds_bucket{node="node-a",subscriber="crm",le="+Inf"} 1
            deltahook_request_seconds_sum{node="node-a",subscriber="crm"} 0.5
            deltahook_request_seconds_count{node="node-a",subscriber="crm"} 1
            # HELP deltahook_up up
            # TYPE deltahook_up gauge
            deltahook_up{node="node-a"} 1

            """
        #expect(text == expected, "\(text)")
    }

    @Test("Without constant labels the rendering is exactly as before")
    func noneIsUnchanged() {
        let text = Self.registry([]).render()
        #expect(text.contains("deltahook_up 1\n"))
        #expect(text.contains("deltahook_request_seconds_bucket{subscriber=\"crm\",le=\"+Inf\"} 1\n"))
        #expect(!text.contains("node="))
    }

    @Test("Values are escaped (backslash, quote, newline) and scrubbed")
    func escapedAndScrubbed() {
        let registry = Self.registry([("node", "a\\b\"c\nd")])
        #expect(registry.render().contains(#"deltahook_up{node="a\\b\"c\nd"} 1"#))
        let scrubber = SecretScrubber()
        scrubber.register("node-secret")
        let scrubbed = MetricsRegistry(scrubber: scrubber, constantLabels: [("node", "node-secret")])
        scrubbed.declare("deltahook_up", kind: .gauge, help: "up")
        scrubbed.set("deltahook_up", to: 1)
        #expect(scrubbed.render().contains(#"deltahook_up{node="<redacted>"} 1"#))
    }

    @Test("Set later, changed and removed: the next render follows")
    func setterFollows() {
        let registry = Self.registry([])
        registry.setConstantLabels([("node", "n1")])
        #expect(Self.samples(registry.render()).allSatisfy { $0.contains(#"{node="n1""#) })
        registry.setConstantLabels([("node", "n2"), ("cluster", "eu")])
        let lines = Self.samples(registry.render())
        #expect(lines.count == 7 && lines.allSatisfy { $0.contains(#"{node="n2",cluster="eu""#) })
        registry.setConstantLabels([])
        #expect(registry.render() == Self.registry([]).render())
    }

    @Test("Invalid, reserved and repeated names are left out; a family's own label of that name wins")
    func keptValid() {
        let registry = MetricsRegistry(constantLabels: [("node", "a"), ("node", "b"), ("le", "x"), ("__name__", "y"),
                                                         ("quantile", "z"), ("9lives", "w"), ("bad-name", "v"), ("", "u")])
        #expect(registry.constantLabels.map(\.name) == ["node"] && registry.constantLabels.map(\.value) == ["a"])
        registry.declare("deltahook_per_node", kind: .gauge, help: "own node label", labels: ["node"])
        registry.set("deltahook_per_node", to: 2, labels: ["other"])
        let text = registry.render()
        #expect(text.contains(#"deltahook_per_node{node="other"} 2"#), "\(text)")
        #expect(MetricsRegistry.isValidLabelName("_ok9") && !MetricsRegistry.isValidLabelName("ü"))
    }
}
