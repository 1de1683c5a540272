// The request-budget gauges the daemon's metrics refresh derives from the store (docs/DESIGN.md §2 rule 22): every
// node shows the cluster's count, the limit, the projection and each object's effective interval.
import Config
import Core
@testable import Daemon
import Foundation
import Logging
import Store
import TestSupport
import Testing

@Suite("request budget metrics")
struct BudgetMetricsTests {
    @Test("rule 22: deltahook_budget_* gauges come from the stored plan and today's shared count")
    func gaugesFromTheStore() async throws {
        let directory = try TemporaryDirectory(prefix: "budget-metrics")
        defer { directory.remove() }
        let config = try ConfigLoader.load(data: Data("""
            {"state_directory": "\(directory.path)",
             "connections": [{"id": "zoho", "provider": "github", "auth": {"type": "token", "token": {"env": "T"}},
                              "budget": {"per_day": 1000},
                              "objects": [{"name": "invoices", "repository": "o/r"}]}]}
            """.utf8), environment: ConfigEnvironment(variables: ["T": "t"]))
        let store = try StateStore(path: directory.file(StateStore.fileName))
        let now = Date()
        for _ in 0..<7 { _ = try store.admitRequest(connection: "zoho", limits: RequestBudgetLimits(perDay: 1000), at: now) }
        try store.saveBudgetPlans([BudgetPlanRow(connection: "zoho", object: "invoices", configuredInterval: .seconds(60),
                                                 effectiveInterval: .seconds(288), costPerCycle: 1, perDay: 1000,
                                                 updatedAt: now)])
        let registry = MetricsRegistry()
        DaemonMetric.declare(in: registry, version: "test")
        let service = MetricsService(registry: registry, store: store, state: DaemonState(config: config), textfile: nil,
                                     interval: .seconds(60), notifier: SystemdNotifier(environment: [:]),
                                     logger: Logger(level: .critical, sink: MemoryLogSink()))
        try await service.refresh()
        let used = try #require(registry.value(DaemonMetric.budgetUsed, labels: ["zoho"]))
        #expect(used == 7 || used == 0, "0 only when the UTC day rolled during the test")
        #expect(registry.value(DaemonMetric.budgetLimit, labels: ["zoho"]) == 1000)
        #expect(registry.value(DaemonMetric.budgetInterval, labels: ["zoho", "invoices"]) == 288)
        #expect((registry.value(DaemonMetric.budgetProjected, labels: ["zoho"]) ?? -1) >= used)
        let text = registry.render()
        for name in ["deltahook_budget_requests_used", "deltahook_budget_requests_limit",
                     "deltahook_budget_effective_interval_seconds"] {
            #expect(text.contains(name), "\(name) missing")
        }
    }
}
