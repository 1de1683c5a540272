// What `deltahook status`, the STATUS= line and the store-derived metrics show: one read of the store, shaped
// per object and per subscriber. It reads ids, times, counts and error texts only — never config secrets, and
// errors stored by the engine and dispatcher are secret-free by contract.
public import Core
public import Foundation
public import Store

public struct StatusReport: Sendable {
    /// One polled (connection, object).
    public struct ObjectRow: Sendable {
        public var connection: String
        public var object: String
        public var lastPollAt: Date?
        public var lastSuccessAt: Date?
        public var lastError: String?
        public var lastErrorAt: Date?
        public var eventsTotal: Int64
        /// Oldest watermark over the object's partitions (the cursor everything below is durably diffed).
        public var watermark: Date?
        /// Per partition, for objects with several (GitHub repositories, NetSuite windows).
        public var partitions: [(partition: String, watermark: Date?)]
        /// now − watermark; nil before the first commit.
        public var lagSeconds: Double?
        /// False for rows the store knows but the current config no longer lists.
        public var configured: Bool
        /// Records in quarantine (docs/DESIGN.md §2 rule 16): the adapter rejected them; `quarantine list` shows them.
        public var quarantined: Int = 0
        /// A sweep the mass-delete guard held (rule 17), waiting for `reconcile --apply-held`.
        public var heldSweep: HeldSweep?
        /// Who polls it (docs/DESIGN.md §2 rule 19): the poll lease row, expired or not; nil before any node took
        /// it. Shown so an operator of several daemons sees which one to look at for this object.
        public var lease: PollLeaseStatus? = nil
    }

    /// One subscriber.
    public struct SubscriberRow: Sendable {
        public var id: String
        /// active, paused or disabled.
        public var state: String
        public var reason: String?
        public var failingSince: Date?
        public var pending: Int
        public var failed: Int
        public var oldestPendingAgeSeconds: Double?
        public var configured: Bool
        /// Deliveries left pending when the subscriber left the config (docs/DESIGN.md §5); never sent.
        public var orphaned: Int = 0
    }

    /// One connection with a request budget (docs/DESIGN.md §2 rule 22), from the scheduler's latest stored plan
    /// and today's shared count.
    public struct BudgetRow: Sendable {
        public struct Object: Sendable {
            public var object: String
            public var configured: Duration
            public var effective: Duration
            /// Requests one cycle is charged, on average.
            public var costPerCycle: Double
        }
        public var connection: String
        public var perDay: Int
        public var usedToday: Int
        /// Requests by the end of the UTC day at the current intervals and costs.
        public var projectedToday: Int
        /// When `perDay` is reached at the current rate; nil: not today.
        public var runsOutAt: Date?
        public var objects: [Object]

        /// Projects today's use from the plan's intervals and costs: used + rate × the rest of the UTC day.
        public static func make(connection: String, plans: [BudgetPlanRow], usedToday: Int, now: Date) -> BudgetRow {
            let objects = plans.map { Object(object: $0.object, configured: $0.configuredInterval,
                                             effective: $0.effectiveInterval, costPerCycle: $0.costPerCycle) }
            let perDay = plans.max { $0.updatedAt < $1.updatedAt }?.perDay ?? 0
            let rate = objects.reduce(0.0) { $0 + max($1.costPerCycle, 0) / max($1.effective.seconds, 0.001) }
            let left = RequestBudgetWindows.secondsLeftInDay(at: now)
            let projected = Double(usedToday) + rate * left
            var runsOut: Date?
            if projected > Double(perDay), rate > 0 {
                runsOut = now.addingTimeInterval(max(0, Double(perDay - usedToday)) / rate)
            }
            return BudgetRow(connection: connection, perDay: perDay, usedToday: usedToday,
                             projectedToday: Int(min(projected.rounded(), 1e15)), runsOutAt: runsOut, objects: objects)
        }
    }

