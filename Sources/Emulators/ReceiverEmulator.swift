// A webhook receiver for tests, end-to-end runs and `deltahook demo`: it verifies every Standard Webhooks
// signature independently (its own copy of the secrets, StandardWebhooks.verify as a receiver library would),
// records what arrived in arrival order, and misbehaves on command — status codes per request or per record,
// delays, Retry-After, 410, redirects, dropped connections, "down for N requests / seconds then up".
public import Foundation
import Core
import Crypto
public import HTTPServer
import Synchronization

/// One request as the receiver saw it.
public struct ReceivedWebhook: Sendable {
    /// `webhook-id` header (the event id).
    public var webhookID: String?
    /// `type` from the body, e.g. `ticket.updated`.
    public var type: String?
    /// `data.record_id` from the body.
    public var recordID: String?
    /// `data.event_id` from the body.
    public var eventID: String?
    /// The raw body (empty when the receiver was told not to keep bodies).
    public var body: [UInt8]
    public var headers: [(name: String, value: String)]
    public var receivedAt: Date
    /// Whether `webhook-signature` verified against the receiver's secrets.
    public var verified: Bool
    /// Why verification failed, when it did.
    public var verificationError: String?
    /// `x-hub-signature-256` check against the first secret; nil when the header was absent.
    public var hubSignatureValid: Bool?
    /// The status the receiver answered (0 for a dropped connection).
    public var answeredStatus: Int
    /// 1-based TCP connection number (keep-alive checks).
    public var connectionNumber: Int

    /// First value of a request header (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// Answered 2xx with a valid signature: what a real receiver would have accepted.
    public var accepted: Bool { verified && (200..<300).contains(answeredStatus) }
    /// Answered 2xx (signature checked or not).
    public var answered2xx: Bool { (200..<300).contains(answeredStatus) }
}

/// What the receiver answers to one request.
public struct ReceiverReply: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: String
    public var delay: Duration?
    public var fault: ConnectionFault?

    public init(status: Int = 204, headers: [(name: String, value: String)] = [], body: String = "",
                delay: Duration? = nil, fault: ConnectionFault? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.delay = delay
        self.fault = fault
    }

    public static let ok = ReceiverReply(status: 200, body: "ok")
    public static func status(_ code: Int, body: String = "") -> ReceiverReply { ReceiverReply(status: code, body: body) }
    /// 429 (or another status) with `Retry-After: <seconds>`.
    public static func retryAfter(seconds: Int, status: Int = 429) -> ReceiverReply {
        ReceiverReply(status: status, headers: [("Retry-After", String(seconds))], body: "slow down")
    }
    /// `Retry-After` as an HTTP-date (IMF-fixdate).
    public static func retryAfter(date: Date, status: Int = 503) -> ReceiverReply {
        ReceiverReply(status: status, headers: [("Retry-After", ReceiverEmulator.httpDate(date))], body: "later")
    }
    public static let gone = ReceiverReply(status: 410, body: "gone")
    public static func redirect(to location: String, status: Int = 302) -> ReceiverReply {
        ReceiverReply(status: status, headers: [("Location", location)], body: "moved")
    }
    /// Close the connection without answering.
    public static let drop = ReceiverReply(status: 0, fault: .closeWithoutResponse)
    /// Reset the connection (RST) without answering.
    public static let reset = ReceiverReply(status: 0, fault: .resetConnection)
    public func delayed(_ duration: Duration) -> ReceiverReply {
        var copy = self
        copy.delay = duration
        return copy
    }
}

/// The scripted, verifying receiver. Start it, point a subscriber at `url`, inspect `received`, `stop()` it.
public final class ReceiverEmulator: Sendable {
    private struct Script {
        var defaultReply = ReceiverReply(status: 204)
        /// Consumed by the next requests, in order.
        var queue: [ReceiverReply] = []
        /// Consumed by the next requests for that record id, in order.
        var perRecord: [String: [ReceiverReply]] = [:]
        /// Answer for every request of that record (after its queue is empty).
        var recordDefault: [String: ReceiverReply] = [:]
        var downRequests = 0
        var downUntil: Date?
        var downReply = ReceiverReply(status: 503, body: "down")
        var received: [ReceivedWebhook] = []
    }

    private let server: HTTPServer
    private let secrets: [StandardWebhooks.Secret]
    private let keepBodies: Bool
    private let verifySignatures: Bool
    private let script: Mutex<Script>

    /// - Parameters:
    ///   - secrets: `whsec_…` secrets the receiver verifies with (its own copy, as a real receiver has).
    ///   - keepBodies: false keeps only ids and headers-derived fields (long benchmarks).
    ///   - path: the path the receiver answers on (others get 404).
    ///   - verifySignatures: false skips verification (benchmarks measuring the sender alone); `verified` is
    ///     then always false.
    public init(secrets: [String], host: String = "127.0.0.1", port: UInt16 = 0, keepBodies: Bool = true,
                path: String = "/webhook", verifySignatures: Bool = true) throws {
        self.secrets = try secrets.map { try StandardWebhooks.Secret($0) }
        self.keepBodies = keepBodies
        self.verifySignatures = verifySignatures
        self.path = path
        let script = Mutex(Script())
        self.script = script
        let box = HandlerBox()
        self.box = box
        server = try HTTPServer(host: host, port: port, handling: .sync { request in box.handle(request) })
        box.receiver.withLock { $0 = self }
    }

    private let path: String
    private let box: HandlerBox

    /// Where to send webhooks.
    public var url: String { server.baseURL + path }
    public var port: UInt16 { server.port }
    /// TCP connections accepted so far.
    public var acceptedConnections: Int { server.acceptedConnections }

