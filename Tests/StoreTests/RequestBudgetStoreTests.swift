// Request budgets in the store (docs/DESIGN.md §2 rule 22), on both backends: the day's and the minute's counts
// are shared by every node on one database, a spent window refuses until it rolls, a free (304) request is given
// back, and the plans the scheduler writes are what `status` reads.
import Foundation
import Testing
import Core
@testable import Store
import TestSupport

/// 2026-03-02 10:00:00 UTC: a day and a minute start.
private let dayStart = Date(timeIntervalSince1970: 1_772_445_600)

@Suite("Request budgets: the shared counter (rule 22)")
struct RequestBudgetStoreTests {
    @Test("rule 22: two nodes together never exceed per_day; the next UTC day starts from zero", arguments: StoreBackend.all)
    func dayLimitAcrossNodes(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let stores = try backend.makeStores(dir, count: 2)
        let limits = RequestBudgetLimits(perDay: 5)
        var admitted = 0
        var refusals: [RequestAdmission] = []
        for i in 0..<8 {
            // Alternate nodes, a minute apart, so only the day's limit binds.
            let at = dayStart.addingTimeInterval(Double(i) * 60)
            switch try stores[i % 2].admitRequest(connection: "zoho", limits: limits, at: at) {
            case .admitted: admitted += 1
            case let refused: refusals.append(refused)
            }
        }
        #expect(admitted == 5)
        let nextDay = Date(timeIntervalSince1970: 1_772_496_000)  // 2026-03-03 00:00 UTC
        #expect(refusals == Array(repeating: .refused(until: nextDay, minute: false, used: 5), count: 3))
        #expect(try stores[1].requestUsage(connection: "zoho", at: dayStart).usedToday == 5)
        #expect(try stores[0].requestUsage(connection: "other", at: dayStart).usedToday == 0)
        // The day rolls: counting starts again.
        guard case .admitted = try stores[0].admitRequest(connection: "zoho", limits: limits, at: nextDay) else {
            Issue.record("a new UTC day must admit again")
            return
        }
        #expect(try stores[1].requestUsage(connection: "zoho", at: nextDay) == RequestBudgetUsage(usedToday: 1, usedThisMinute: 1))
    }

    @Test("rule 22: per_minute refuses until the minute rolls; a refund gives a free request back", arguments: StoreBackend.all)
    func minuteLimitAndRefund(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let limits = RequestBudgetLimits(perDay: 100, perMinute: 2)
        let at = dayStart.addingTimeInterval(5)
        guard case .admitted(let windows) = try store.admitRequest(connection: "c", limits: limits, at: at) else {
            Issue.record("the first request must be admitted")
            return
        }
        #expect(windows == RequestBudgetWindows(dayStart: 1_772_409_600, minuteStart: 1_772_445_600))
        _ = try store.admitRequest(connection: "c", limits: limits, at: at)
        #expect(try store.admitRequest(connection: "c", limits: limits, at: at)
            == .refused(until: dayStart.addingTimeInterval(60), minute: true, used: 2))
        // A 304 the provider did not charge is given back, in the windows it was counted in.
        try store.refundRequest(connection: "c", windows: windows)
        #expect(try store.requestUsage(connection: "c", at: at) == RequestBudgetUsage(usedToday: 1, usedThisMinute: 1))
        guard case .admitted = try store.admitRequest(connection: "c", limits: limits, at: at) else {
            Issue.record("a refunded request frees its place")
            return
        }
        // The next minute admits again and the day keeps counting.
        guard case .admitted = try store.admitRequest(connection: "c", limits: limits, at: at.addingTimeInterval(60)) else {
            Issue.record("a new minute must admit again")
            return
        }
        #expect(try store.requestUsage(connection: "c", at: at.addingTimeInterval(60))
            == RequestBudgetUsage(usedToday: 3, usedThisMinute: 1))
    }

    @Test("rule 22: the scheduler's plans are stored per object and replaced", arguments: StoreBackend.all)
    func plansRoundTrip(_ backend: StoreBackend) throws {
        let dir = try TempDir()
        let store = try backend.makeStore(dir)
        let plan = BudgetPlanRow(connection: "zoho", object: "invoices", configuredInterval: .seconds(60),
                                 effectiveInterval: .seconds(288), costPerCycle: 1.5, perDay: 1000, updatedAt: dayStart)
        try store.saveBudgetPlans([plan])
        var changed = plan
        changed.effectiveInterval = .seconds(60)
        changed.updatedAt = dayStart.addingTimeInterval(3600)
        try store.saveBudgetPlans([changed])
        #expect(try store.budgetPlans() == [changed])
        var other = plan
        other.connection = "gh"
        try store.saveBudgetPlans([other])
        #expect(try store.budgetPlans(connection: "zoho") == [changed])
        #expect(try store.budgetPlans(connection: "gh") == [other])
    }
}
