// SSRF guard (docs/DESIGN.md §5): a subscriber URL must not make the daemon talk to loopback, private, link-local (incl.
// the cloud metadata address 169.254.169.254), CGNAT, multicast or other non-global addresses unless the
// subscriber is explicitly allowed to. The URL's host is resolved once, every answer is classified, and the
// vetted address is pinned for the request (HTTPRequestOptions.pinnedAddress), so DNS cannot change between
// the check and the connect (DNS rebinding). Redirects are never followed (the HTTP client's rule).
//
// Ranges: RFC 6890 special-purpose registries (IPv4 and IPv6), RFC 6598 (CGNAT), RFC 4193 (ULA), RFC 4291
// (IPv4-mapped/compatible), RFC 6052 and RFC 8215 (NAT64 64:ff9b::/96, 64:ff9b:1::/48), RFC 3056 (6to4),
// RFC 2765 (IPv4-translated ::ffff:0:0:0/96). Svix and Hook0 filter the same way (field notes §1.13).
public import Foundation
import Glibc
import Synchronization

/// Why an address is not a public unicast address.
public enum AddressCategory: String, Sendable, Hashable, CaseIterable {
    case loopback, privateNetwork = "private", linkLocal = "link-local", sharedCGNAT = "cgnat", multicast
    case unspecified, broadcast, uniqueLocal = "unique-local", reserved, siteLocal = "site-local"

    /// The one-line reason recorded with a refused attempt.
    public var explanation: String {
        switch self {
        case .loopback: "a loopback address"
        case .privateNetwork: "a private network address (RFC 1918)"
        case .linkLocal: "a link-local address (includes the cloud metadata endpoint 169.254.169.254)"
        case .sharedCGNAT: "a carrier-grade NAT address (100.64.0.0/10)"
        case .multicast: "a multicast address"
        case .unspecified: "the unspecified address"
        case .broadcast: "the broadcast address"
        case .uniqueLocal: "an IPv6 unique local address (fc00::/7)"
        case .reserved: "a reserved, non-global address"
        case .siteLocal: "a deprecated IPv6 site-local address (fec0::/10)"
        }
    }
}

/// Pure classification of IP addresses (unit-tested with a table).
public enum AddressClassifier {
    /// nil = a global unicast address deltahook may connect to; otherwise why not.
    public static func classify(_ address: IPAddress) -> AddressCategory? {
        switch address {
        case .v4(let b): return classifyV4(b)
        case .v6(let b): return classifyV6(b)
        }
    }

    /// Parses an IP literal (no brackets, no zone) and classifies it; nil when it is global.
    /// - Returns: `.failure` when `text` is not an IP literal.
    public static func classify(literal text: String) -> Result<AddressCategory?, SSRFRefusal> {
        guard let address = IPAddress(text) else {
            return .failure(SSRFRefusal(reason: "\(text) is not an IP address literal"))
        }
        return .success(classify(address))
    }

    static func classifyV4(_ b: [UInt8]) -> AddressCategory? {
        let (a, b1, b2, b3) = (b[0], b[1], b[2], b[3])
        switch a {
        case 0: return (b1 | b2 | b3) == 0 ? .unspecified : .reserved  // 0.0.0.0/8 "this network"
        case 10: return .privateNetwork
        case 127: return .loopback
        case 100 where (64...127).contains(b1): return .sharedCGNAT
        case 169 where b1 == 254: return .linkLocal
        case 172 where (16...31).contains(b1): return .privateNetwork
        case 192 where b1 == 168: return .privateNetwork
        case 192 where b1 == 0 && b2 == 0: return .reserved          // 192.0.0.0/24 IETF protocol assignments
        case 198 where b1 == 18 || b1 == 19: return .reserved        // 198.18.0.0/15 benchmarking
        case 224...239: return .multicast
        case 255 where b1 == 255 && b2 == 255 && b3 == 255: return .broadcast
        case 240...255: return .reserved                             // 240.0.0.0/4
        default: return nil
        }
    }

