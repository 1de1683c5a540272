// Pure parts of delivery: the signer (spec vector), the retry policy, the SSRF address classifier and guard,
// and the token bucket.
import Foundation
import Testing
import Core
import Crypto
import Store
@testable import Delivery

@Suite struct SignerTests {
    /// Standard Webhooks reference vector (libraries/go/webhook_test.go TestWebhookSign), through the same
    /// header builder the dispatcher uses.
    @Test func specVectorThroughTheSignerPath() throws {
        let secret = try StandardWebhooks.Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        let body = Array(#"{"test": 2432232314}"#.utf8)
        let headers = try WebhookSigner.headers(eventID: "msg_p5jXN8AQM9LWM0D4loKWxJek", body: body,
                                                timestamp: 1_614_265_330, secrets: [secret], githubSignature: false,
                                                userAgent: "deltahook/9.9")
        let map = Dictionary(headers.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(map["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        #expect(map["webhook-id"] == "msg_p5jXN8AQM9LWM0D4loKWxJek")
        #expect(map["webhook-timestamp"] == "1614265330")
        #expect(map["content-type"] == "application/json")
        #expect(map["user-agent"] == "deltahook/9.9")
        #expect(map["x-hub-signature-256"] == nil)
    }

    @Test func twoSecretsEitherAloneVerifies() throws {
        let a = try StandardWebhooks.Secret(try StandardWebhooks.generateSecret())
        let b = try StandardWebhooks.Secret(try StandardWebhooks.generateSecret())
        let body = WebhookSigner.body(for: sampleEvent("r1", 1), includeRaw: false)
        let now = Date()
        let ts = Timestamps.unixSeconds(now)
        let headers = try WebhookSigner.headers(eventID: "evt_1", body: body, timestamp: ts, secrets: [a, b],
                                                githubSignature: true, userAgent: "deltahook/1")
        let map = Dictionary(headers.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(map["webhook-signature"]?.split(separator: " ").count == 2)
        for secret in [a, b] {
            #expect(throws: Never.self) {
                try StandardWebhooks.verify(headers: map, body: body, secrets: [secret], now: now)
            }
        }
        let other = try StandardWebhooks.Secret(try StandardWebhooks.generateSecret())
        #expect(throws: StandardWebhooks.SignatureError.self) {
            try StandardWebhooks.verify(headers: map, body: body, secrets: [other], now: now)
        }
        let hub = try #require(map["x-hub-signature-256"])
        #expect(StandardWebhooks.verifyHubSignature256(header: hub, body: body, secret: a))
    }

    @Test func bodyIsTheEventsWebhookBodyAndRawOnlyWhenAsked() throws {
        let event = sampleEvent("r1", 2)
        let plain = try JSONValue.parse(WebhookSigner.body(for: event, includeRaw: false))
        let raw = try JSONValue.parse(WebhookSigner.body(for: event, includeRaw: true))
        #expect(plain["type"]?.stringValue == "ticket.updated")
        #expect(plain["data"]?["event_id"]?.stringValue == event.id)
        #expect(plain["data"]?["raw"] == nil)
        #expect(raw["data"]?["raw"] != nil)
    }
}

@Suite struct RetryPolicyTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let policy = RetryPolicy(schedule: [.zero, .seconds(5), .seconds(300)], jitter: 0.2, maxRetryAfter: .seconds(3600))

    func retryAt(_ decision: AttemptDecision) -> Date? {
        if case .retry(let at) = decision.outcome { return at }
        return nil
    }

    @Test func defaultScheduleIsSvixs() {
        #expect(RetryPolicy().schedule.map { $0.components.seconds } == [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000])
    }

    @Test func jitterStaysWithinBounds() throws {
        #expect(policy.delay(beforeAttempt: 1, random: 0) == .seconds(4))
        #expect(policy.delay(beforeAttempt: 1, random: 1) == .seconds(6))
        #expect(policy.delay(beforeAttempt: 1, random: 0.5) == .seconds(5))
        #expect(policy.delay(beforeAttempt: 3, random: 0.5) == nil)
        for r in stride(from: 0.0, to: 1.0, by: 0.05) {
            let d = try #require(policy.delay(beforeAttempt: 2, random: r))
            #expect(d >= .seconds(240) && d <= .seconds(360))
        }
    }

    @Test func success2xxDelivers() {
        for status in [200, 201, 204, 299] {
            let d = policy.decide(.response(status: status, retryAfter: nil, location: nil), attemptsMade: 1, now: now,
                                  random: 0.5)
            #expect(d.outcome == .delivered)
            #expect(d.succeeded)
            #expect(d.error == nil)
        }
    }

    @Test func redirectIsAFailureThatRetries() {
        let d = policy.decide(.response(status: 302, retryAfter: nil, location: "https://x.example/new?token=s3cr3t"),
                              attemptsMade: 1, now: now, random: 0.5)
        #expect(retryAt(d) == now.addingTimeInterval(5))
        #expect(d.error?.contains("not followed") == true)
        #expect(d.error?.contains("s3cr3t") == false)
        #expect(!d.succeeded)
    }

    /// Issue 12 item 1: the redirect target is shown like a subscriber URL — no userinfo, query or path.
    @Test func redirectLocationLosesUserinfoQueryAndPath() {
        let d = policy.decide(.response(status: 301, retryAfter: nil,
                                        location: "https://user:hunter2@x.example:8443/hooks/PATHSECRET?token=s3cr3t"),
                              attemptsMade: 1, now: now, random: 0.5)
        #expect(d.error?.contains("redirect to https://x.example:8443/… not followed") == true, "\(d.error ?? "")")
        for secret in ["user", "hunter2", "PATHSECRET", "s3cr3t"] { #expect(d.error?.contains(secret) == false) }
    }

    @Test func otherStatusesAndTransportErrorsFollowTheSchedule() {
        for observation: AttemptObservation in [
            .response(status: 500, retryAfter: nil, location: nil), .response(status: 404, retryAfter: nil, location: nil),
            .response(status: 429, retryAfter: nil, location: nil), .response(status: 503, retryAfter: "soon", location: nil),
            .transportError(reason: "timeout"), .refused(reason: "loopback"),
        ] {
            let d = policy.decide(observation, attemptsMade: 2, now: now, random: 0.5)
            #expect(retryAt(d) == now.addingTimeInterval(300), "\(observation)")
            #expect(d.pauseSubscriberUntil == nil)
        }
    }

    @Test func lastAttemptFails() {
        let d = policy.decide(.response(status: 500, retryAfter: nil, location: nil), attemptsMade: 3, now: now,
                              random: 0.5)
        #expect(d.outcome == .failed)
        #expect(d.error?.contains("exhausted") == true)
    }

    @Test func goneDisablesAndKeepsTheDeliveryPending() {
        let d = policy.decide(.response(status: 410, retryAfter: nil, location: nil), attemptsMade: 1, now: now,
                              random: 0.5)
        #expect(d.disableReason != nil)
        #expect(retryAt(d) == now)
    }

    @Test func retryAfterSecondsAndDatePauseTheSubscriberCapped() {
        let seconds = policy.decide(.response(status: 429, retryAfter: "120", location: nil), attemptsMade: 1, now: now,
                                    random: 0.5)
        #expect(retryAt(seconds) == now.addingTimeInterval(120))
        #expect(seconds.pauseSubscriberUntil == now.addingTimeInterval(120))

        let date = policy.decide(.response(status: 503, retryAfter: "Fri, 15 Jan 2027 08:00:30 GMT", location: nil),
                                 attemptsMade: 1, now: Date(timeIntervalSince1970: 1_799_999_970 + 0), random: 0.5)
        // 1_800_000_030 = Fri, 15 Jan 2027 08:00:30 GMT
        #expect(date.pauseSubscriberUntil == Date(timeIntervalSince1970: 1_800_000_030))

        let capped = policy.decide(.response(status: 429, retryAfter: "999999", location: nil), attemptsMade: 1,
                                   now: now, random: 0.5)
        #expect(capped.pauseSubscriberUntil == now.addingTimeInterval(3600))
    }
}

@Suite struct AddressClassifierTests {
    /// Every row: literal → expected category (nil = global, allowed).
    static let table: [(String, AddressCategory?)] = [
        // IPv4 public
        ("8.8.8.8", nil), ("1.1.1.1", nil), ("93.184.216.34", nil), ("172.15.255.255", nil), ("172.32.0.1", nil),
        ("100.63.255.255", nil), ("100.128.0.0", nil), ("169.253.1.1", nil), ("192.169.0.1", nil),
        ("198.17.255.255", nil), ("198.20.0.0", nil), ("223.255.255.255", nil), ("11.0.0.1", nil),
        // loopback
        ("127.0.0.1", .loopback), ("127.255.255.254", .loopback), ("::1", .loopback),
        // private
        ("10.0.0.1", .privateNetwork), ("10.255.255.255", .privateNetwork), ("172.16.0.1", .privateNetwork),
        ("172.31.255.255", .privateNetwork), ("192.168.0.1", .privateNetwork), ("192.168.255.255", .privateNetwork),
        // link-local incl. metadata
        ("169.254.169.254", .linkLocal), ("169.254.0.1", .linkLocal), ("fe80::1", .linkLocal),
        ("febf:ffff::1", .linkLocal),
        // CGNAT
        ("100.64.0.1", .sharedCGNAT), ("100.127.255.255", .sharedCGNAT),
        // multicast
        ("224.0.0.1", .multicast), ("239.255.255.250", .multicast), ("ff02::1", .multicast), ("ff05::fb", .multicast),
        // unspecified, broadcast, reserved
        ("0.0.0.0", .unspecified), ("::", .unspecified), ("255.255.255.255", .broadcast), ("0.1.2.3", .reserved),
        ("240.0.0.1", .reserved), ("198.18.0.1", .reserved), ("192.0.0.8", .reserved), ("2001:db8::1", .reserved),
        ("100::1", .reserved), ("2001:0:4136:e378::1", .reserved),
        // IPv6 ULA and site-local
        ("fc00::1", .uniqueLocal), ("fd12:3456:789a::1", .uniqueLocal), ("fec0::1", .siteLocal),
        // IPv6 public
        ("2606:4700:4700::1111", nil), ("2a00:1450:4001:80b::200e", nil),
        // IPv4-mapped / translated / compatible / NAT64 / 6to4 forms judge the embedded IPv4 address
        ("::ffff:127.0.0.1", .loopback), ("::ffff:10.1.2.3", .privateNetwork), ("::ffff:169.254.169.254", .linkLocal),
        ("::ffff:8.8.8.8", nil), ("::ffff:0:192.168.1.1", .privateNetwork), ("::ffff:0:8.8.8.8", nil),
        ("::127.0.0.1", .loopback), ("::8.8.8.8", .reserved),
        ("64:ff9b::7f00:1", .loopback), ("64:ff9b::a9fe:a9fe", .linkLocal), ("64:ff9b::808:808", nil),
        ("64:ff9b:1::a00:1", .privateNetwork),
        ("2002:7f00:1::", .loopback), ("2002:c0a8:101::1", .privateNetwork), ("2002:808:808::1", nil),
        ("2002:a9fe:a9fe::", .linkLocal), ("::ffff:100.64.0.1", .sharedCGNAT), ("::ffff:224.0.0.1", .multicast),
    ]

    @Test(arguments: table.indices)
    func classifies(_ index: Int) throws {
        let (literal, expected) = Self.table[index]
        let result = try AddressClassifier.classify(literal: literal).get()
        #expect(result == expected, "\(literal)")
    }

    @Test func rejectsNonLiterals() {
        #expect(throws: SSRFRefusal.self) { try AddressClassifier.classify(literal: "example.com").get() }
        #expect(IPAddress("[::1]") == IPAddress("::1"))
        #expect(IPAddress("fe80::1%eth0")?.description == "fe80::1")
    }
}

@Suite struct SSRFGuardTests {
    func guardWith(_ answers: [String: [String]]) -> SSRFGuard {
        SSRFGuard(resolver: { host in
            guard let list = answers[host] else { return .failure(SSRFRefusal(reason: "cannot resolve \(host)")) }
            return .success(list.compactMap(IPAddress.init))
        })
    }

    @Test func refusesPlainHTTPUnlessAllowed() async throws {
        let guardian = guardWith(["hooks.example.com": ["93.184.216.34"]])
        let url = try #require(URL(string: "http://hooks.example.com/x"))
        await #expect(throws: SSRFRefusal.self) {
            try await guardian.vet(url: url, allowInsecureHTTP: false, allowPrivateNetwork: false)
        }
        let target = try await guardian.vet(url: url, allowInsecureHTTP: true, allowPrivateNetwork: false)
        #expect(target.address.description == "93.184.216.34")
    }

    @Test func refusesNamesResolvingToPrivateAddressesAndPinsPublicOnes() async throws {
        let guardian = guardWith(["evil.example": ["169.254.169.254"], "mixed.example": ["10.0.0.5", "93.184.216.34"],
                                  "v6.example": ["fd00::1"]])
        for host in ["evil.example", "v6.example"] {
            let url = try #require(URL(string: "https://\(host)/hook"))
            do {
                _ = try await guardian.vet(url: url, allowInsecureHTTP: false, allowPrivateNetwork: false)
                Issue.record("\(host) should be refused")
            } catch {
                #expect(error.reason.contains(host))
                #expect(error.reason.contains("allow_private_network"))
            }
        }
        let mixed = try await guardian.vet(url: try #require(URL(string: "https://mixed.example/")),
                                           allowInsecureHTTP: false, allowPrivateNetwork: false)
        #expect(mixed.address.description == "93.184.216.34")
        let allowed = try await guardian.vet(url: try #require(URL(string: "https://evil.example/")),
                                             allowInsecureHTTP: false, allowPrivateNetwork: true)
        #expect(allowed.address.description == "169.254.169.254")
    }

    @Test func literalHostsAndRealResolver() async throws {
        let guardian = SSRFGuard()
        await #expect(throws: SSRFRefusal.self) {
            try await guardian.vet(url: URL(string: "https://127.0.0.1:8443/")!, allowInsecureHTTP: false,
                                   allowPrivateNetwork: false)
        }
        await #expect(throws: SSRFRefusal.self) {
            try await guardian.vet(url: URL(string: "https://[::ffff:10.0.0.1]/")!, allowInsecureHTTP: false,
                                   allowPrivateNetwork: false)
        }
        // Numeric spellings getaddrinfo (inet_aton) accepts still land on loopback and are refused.
        for spelled in ["https://2130706433/", "https://0x7f.0.0.1/", "https://127.1/"] {
            await #expect(throws: SSRFRefusal.self, "\(spelled)") {
                try await guardian.vet(url: URL(string: spelled)!, allowInsecureHTTP: false, allowPrivateNetwork: false)
            }
        }
        // getaddrinfo path: "localhost" resolves to loopback.
        await #expect(throws: SSRFRefusal.self) {
            try await guardian.vet(url: URL(string: "https://localhost/")!, allowInsecureHTTP: false,
                                   allowPrivateNetwork: false)
        }
        let local = try await guardian.vet(url: URL(string: "https://localhost/")!, allowInsecureHTTP: false,
                                           allowPrivateNetwork: true)
        #expect(AddressClassifier.classify(local.address) == .loopback)
        await #expect(throws: SSRFRefusal.self) {
            try await guardian.vet(url: URL(string: "ftp://example.com/")!, allowInsecureHTTP: true,
                                   allowPrivateNetwork: true)
        }
    }
}