    public var generatedAt: Date
    public var objects: [ObjectRow]
    public var subscribers: [SubscriberRow]
    public var pendingTotal: Int
    /// The store file's size and oldest rows (docs/DESIGN.md §6 `retention`); nil when not collected.
    public var storage: StorageSummary? = nil
    /// The daemons that heartbeat into this store (a SQLite daemon is a cluster of one), by id.
    public var nodes: [NodeStatus] = []
    /// Connections with a request budget that the scheduler has planned, by connection.
    public var budgets: [BudgetRow] = []

    /// Connections whose latest poll of any object failed.
    public var failingConnections: Set<String> {
        Set(objects.filter { $0.configured && $0.lastError != nil }.map(\.connection))
    }

    /// Subscribers that are paused, disabled or in a run of failures.
    public var failingSubscribers: [String] {
        subscribers.filter { $0.configured && ($0.state != "active" || $0.failingSince != nil) }.map(\.id)
    }

    /// Reads everything in one go. `subscribers` and `objects` are the configured ones (they are listed even
    /// before the first poll); rows only the store knows (removed from the config) are added, marked. A node is
    /// alive when its last heartbeat is younger than `aliveWithin` (the configured lease ttl: past it, its leases
    /// are taken over).
    public static func collect(store: any StateStoring, subscribers: [String], objects: [(String, String)], now: Date,
                               aliveWithin: Duration = .seconds(30)) throws -> StatusReport
    {
        let polls = try store.pollStatuses()
        var leases: [ObjectKey: PollLeaseStatus] = [:]
        for lease in try store.pollLeases() { leases[ObjectKey(connection: lease.connection, object: lease.object)] = lease }
        var quarantined: [ObjectKey: Int] = [:]
        for row in try store.quarantineCounts() {
            quarantined[ObjectKey(connection: row.connection, object: row.object)] = row.count
        }
        var held: [ObjectKey: HeldSweep] = [:]
        for sweep in try store.heldSweeps() { held[ObjectKey(connection: sweep.connection, object: sweep.object)] = sweep }
        var objectKeys = objects.map { ObjectKey(connection: $0.0, object: $0.1) }
        let configuredObjects = Set(objectKeys)
        var listed = configuredObjects
        let known = polls.map { ObjectKey(connection: $0.connection, object: $0.object) }
            + quarantined.keys.sorted { ($0.connection, $0.object) < ($1.connection, $1.object) }
            + held.keys.sorted { ($0.connection, $0.object) < ($1.connection, $1.object) }
        for key in known where listed.insert(key).inserted { objectKeys.append(key) }
        var objectRows: [ObjectRow] = []
        for key in objectKeys {
            let poll = polls.first { $0.connection == key.connection && $0.object == key.object }
            let cursors = try store.cursors(connection: key.connection, object: key.object)
            let watermarks = cursors.compactMap(\.watermark)
            let oldest = watermarks.min()
            objectRows.append(ObjectRow(
                connection: key.connection, object: key.object, lastPollAt: poll?.lastPollAt,
                lastSuccessAt: poll?.lastSuccessAt, lastError: poll?.lastError, lastErrorAt: poll?.lastErrorAt,
                eventsTotal: poll?.eventsTotal ?? 0, watermark: oldest,
                partitions: cursors.map { ($0.partition, $0.watermark) },
                lagSeconds: oldest.map { max(0, now.timeIntervalSince($0)) },
                configured: configuredObjects.contains(key), quarantined: quarantined[key] ?? 0,
                heldSweep: held[key], lease: leases[key]))
        }

        let stored = try store.subscribers()
        var ids = subscribers
        for s in stored where !ids.contains(s.id) { ids.append(s.id) }
        // Subscribers removed from the config keep their pending and failed deliveries; list them too. The store
        // has no "distinct subscribers" query, so this looks at the newest 1000 of each (bounded cost).
        for state in [DeliveryState.pending, .failed, .orphaned] {
            for delivery in try store.deliveries(subscriber: nil, state: state, beforeID: nil, limit: 1000) where !ids.contains(delivery.subscriber) {
                ids.append(delivery.subscriber)
            }
        }
        var subscriberRows: [SubscriberRow] = []
        for id in ids {
            let status = stored.first { $0.id == id }
            let backlog = try store.backlog(subscriber: id)
            subscriberRows.append(SubscriberRow(
                id: id, state: status?.state.rawValue ?? SubscriberState.active.rawValue, reason: status?.reason,
                failingSince: status?.failingSince, pending: backlog.pending, failed: backlog.failed,
                oldestPendingAgeSeconds: backlog.oldestPendingCreatedAt.map { max(0, now.timeIntervalSince($0)) },
                configured: subscribers.contains(id), orphaned: backlog.orphaned))
        }
        // Budgets of the configured connections (all stored ones when no config lists objects).
        let configuredConnections = Set(objects.map(\.0))
        let plans = Dictionary(grouping: try store.budgetPlans(), by: \.connection)
        var budgets: [BudgetRow] = []
        for (connection, rows) in plans.sorted(by: { $0.key < $1.key })
        where configuredConnections.isEmpty || configuredConnections.contains(connection) {
            let configuredRows = rows.filter {
                configuredObjects.isEmpty || configuredObjects.contains(ObjectKey(connection: connection, object: $0.object))
            }
            guard !configuredRows.isEmpty else { continue }
            let used = try store.requestUsage(connection: connection, at: now).usedToday
            budgets.append(BudgetRow.make(connection: connection, plans: configuredRows, usedToday: used, now: now))
        }
        return StatusReport(generatedAt: now, objects: objectRows, subscribers: subscriberRows,
                            pendingTotal: try store.pendingCount(), storage: try store.storageSummary(),
                            nodes: try store.nodes(aliveWithin: aliveWithin), budgets: budgets)
    }

