// A send-only AF_UNIX datagram socket, shared by the journald native sink and sd_notify (issue 13, item 6).
import Glibc

/// Where a datagram goes: a filesystem path, or a Linux abstract-namespace name written `@name`
/// (the `$NOTIFY_SOCKET` convention, sd_notify(3)).
public struct UnixSocketAddress: Sendable, Equatable, CustomStringConvertible {
    /// The name as given, `@` included for abstract names.
    public let name: String

    /// Nil when `name` is empty or does not fit in `sockaddr_un.sun_path`.
    public init?(_ name: String) {
        guard !name.isEmpty, name.utf8.count < UnixSocketAddress.capacity else { return nil }
        self.name = name
    }

    public var isAbstract: Bool { name.utf8.first == UInt8(ascii: "@") }
    public var description: String { name }

    static let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)

    /// Calls `body` with a filled `sockaddr_un` and its length. The length covers exactly the name: abstract
    /// names are not NUL-terminated, their leading `@` becomes the NUL byte (unix(7)).
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var bytes = Array(name.utf8)
        if isAbstract { bytes[0] = 0 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}

/// An unconnected `SOCK_DGRAM | SOCK_CLOEXEC` AF_UNIX socket; each `send` is one `sendto` to an address.
///
/// There is no memfd path for oversized datagrams: a send larger than the socket allows fails with
/// `EMSGSIZE`, and the caller decides what to do (the journald sink writes the record to its fallback).
/// Raise `sendBufferSize` to allow bigger datagrams (`SO_SNDBUF`; the kernel caps it at `wmem_max`).
public final class UnixDatagramSocket: Sendable {
    private let fd: Int32

    public init(sendBufferSize: Int32? = nil) throws(SystemCallError) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .last("socket") }
        if var size = sendBufferSize {
            // Best effort, as before: an unprivileged process gets at most wmem_max.
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends `payload` as one datagram. `MSG_NOSIGNAL` always; `wait: false` adds `MSG_DONTWAIT`, so a full
    /// receive queue fails with `EAGAIN` instead of blocking. Retries on `EINTR`.
    public func send(_ payload: [UInt8], to address: UnixSocketAddress, wait: Bool = true) throws(SystemCallError) {
        let flags = Int32(MSG_NOSIGNAL) | (wait ? 0 : Int32(MSG_DONTWAIT))
        while true {
            let result: (sent: Int, code: Int32) = address.withSockaddr { sockaddr, length in
                payload.withUnsafeBytes { bytes in
                    let sent = sendto(fd, bytes.baseAddress, bytes.count, flags, sockaddr, length)
                    return (sent, sent < 0 ? errno : 0)
                }
            }
            if result.sent < 0 && result.code == EINTR { continue }
            if result.sent < 0 { throw SystemCallError("sendto", subject: address.name, code: result.code) }
            // A datagram is sent whole or not at all; a short count would mean truncation.
            if result.sent != payload.count { throw SystemCallError("sendto", subject: address.name, code: EMSGSIZE) }
            return
        }
    }
}