@Suite struct TokenBucketTests {
    @Test func burstThenPaced() {
        let start = ContinuousClock.now
        var bucket = TokenBucket(rate: 10, burst: 2, now: start)
        #expect(bucket.reserve(now: start) == .zero)
        #expect(bucket.reserve(now: start) == .zero)
        #expect(bucket.reserve(now: start) == .milliseconds(100))
        #expect(bucket.reserve(now: start) == .milliseconds(200))
        // After a second the bucket is full again (capped at burst).
        let later = start + .seconds(2)
        #expect(bucket.reserve(now: later) == .zero)
        #expect(bucket.reserve(now: later) == .zero)
        #expect(bucket.reserve(now: later) > .zero)
    }
}

func sampleEvent(_ recordID: String, _ n: Int, detected: Date = Date()) -> ChangeEvent {
    let record: JSONValue = ["id": .string(recordID), "n": .integer(Int64(n))]
    let occurred = Date(timeIntervalSince1970: 1_764_000_000 + Double(n))
    let id = ChangeEvent.makeID(connection: "c", object: "o", recordID: recordID, sourceTimestamp: occurred,
                                contentHash: ContentHash.of(record), kind: .updated)
    return ChangeEvent(id: id, model: "ticket", kind: .updated,
                       subject: .init(connection: "c", provider: "servicenow", object: "o", recordID: recordID),
                       occurredAt: occurred, detectedAt: detected,
                       content: .init(record: record,
                                      changes: ["n": FieldChange(from: .integer(Int64(n - 1)), to: .integer(Int64(n)))],
                                      raw: ["sys_id": .string(recordID)]))
}
