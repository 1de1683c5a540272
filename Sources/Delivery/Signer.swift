// What a subscriber receives (docs/DESIGN.md §4): the body bytes and the Standard Webhooks headers. The bytes signed
// are exactly the bytes sent, and every attempt is re-signed with its own `webhook-timestamp` (receivers
// tolerate 5 minutes while retries span days — field notes gap 10).
public import Foundation
public import Core
public import Crypto
public import Config

/// A subscriber as the dispatcher needs it: config values plus parsed signing secrets.
public struct SubscriberSettings: Sendable {
    public var id: String
    public var url: URL
    public var secrets: [StandardWebhooks.Secret]
    public var timeout: Duration
    public var maxInFlight: Int
    /// Requests per second; nil = unlimited.
    public var rateLimit: Double?
    /// Also send GitHub-style `x-hub-signature-256`.
    public var githubSignature: Bool
    public var includeRaw: Bool
    public var allowInsecureHTTP: Bool
    public var allowPrivateNetwork: Bool
    public var caFile: String?

    /// How hard the dispatcher may push this subscriber: per-request timeout, concurrency, request rate.
    public struct Limits: Sendable {
        public var timeout: Duration
        public var maxInFlight: Int
        /// Requests per second; nil = unlimited.
        public var rateLimit: Double?

        public init(timeout: Duration = .seconds(15), maxInFlight: Int = 16, rateLimit: Double? = nil) {
            self.timeout = timeout
            self.maxInFlight = maxInFlight
            self.rateLimit = rateLimit
        }
    }

    /// Where the subscriber may be reached: plain HTTP, private addresses, a custom CA bundle.
    public struct Network: Sendable {
        public var allowInsecureHTTP: Bool
        public var allowPrivateNetwork: Bool
        public var caFile: String?

        public init(allowInsecureHTTP: Bool = false, allowPrivateNetwork: Bool = false, caFile: String? = nil) {
            self.allowInsecureHTTP = allowInsecureHTTP
            self.allowPrivateNetwork = allowPrivateNetwork
            self.caFile = caFile
        }
    }

    public init(id: String, url: URL, secrets: [StandardWebhooks.Secret], limits: Limits = Limits(),
                githubSignature: Bool = false, includeRaw: Bool = false, network: Network = Network()) {
        self.id = id
        self.url = url
        self.secrets = secrets
        self.timeout = limits.timeout
        self.maxInFlight = max(1, limits.maxInFlight)
        self.rateLimit = limits.rateLimit
        self.githubSignature = githubSignature
        self.includeRaw = includeRaw
        self.allowInsecureHTTP = network.allowInsecureHTTP
        self.allowPrivateNetwork = network.allowPrivateNetwork
        self.caFile = network.caFile
    }

    /// From a validated config entry. Config validation already checked the secrets' shape, so a failure here
    /// is a programming error reported as a thrown error, never a crash.
    public init(_ config: SubscriberConfig) throws {
        var secrets: [StandardWebhooks.Secret] = []
        for (index, secret) in config.secrets.enumerated() {
            do {
                secrets.append(try StandardWebhooks.Secret(secret.secret.unredactedValue))
            } catch {
                throw DeliveryError(message: "subscriber \(config.id): secrets[\(index)] (\(secret.reference)) "
                    + "is not usable: \(error)")
            }
        }
        self.init(id: config.id, url: config.url, secrets: secrets,
                  limits: Limits(timeout: config.timeout, maxInFlight: config.maxInFlight, rateLimit: config.rateLimit),
                  githubSignature: config.signatureStyles.contains(.github), includeRaw: config.includeRaw,
                  network: Network(allowInsecureHTTP: config.allowInsecureHTTP,
                                   allowPrivateNetwork: config.allowPrivateNetwork, caFile: config.caFile))
    }
}

extension SubscriberSettings {
    /// Settings for every usable subscriber plus a problem per unusable one: one bad subscriber must not stop
    /// the daemon (docs/DESIGN.md §5), so the caller logs the problems and runs the rest.
    public static func from(_ configs: [SubscriberConfig]) -> (settings: [SubscriberSettings], problems: [DeliveryError]) {
        var settings: [SubscriberSettings] = []
        var problems: [DeliveryError] = []
        for config in configs {
            do {
                settings.append(try SubscriberSettings(config))
            } catch let error as DeliveryError {
                problems.append(error)
            } catch {
                problems.append(DeliveryError(message: "subscriber \(config.id): \(error)"))
            }
        }
        return (settings, problems)
    }
}

/// An error of the delivery module's own (configuration mismatches); secret-free.
public struct DeliveryError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// Builds the signed request content of one attempt.
public enum WebhookSigner {
    /// The body a subscriber receives for `event` (`raw` only with `include_raw`).
    public static func body(for event: ChangeEvent, includeRaw: Bool) -> [UInt8] {
        event.webhookBody(includeRaw: includeRaw).serializedBytes()
    }

    /// The same bytes for an event as the outbox stored it, spliced from its stored JSON texts without parsing
    /// them (the dispatcher's path; byte identity is pinned by Tests/CoreTests/SerializedEventTests.swift).
    public static func body(for event: SerializedEvent, includeRaw: Bool) -> [UInt8] {
        event.webhookBody(includeRaw: includeRaw)
    }

    /// Headers of one attempt, in a fixed order: `webhook-id` (the event id, stable across retries),
    /// `webhook-timestamp` (this attempt, Unix seconds), `webhook-signature` (one `v1,` per secret),
    /// `content-type`, `user-agent`, and `x-hub-signature-256` when asked for (signed with the first secret).
    public static func headers(eventID: String, body: [UInt8], timestamp: Int64, secrets: [StandardWebhooks.Secret],
                               githubSignature: Bool, userAgent: String) throws -> [(name: String, value: String)]
    {
        let signature = try StandardWebhooks.sign(id: eventID, timestamp: timestamp, body: body, secrets: secrets)
        var headers: [(name: String, value: String)] = [
            ("webhook-id", eventID),
            ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", signature),
            ("content-type", "application/json"),
            ("user-agent", userAgent),
        ]
        if githubSignature, let first = secrets.first {
            headers.append(("x-hub-signature-256", StandardWebhooks.hubSignature256(body: body, secret: first)))
        }
        return headers
    }
}