    static func classifyV6(_ b: [UInt8]) -> AddressCategory? {
        let zeros = { (range: Range<Int>) in range.allSatisfy { b[$0] == 0 } }
        // ::/128 and ::1/128
        if zeros(0..<15) {
            if b[15] == 0 { return .unspecified }
            if b[15] == 1 { return .loopback }
        }
        let embedded = Array(b[12..<16])
        // ::ffff:a.b.c.d (IPv4-mapped) — judged as the IPv4 address it reaches.
        if zeros(0..<10), b[10] == 0xFF, b[11] == 0xFF { return classifyV4(embedded) }
        // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765)
        if zeros(0..<8), b[8] == 0xFF, b[9] == 0xFF, b[10] == 0, b[11] == 0 { return classifyV4(embedded) }
        // ::a.b.c.d (deprecated IPv4-compatible)
        if zeros(0..<12) { return classifyV4(embedded) ?? .reserved }
        // 64:ff9b::/96 NAT64 well-known prefix, and 64:ff9b:1::/48 local-use NAT64: reaches the embedded IPv4.
        if b[0] == 0x00, b[1] == 0x64, b[2] == 0xFF, b[3] == 0x9B {
            if zeros(4..<12) { return classifyV4(embedded) }
            if b[4] == 0, b[5] == 1 { return classifyV4(embedded) ?? .reserved }
        }
        // 2002::/16 6to4: the IPv4 address is in bytes 2…5.
        if b[0] == 0x20, b[1] == 0x02 { return classifyV4(Array(b[2..<6])) }
        if b[0] == 0xFF { return .multicast }                                // ff00::/8
        if b[0] == 0xFE, b[1] & 0xC0 == 0x80 { return .linkLocal }           // fe80::/10
        if b[0] == 0xFE, b[1] & 0xC0 == 0xC0 { return .siteLocal }           // fec0::/10
        if b[0] & 0xFE == 0xFC { return .uniqueLocal }                       // fc00::/7
        if b[0] == 0x01, zeros(1..<8) { return .reserved }                   // 100::/64 discard-only
        if b[0] == 0x20, b[1] == 0x01, b[2] == 0x0D, b[3] == 0xB8 { return .reserved } // 2001:db8::/32 docs
        if b[0] == 0x20, b[1] == 0x01, b[2] == 0, b[3] == 0 { return .reserved }       // 2001::/32 Teredo
        return nil
    }
}

/// An IPv4 or IPv6 address as network-order bytes.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4([UInt8])
    case v6([UInt8])

    /// Parses a literal with inet_pton (brackets and an IPv6 zone suffix `%eth0` are stripped).
    public init?(_ text: String) {
        var literal = text
        if literal.hasPrefix("["), literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
        if let percent = literal.firstIndex(of: "%") { literal = String(literal[..<percent]) }
        var v4 = in_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 {
            self = .v4(withUnsafeBytes(of: &v4) { Array($0) })
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, literal, &v6) == 1 {
            self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
            return
        }
        return nil
    }

    /// The canonical text form (inet_ntop).
    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch self {
        case .v4(let bytes):
            var addr = in_addr()
            withUnsafeMutableBytes(of: &addr) { $0.copyBytes(from: bytes.prefix(4)) }
            _ = inet_ntop(AF_INET, &addr, &buffer, socklen_t(buffer.count))
        case .v6(let bytes):
            var addr = in6_addr()
            withUnsafeMutableBytes(of: &addr) { $0.copyBytes(from: bytes.prefix(16)) }
            _ = inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count))
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A target refused by the guard; `reason` is recorded with the attempt (no secrets: host and address only).
public struct SSRFRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// The outcome of vetting a URL: the address to pin.
public struct VettedTarget: Sendable, Hashable {
    public var host: String
    public var address: IPAddress
}

/// Resolves and vets subscriber URLs, caching answers briefly so 20k deliveries/s do not mean 20k lookups/s.
public final class SSRFGuard: Sendable {
    /// How long a vetted answer is reused. Short, so a receiver moving to a new address is followed quickly.
    public let cacheTTL: Duration
    private let cache = Mutex<[String: (result: Result<VettedTarget, SSRFRefusal>, expires: ContinuousClock.Instant)]>([:])
    private let resolver: @Sendable (String) -> Result<[IPAddress], SSRFRefusal>