    private struct ObjectKey: Hashable {
        var connection: String
        var object: String
    }

    /// The one-line STATUS= summary, e.g. "3 connections, 2 subscribers, 0 failing, backlog 12".
    public func summaryLine(connections: Int, subscribers: Int) -> String {
        let failing = failingConnections.count + failingSubscribers.count
        return "\(connections) connections, \(subscribers) subscribers, \(failing) failing, backlog \(pendingTotal)"
    }

    // MARK: - Rendering

    /// `status --json`.
    public func json(daemon: JSONValue) -> JSONValue {
        func time(_ date: Date?) -> JSONValue { date.map { .string(Timestamps.rfc3339($0)) } ?? .null }
        func number(_ value: Double?) -> JSONValue { value.map { .double(($0 * 1000).rounded() / 1000) } ?? .null }
        let objectValues: [JSONValue] = objects.map { o in
            [
                "connection": .string(o.connection), "object": .string(o.object), "configured": .bool(o.configured),
                "last_poll_at": time(o.lastPollAt), "last_success_at": time(o.lastSuccessAt),
                "last_error": o.lastError.map { .string($0) } ?? .null, "last_error_at": time(o.lastErrorAt),
                "cursor": time(o.watermark), "lag_seconds": number(o.lagSeconds),
                "events_total": .integer(o.eventsTotal),
                "partitions": .array(o.partitions.map { p in
                    ["partition": .string(p.partition), "cursor": time(p.watermark)]
                }),
                "quarantined": .integer(Int64(o.quarantined)),
                "sweep_held": o.heldSweep.map(StatusReport.json) ?? .null,
                "lease": o.lease.map { lease in
                    [
                        "owner": .string(lease.owner), "token": .integer(lease.token),
                        "expires_at": time(lease.expiresAt), "expired": .bool(lease.expired),
                    ]
                } ?? .null,
            ]
        }
        let nodeValues: [JSONValue] = nodes.map { n in
            [
                "id": .string(n.identity.id), "host": .string(n.identity.host),
                "pid": .integer(Int64(n.identity.pid)), "version": .string(n.identity.version),
                "started_at": time(n.identity.startedAt), "last_heartbeat_at": time(n.heartbeatAt),
                "alive": .bool(n.alive),
            ]
        }
        let subscriberValues: [JSONValue] = subscribers.map { s in
            [
                "id": .string(s.id), "configured": .bool(s.configured), "state": .string(s.state),
                "reason": s.reason.map { .string($0) } ?? .null, "failing_since": time(s.failingSince),
                "backlog": .integer(Int64(s.pending)), "failed": .integer(Int64(s.failed)),
                "oldest_pending_age_seconds": number(s.oldestPendingAgeSeconds),
                "orphaned": .integer(Int64(s.orphaned)),
            ]
        }
        let budgetValues: [JSONValue] = budgets.map { b in
            [
                "connection": .string(b.connection), "per_day": .integer(Int64(b.perDay)),
                "used_today": .integer(Int64(b.usedToday)), "projected_today": .integer(Int64(b.projectedToday)),
                "runs_out_at": time(b.runsOutAt),
                "objects": .array(b.objects.map { o in
                    [
                        "object": .string(o.object), "configured_interval_seconds": number(o.configured.seconds),
                        "effective_interval_seconds": number(o.effective.seconds),
                        "requests_per_cycle": number(o.costPerCycle),
                    ]
                }),
            ]
        }
        return [
            "generated_at": .string(Timestamps.rfc3339(generatedAt)),
            "daemon": daemon,
            "budgets": .array(budgetValues),
            "pending_total": .integer(Int64(pendingTotal)),
            "objects": .array(objectValues),
            "subscribers": .array(subscriberValues),
            "nodes": .array(nodeValues),
            "storage": storage.map(StatusReport.json) ?? .null,
        ]
    }

