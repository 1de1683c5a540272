// Push hints (docs/DESIGN.md §6 `hints`, §2 rule 23): a provider's webhook tells the daemon that something
// changed, and the daemon polls. The hint body is never data; only the poll is. Kept in its own file so the
// shared config files stay small (the top-level `hints` block and each connection's `hints` key).
import Core

/// The top-level `hints` block: where hints are heard and how many polls they may cause.
public struct HintsConfig: Sendable, Hashable {
    /// `hints.listen`: a separate loopback listener for `POST /hooks/…`, so `/metrics` can stay private on
    /// `http.listen`. nil: hints are served on `http.listen` (when that is set).
    public var listen: HTTPListenConfig?
    /// `hints.debounce` (default 1 s): at most one hinted poll per object per window.
    public var debounce: Duration
    /// `hints.max_per_minute` (default 600): hints accepted per connection per minute; more get 429.
    public var maxPerMinute: Int

    public static let defaults = HintsConfig(listen: nil, debounce: .seconds(1), maxPerMinute: 600)

    public init(listen: HTTPListenConfig?, debounce: Duration, maxPerMinute: Int) {
        self.listen = listen
        self.debounce = debounce
        self.maxPerMinute = maxPerMinute
    }
}

/// How a connection's hints are authenticated.
public enum HintStyle: String, Sendable, CaseIterable {
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`.
    case github
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`; secret `whsec_…`.
    case standard
    /// `Authorization: Bearer <secret>`.
    case bearer
}

/// A connection's `hints`: `{"secret": {…}, "style": "github" | "standard" | "bearer"}`.
public struct ConnectionHints: Sendable {
    public var secret: Secret
    public var style: HintStyle

    public init(secret: Secret, style: HintStyle) {
        self.secret = secret
        self.style = style
    }
}

extension Validator {
    /// The top-level `hints` block (absent: defaults, no listener of its own).
    func validateHints(_ root: Fields) -> HintsConfig {
        guard let h = root.object("hints") else { return .defaults }
        defer { h.reportUnknownKeys() }
        var hints = HintsConfig.defaults
        if h.has("listen"),
           let listen = h.string("listen", expected: "\"host:port\", e.g. \"127.0.0.1:9465\"") {
            hints.listen = parseListen(listen, path: h.child("listen"))
        }
        if let debounce = h.duration("debounce", minimum: .milliseconds(10)) {
            if debounce > .seconds(3600) {
                problems.add(h.child("debounce"), "is longer than 1h; a hint that waits that long is no hint")
            }
            hints.debounce = debounce
        }
        if let rate = h.integer("max_per_minute", in: 1...1_000_000) { hints.maxPerMinute = rate }
        return hints
    }

    /// A connection's `hints` key; nil when absent (the connection takes no hints: 404).
    func validateConnectionHints(_ c: Fields) -> ConnectionHints? {
        guard c.has("hints") else {
            c.allow(["hints"])
            return nil
        }
        guard let h = c.object("hints", expected: "{\"secret\": {…}, \"style\": \"github\"}") else { return nil }
        defer { h.reportUnknownKeys() }
        let style = h.choice("style", HintStyle.self, required: true)
        guard let secret = secret(h, "secret"), let style else { return nil }
        switch style {
        case .standard:
            if case .failure(let error) = WebhookSecret.parse(secret) {
                problems.add(h.child("secret"), "for the \"standard\" style " + error.problem)
                return nil
            }
        case .github, .bearer:
            // A short shared secret can be guessed; GitHub accepts any text, so only the length is checked.
            if secret.unredactedValue.utf8.count < 16 {
                problems.add(h.child("secret"), "is shorter than 16 bytes; use e.g. `openssl rand -hex 32`")
                return nil
            }
        }
        return ConnectionHints(secret: secret, style: style)
    }
}

extension Validator {
    /// A connection that takes hints needs somewhere to hear them.
    func checkHintListener(_ hints: HintsConfig, http: HTTPListenConfig?, connections: [ConnectionConfig]) {
        guard hints.listen == nil, http == nil else { return }
        for (index, connection) in connections.enumerated() where connection.hints != nil {
            problems.add("connections[\(index)].hints",
                         "needs a listener: set \"http\": {\"listen\": \"127.0.0.1:9464\"} or \"hints\": {\"listen\": …}")
        }
    }
}
