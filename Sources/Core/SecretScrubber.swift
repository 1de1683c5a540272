// The one redaction step every text passes on its way out of the process or into the store (docs/DESIGN.md §1,
// "Secrets and file modes"): logs, poll_status.last_error, delivery attempt errors and response excerpts, CLI
// output and metrics labels. It lives in Core because every module that produces such text (HTTPClient, Store's
// callers, Providers, Delivery, Logging, the CLI) can see Core and nothing else in common.
import Synchronization

/// A registry of secret texts, shared by the whole process as one injected instance (never a global).
///
/// The daemon and every CLI command create one from the config at start (`DeltahookConfig.register(in:)`), hand
/// it to the logger, the metrics registry and the CLI's output, and providers register every token they mint
/// (ServiceNow access and rotated refresh tokens, GitHub App installation tokens) the moment it arrives — so a
/// provider that echoes a token in a 401 body cannot carry it into `status --json`. Thread-safe: registration
/// and scrubbing may happen on any thread.
public final class SecretScrubber: Sendable {
    /// Texts shorter than this are not scrubbed: replacing e.g. "1" everywhere would wreck every line, and
    /// such short values are not real secrets.
    public static let minimumLength = 4
    /// What a secret is replaced by unless it was registered with its own replacement.
    public static let placeholder = "<redacted>"
    /// Runtime tokens kept at most. A daemon that runs for months mints a ServiceNow token every 25 minutes;
    /// the oldest ones have long expired, and an unbounded list would make every log line slower.
    public static let runtimeTokenLimit = 256

    private struct Entry: Equatable {
        var text: String
        var replacement: String
    }

    private struct Lists {
        /// Configured secrets and URL forms: kept for the life of the process.
        var permanent: [Entry] = []
        /// Minted tokens, oldest first, at most `runtimeTokenLimit`.
        var runtime: [Entry] = []
        /// Both, longest text first, so a secret containing another is replaced whole.
        var ordered: [Entry] = []

        mutating func reorder() {
            ordered = (permanent + runtime).sorted { $0.text.utf8.count > $1.text.utf8.count }
        }
    }

    private let lists = Mutex(Lists())

    public init() {}

    /// Registers a configured secret for the life of the process.
    public func register(_ text: String, replacement: String = SecretScrubber.placeholder) {
        guard text.count >= Self.minimumLength else { return }
        lists.withLock { lists in
            let entry = Entry(text: text, replacement: replacement)
            guard !lists.permanent.contains(entry) else { return }
            lists.permanent.append(entry)
            lists.reorder()
        }
    }

    public func register<S: Sequence>(contentsOf texts: S) where S.Element == String {
        for text in texts { register(text) }
    }

    /// Registers a token minted at run time (an access token, a rotated refresh token, an installation token).
    /// Only the newest ``runtimeTokenLimit`` are kept: an older one has expired long ago.
    public func registerRuntimeToken(_ token: String) {
        guard token.count >= Self.minimumLength else { return }
        lists.withLock { lists in
            let entry = Entry(text: token, replacement: Self.placeholder)
            guard !lists.runtime.contains(entry), !lists.permanent.contains(entry) else { return }
            lists.runtime.append(entry)
            if lists.runtime.count > Self.runtimeTokenLimit { lists.runtime.removeFirst() }
            lists.reorder()
        }
    }

    /// Registers a subscriber URL: Slack-, Discord- and Zapier-style hooks carry their secret in the path (and
    /// others in the query or userinfo), so the URL as configured, its userinfo-less form and its path are
    /// replaced by `scheme://host[:port]/…` wherever they appear — in a curl error, a receiver's echo, a log.
    public func registerSubscriberURL(_ url: String) {
        let shown = URLRedaction.subscriber(url)
        register(url, replacement: shown)
        register(URLRedaction.redact(url), replacement: shown)
        // The path alone (a receiver echoing "POST /services/T0/B0/xyz"); a short path is not a secret and
        // replacing e.g. "/hook" everywhere would blur unrelated lines.
        let path = URLRedaction.pathAndQuery(url)
        if path.count >= 8 { register(path, replacement: "/…") }
    }

    /// `text` with every registered secret replaced.
    public func scrub(_ text: String) -> String {
        let entries = lists.withLock { $0.ordered }
        var out = text
        for entry in entries where out.contains(entry.text) {
            out = out.replacingAll(entry.text, with: entry.replacement)
        }
        return out
    }

    /// How many texts are registered (tests and the start-up debug line).
    public var count: Int { lists.withLock { $0.ordered.count } }
}

/// The one URL redaction of the code base (docs/DESIGN.md §1): URLs go into errors, logs, `status` and the
/// store only through these functions.
public enum URLRedaction {
    /// `scheme://host[:port]/path`: userinfo (`user:pass@`), query and fragment removed — they carry tokens.
    /// Works on relative references (`/path?x`) and scheme-less text too.
    public static func redact(_ url: String) -> String {
        let parts = split(url)
        return parts.prefix + parts.authority + parts.path
    }

    /// A subscriber URL as it may be shown: `scheme://host[:port]/…`. Webhook receivers (Slack, Discord,
    /// Zapier) put their secret in the path, so nothing after the authority is ever shown.
    public static func subscriber(_ url: String) -> String {
        let parts = split(url)
        let bare = parts.path.isEmpty || parts.path == "/"
        return parts.prefix + parts.authority + (bare && !parts.hadQuery ? "/" : "/…")
    }

    /// The path and query of `url` (everything after the authority, fragment removed).
    public static func pathAndQuery(_ url: String) -> String {
        var text = Substring(url)
        if let hash = text.firstIndex(of: "#") { text = text[..<hash] }
        if let schemeEnd = text.range(of: "://") {
            let rest = text[schemeEnd.upperBound...]
            return String(rest.firstIndex(of: "/").map { rest[$0...] } ?? "")
        }
        return String(text)
    }

    private struct Parts {
        /// `scheme://`, or empty for a relative reference.
        var prefix: String
        /// `host[:port]` without userinfo.
        var authority: String
        /// The path without query and fragment.
        var path: String
        var hadQuery: Bool
    }

    private static func split(_ url: String) -> Parts {
        var text = Substring(url)
        let cut = text.firstIndex { $0 == "?" || $0 == "#" }
        let hadQuery = cut.map { text[$0] == "?" } ?? false
        if let cut { text = text[..<cut] }
        guard let schemeEnd = text.range(of: "://") else {
            // Relative or scheme-less: drop anything up to an `@` before the first `/` (userinfo).
            let authorityEnd = text.firstIndex(of: "/") ?? text.endIndex
            if let at = text[..<authorityEnd].lastIndex(of: "@") { text = text[text.index(after: at)...] }
            return Parts(prefix: "", authority: "", path: String(text), hadQuery: hadQuery)
        }
        let authorityStart = schemeEnd.upperBound
        let authorityEnd = text[authorityStart...].firstIndex(of: "/") ?? text.endIndex
        var authority = text[authorityStart..<authorityEnd]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        return Parts(prefix: String(text[..<authorityStart]), authority: String(authority),
                     path: String(text[authorityEnd...]), hadQuery: hadQuery)
    }
}