    /// `status --json` "storage": sizes in bytes, the oldest rows, the vacuum mode.
    public static func json(_ storage: StorageSummary) -> JSONValue {
        func time(_ date: Date?) -> JSONValue { date.map { .string(Timestamps.rfc3339($0)) } ?? .null }
        return [
            "bytes": .integer(storage.totalBytes), "file_bytes": .integer(storage.fileBytes),
            "wal_bytes": .integer(storage.walBytes), "free_bytes": .integer(storage.freeBytes),
            "auto_vacuum": .string(storage.autoVacuum), "oldest_event_at": time(storage.oldestEventAt),
            "oldest_tombstone_at": time(storage.oldestTombstoneAt),
        ]
    }

    /// "12.3 MB": sizes for people (powers of 1024, one decimal).
    public static func bytes(_ count: Int64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(max(0, count))
        var unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(count) B" : String(format: "%.1f", value) + " " + units[unit]
    }

    /// A held sweep as `status --json` and `reconcile --json` show it.
    public static func json(_ held: HeldSweep) -> JSONValue {
        [
            "would_delete": .integer(Int64(held.wouldDelete)), "live": .integer(Int64(held.live)),
            "listed": .integer(Int64(held.listed)), "sweep_started": .string(Timestamps.rfc3339(held.sweepStarted)),
            "held_at": .string(Timestamps.rfc3339(held.heldAt)), "apply_requested": .bool(held.applyRequested),
        ]
    }

    /// The human tables.
    public func text() -> String {
        func ago(_ date: Date?) -> String {
            guard let date else { return "never" }
            return StatusReport.age(generatedAt.timeIntervalSince(date)) + " ago"
        }
        var objectTable: [[String]] = [["CONNECTION", "OBJECT", "LAST POLL", "LAST SUCCESS", "CURSOR", "LAG",
                                        "EVENTS", "QUARANTINED", "LEASE", "LAST ERROR"]]
        var heldLines = ""
        for o in objects {
            objectTable.append([
                o.connection, o.object + (o.configured ? "" : " (not configured)"), ago(o.lastPollAt),
                ago(o.lastSuccessAt), o.watermark.map(Timestamps.rfc3339) ?? "-",
                o.lagSeconds.map(StatusReport.age) ?? "-", String(o.eventsTotal), String(o.quarantined),
                o.lease.map { $0.owner + ($0.expired ? " (expired)" : "") } ?? "-",
                o.lastError.map { StatusReport.oneLine($0, limit: 80) } ?? "-",
            ])
            if let h = o.heldSweep {
                heldLines += "\(o.connection)/\(o.object): sweep held: would delete \(h.wouldDelete) of \(h.live) "
                    + "(listed \(h.listed), held \(ago(h.heldAt)))"
                    + (h.applyRequested
                        ? "; apply requested, the daemon applies it at the next poll\n"
                        : "; if the source really lost them: deltahook reconcile --connection \(o.connection) "
                            + "--object \(o.object) --apply-held\n")
            }
        }
        if !heldLines.isEmpty { heldLines = "\n" + heldLines }
        var subscriberTable: [[String]] = [["SUBSCRIBER", "STATE", "BACKLOG", "OLDEST PENDING", "FAILED", "ORPHANED",
                                            "REASON"]]
        for s in subscribers {
            subscriberTable.append([
                s.id + (s.configured ? "" : " (not configured)"), s.state, String(s.pending),
                s.oldestPendingAgeSeconds.map(StatusReport.age) ?? "-", String(s.failed), String(s.orphaned),
                s.reason.map { StatusReport.oneLine($0, limit: 60) } ?? "-",
            ])
        }
        return StatusReport.render(objectTable) + heldLines + budgetsText() + "\n" + StatusReport.render(subscriberTable)
            + "\n" + nodesText(ago: ago) + "\npending deliveries: \(pendingTotal)\n" + storageText(ago: ago)
    }