    /// Closes the listener and every connection.
    public func stop() {
        server.stop()
        box.receiver.withLock { $0 = nil }  // the handler no longer keeps the receiver alive
    }

    // MARK: Scripting

    /// The answer when nothing more specific applies (204 by default).
    public func setDefault(_ reply: ReceiverReply) { script.withLock { $0.defaultReply = reply } }
    /// Answers for the next requests, one each, in order.
    public func enqueue(_ replies: [ReceiverReply]) { script.withLock { $0.queue += replies } }
    /// Answers for the next requests about `recordID`, one each, in order.
    public func script(record recordID: String, _ replies: [ReceiverReply]) {
        script.withLock { $0.perRecord[recordID, default: []] += replies }
    }
    /// Answer every request about `recordID` with `reply` (nil removes the rule).
    public func always(record recordID: String, _ reply: ReceiverReply?) {
        script.withLock { $0.recordDefault[recordID] = reply }
    }
    /// Down for the next `count` requests (answering `reply`), then up.
    public func down(forRequests count: Int, reply: ReceiverReply = .status(503, body: "down")) {
        script.withLock {
            $0.downRequests = count
            $0.downReply = reply
        }
    }
    /// Down for `duration` from now (answering `reply`), then up.
    public func down(for duration: Duration, reply: ReceiverReply = .status(503, body: "down")) {
        let until = Date().addingTimeInterval(Double(duration.components.seconds)
            + Double(duration.components.attoseconds) / 1e18)
        script.withLock {
            $0.downUntil = until
            $0.downReply = reply
        }
    }
    /// Back up at once.
    public func up() {
        script.withLock {
            $0.downRequests = 0
            $0.downUntil = nil
        }
    }

    // MARK: Inspection

    /// Every request, in arrival order.
    public var received: [ReceivedWebhook] { script.withLock { $0.received } }
    /// Requests answered 2xx with a valid signature, in arrival order.
    public var accepted: [ReceivedWebhook] { script.withLock { $0.received.filter(\.accepted) } }
    public var receivedCount: Int { script.withLock { $0.received.count } }
    /// Forget what was received (scripts stay).
    public func clearReceived() { script.withLock { $0.received.removeAll() } }

    /// Polls `predicate` over `received` every 10 ms until it holds or `timeout` passes; returns whether it held.
    public func waitUntil(timeout: Duration, _ predicate: @Sendable ([ReceivedWebhook]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if script.withLock({ predicate($0.received) }) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return script.withLock { predicate($0.received) }
    }

    /// IMF-fixdate for Retry-After (RFC 9110 §5.6.7).
    public static func httpDate(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }

    // MARK: Handling

    fileprivate func handle(_ request: HTTPServerRequest) -> HTTPServerResponse {
        guard request.path == path else { return .text("no receiver here", status: 404) }
        var headerMap: [String: String] = [:]
        for (name, value) in request.headers { headerMap[name.lowercased()] = value }
        var verified = false
        var verificationError: String?
        if verifySignatures {
            do {
                try StandardWebhooks.verify(headers: headerMap, body: request.body, secrets: secrets)
                verified = true
            } catch {
                verificationError = error.description
            }
        } else {
            verificationError = "verification disabled"
        }
        var hubValid: Bool?
        if let hub = headerMap["x-hub-signature-256"], let first = secrets.first {
            hubValid = StandardWebhooks.verifyHubSignature256(header: hub, body: request.body, secret: first)
        }
        var type: String?, recordID: String?, eventID: String?
        if !keepBodies {
            // Benchmarks: the id is in the header; skip parsing the body.
        } else if let json = try? JSONValue.parse(request.body) {
            type = json["type"]?.stringValue
            recordID = json["data"]?["record_id"]?.stringValue
            eventID = json["data"]?["event_id"]?.stringValue
        }
        let now = Date()
        let reply = script.withLock { s -> ReceiverReply in
            let reply = Self.choose(&s, recordID: recordID, now: now)
            s.received.append(ReceivedWebhook(
                webhookID: headerMap["webhook-id"], type: type, recordID: recordID, eventID: eventID,
                body: keepBodies ? request.body : [], headers: keepBodies ? request.headers.entries : [],
                receivedAt: now,
                verified: verified, verificationError: verificationError, hubSignatureValid: hubValid,
                answeredStatus: reply.fault == nil ? reply.status : 0, connectionNumber: request.connectionNumber))
            return reply
        }
        if let fault = reply.fault { return .fault(fault, delay: reply.delay) }
        return HTTPServerResponse(status: reply.status, headers: reply.headers, body: Array(reply.body.utf8),
                                  delay: reply.delay)
    }

    private static func choose(_ s: inout Script, recordID: String?, now: Date) -> ReceiverReply {
        if let until = s.downUntil {
            if now < until { return s.downReply }
            s.downUntil = nil
        }
        if s.downRequests > 0 {
            s.downRequests -= 1
            return s.downReply
        }
        if !s.queue.isEmpty { return s.queue.removeFirst() }
        if let recordID {
            if var queue = s.perRecord[recordID], !queue.isEmpty {
                let reply = queue.removeFirst()
                s.perRecord[recordID] = queue
                return reply
            }
            if let reply = s.recordDefault[recordID] { return reply }
        }
        return s.defaultReply
    }
}

/// Breaks the init-order cycle (the server's handler needs the receiver, the receiver owns the server).
private final class HandlerBox: Sendable {
    let receiver = Mutex<ReceiverEmulator?>(nil)

    func handle(_ request: HTTPServerRequest) -> HTTPServerResponse {
        guard let receiver = receiver.withLock({ $0 }) else { return .text("starting", status: 503) }
        return receiver.handle(request)
    }
}