    /// - Parameter resolver: host → addresses; the default calls getaddrinfo. Tests inject fixed answers.
    public init(cacheTTL: Duration = .seconds(30),
                resolver: (@Sendable (String) -> Result<[IPAddress], SSRFRefusal>)? = nil) {
        self.cacheTTL = cacheTTL
        self.resolver = resolver ?? SSRFGuard.getaddrinfoResolve
    }

    /// Checks scheme and address of `url` and returns the address to pin.
    /// - Throws: ``SSRFRefusal`` with the reason (recorded as a failed attempt; the schedule goes on).
    public func vet(url: URL, allowInsecureHTTP: Bool, allowPrivateNetwork: Bool) async throws(SSRFRefusal)
        -> VettedTarget
    {
        let scheme = url.scheme?.lowercased() ?? ""
        guard scheme == "https" || scheme == "http" else {
            throw SSRFRefusal(reason: "URL scheme \"\(scheme)\" is not http or https")
        }
        if scheme == "http", !allowInsecureHTTP {
            throw SSRFRefusal(reason: "plain http:// refused (set allow_insecure_http for this subscriber to permit it)")
        }
        guard var host = url.host, !host.isEmpty else { throw SSRFRefusal(reason: "the URL has no host") }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let key = "\(allowPrivateNetwork ? "any" : "global")|\(host)"
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0[key] }), cached.expires > now { return try cached.result.get() }

        let resolver = self.resolver
        let hostName = host
        let resolved: Result<[IPAddress], SSRFRefusal>
        if let literal = IPAddress(host) {
            resolved = .success([literal])
        } else {
            // getaddrinfo blocks: keep it off the cooperative pool.
            resolved = await withCheckedContinuation { continuation in
                DispatchQueue.global().async { continuation.resume(returning: resolver(hostName)) }
            }
        }
        let result = Self.choose(host: host, resolved, allowPrivateNetwork: allowPrivateNetwork)
        let ttl: Duration = (try? result.get()) != nil ? cacheTTL : min(cacheTTL, .seconds(5))
        cache.withLock { map in
            if map.count > 10_000 { map.removeAll() }
            map[key] = (result, now.advanced(by: ttl))
        }
        return try result.get()
    }

    /// Picks the first acceptable answer. Only that address is connected to (pinned), so a mixed answer with a
    /// private address in it cannot be used to reach the private one.
    static func choose(host: String, _ resolved: Result<[IPAddress], SSRFRefusal>, allowPrivateNetwork: Bool)
        -> Result<VettedTarget, SSRFRefusal>
    {
        let addresses: [IPAddress]
        switch resolved {
        case .failure(let refusal): return .failure(refusal)
        case .success(let list): addresses = list
        }
        guard let first = addresses.first else {
            return .failure(SSRFRefusal(reason: "\(host) resolved to no address"))
        }
        if allowPrivateNetwork { return .success(VettedTarget(host: host, address: first)) }
        for address in addresses where AddressClassifier.classify(address) == nil {
            return .success(VettedTarget(host: host, address: address))
        }
        let category = AddressClassifier.classify(first) ?? .reserved
        return .failure(SSRFRefusal(
            reason: "refused \(host) (\(first)): \(category.explanation); set allow_private_network for this "
                + "subscriber if this is intended"))
    }

    /// getaddrinfo(3), TCP, any family.
    static func getaddrinfoResolve(_ host: String) -> Result<[IPAddress], SSRFRefusal> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(host, nil, &hints, &list)
        guard code == 0 else {
            return .failure(SSRFRefusal(reason: "cannot resolve \(host): \(String(cString: gai_strerror(code)))"))
        }
        defer { freeaddrinfo(list) }
        var out: [IPAddress] = []
        var node = list
        while let entry = node {
            if let sa = entry.pointee.ai_addr {
                switch Int32(sa.pointee.sa_family) {
                case AF_INET:
                    let bytes = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                        withUnsafeBytes(of: p.pointee.sin_addr) { Array($0) }
                    }
                    out.append(.v4(bytes))
                case AF_INET6:
                    let bytes = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                        withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) }
                    }
                    out.append(.v6(bytes))
                default: break
                }
            }
            node = entry.pointee.ai_next
        }
        var seen = Set<IPAddress>()
        return .success(out.filter { seen.insert($0).inserted })
    }
}