    /// "request budgets:" and a table per budgeted connection (rule 22): used and projected against per_day, when
    /// it runs out at the current rate, and each object's effective interval (with the configured one when stretched).
    func budgetsText() -> String {
        guard !budgets.isEmpty else { return "" }
        var table: [[String]] = [["CONNECTION", "USED TODAY", "PROJECTED", "RUNS OUT", "INTERVALS"]]
        for b in budgets {
            let intervals = b.objects.map { o in
                o.object + " " + DurationText.format(o.effective)
                    + (o.effective != o.configured ? " (configured \(DurationText.format(o.configured)))" : "")
            }.joined(separator: ", ")
            table.append([b.connection, "\(b.usedToday) / \(b.perDay)", "\(b.projectedToday) / \(b.perDay)",
                          b.runsOutAt.map { "at " + Timestamps.rfc3339($0) } ?? "not today", intervals])
        }
        return "\nrequest budgets:\n" + StatusReport.render(table)
    }

    /// "nodes:" and a table of the daemons sharing the store, or a line saying none has joined yet.
    private func nodesText(ago: (Date?) -> String) -> String {
        guard !nodes.isEmpty else { return "nodes: none (no daemon is running on this store)\n" }
        var table: [[String]] = [["NODE", "HOST", "PID", "VERSION", "LAST HEARTBEAT", "ALIVE"]]
        for n in nodes {
            table.append([n.identity.id, n.identity.host, String(n.identity.pid), n.identity.version,
                          ago(n.heartbeatAt), n.alive ? "yes" : "no"])
        }
        return "nodes:\n" + StatusReport.render(table)
    }

    /// "store: 12.3 MB (wal 1.0 MB, free 0.2 MB); oldest event 6d ago, oldest tombstone 80d ago".
    private func storageText(ago: (Date?) -> String) -> String {
        guard let s = storage else { return "" }
        var line = "store size: \(StatusReport.bytes(s.totalBytes)) (wal \(StatusReport.bytes(s.walBytes)), "
            + "free \(StatusReport.bytes(s.freeBytes))); oldest event "
            + (s.oldestEventAt == nil ? "none" : ago(s.oldestEventAt))
            + ", oldest tombstone " + (s.oldestTombstoneAt == nil ? "none" : ago(s.oldestTombstoneAt)) + "\n"
        if s.autoVacuum != "incremental" {
            line += "the file cannot shrink until vacuumed once: deltahook prune --vacuum\n"
        }
        return line
    }

    static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.first?.count else { return "" }
        var widths = Array(repeating: 0, count: columns)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == columns - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    /// "42s", "5m", "3h", "2d".
    static func age(_ seconds: Double) -> String {
        let s = Int(max(0, seconds).rounded(.down))
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m" }
        if s < 172_800 { return "\(s / 3600)h" }
        return "\(s / 86_400)d"
    }

    static func oneLine(_ text: String, limit: Int) -> String {
        let flat = String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
        return flat.count > limit ? String(flat.prefix(limit - 1)) + "…" : flat
    }
}
