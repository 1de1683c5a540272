// Counts every request a connection's adapters send against the connection's `budget` (docs/DESIGN.md §2 rule 22).
// It wraps the transport rather than `ProviderHTTP.send` because the transport is the one point every request
// passes — data pages, single-record reads, sweeps and token refreshes alike, whichever helper built them — and
// every adapter factory gets it from `ProviderContext`, so a new provider is counted without knowing about it.
public import Core
public import HTTPClient

/// An ``HTTPTransport`` that asks the connection's ``RequestBudget`` before each request and refuses it,
/// unsent, when the day's or the minute's budget is spent.
public struct BudgetedTransport: HTTPTransport {
    public let inner: any HTTPTransport
    public let budget: any RequestBudget
    public let connection: String
    public let limits: RequestBudgetLimits
    /// Response statuses the provider does not charge (GitHub's 304 Not Modified to a conditional request):
    /// their request is given back to the budget and counted as free in the cycle's tally.
    public let uncharged: Set<Int>

    public init(inner: any HTTPTransport, budget: any RequestBudget, connection: String, limits: RequestBudgetLimits,
                uncharged: Set<Int> = []) {
        self.inner = inner
        self.budget = budget
        self.connection = connection
        self.limits = limits
        self.uncharged = uncharged
    }

    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        // Throws ProviderError.rateLimited when a window is spent; nothing is sent then.
        let windows = try await budget.admit(connection: connection, limits: limits)
        let response: HTTPResponse
        do {
            response = try await inner.send(request)
        } catch {
            // The request may have reached the provider before the failure; it stays counted.
            RequestMeter.current?.count(free: false)
            throw error
        }
        let free = uncharged.contains(response.status)
        if free { await budget.refund(connection: connection, windows: windows) }
        RequestMeter.current?.count(free: free)
        return response
    }
}
