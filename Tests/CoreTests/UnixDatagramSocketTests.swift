import Foundation
import Glibc
import Testing
import Core

/// A bound receiving datagram socket: a path in a fresh temp directory, or an abstract name.
private final class Receiver {
    let fd: Int32
    let name: String
    private let directory: String?

    init(abstract: Bool) throws {
        if abstract {
            directory = nil
            name = "@deltahook-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        } else {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dh-sock-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            directory = dir
            name = dir + "/r.sock"
        }
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var bytes = Array(name.utf8)
        if abstract { bytes[0] = 0 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        if bound != 0 { throw SystemCallError.last("bind", subject: name) }
    }

    func receive() -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        return n > 0 ? Array(buffer[..<n]) : []
    }

    deinit {
        close(fd)
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }
}

@Suite struct UnixDatagramSocketTests {
    @Test func sendsOneDatagramToABoundPath() throws {
        let receiver = try Receiver(abstract: false)
        let socket = try UnixDatagramSocket()
        try socket.send(Array("READY=1".utf8), to: #require(UnixSocketAddress(receiver.name)))
        #expect(receiver.receive() == Array("READY=1".utf8))
    }

    @Test func sendsToAnAbstractNameWrittenWithAt() throws {
        let receiver = try Receiver(abstract: true)
        let address = try #require(UnixSocketAddress(receiver.name))
        #expect(address.isAbstract)
        try UnixDatagramSocket().send(Array("WATCHDOG=1".utf8), to: address, wait: false)
        #expect(receiver.receive() == Array("WATCHDOG=1".utf8))
    }

    @Test func aMissingPathThrowsENOENTNamingThePath() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dh-missing-\(UUID().uuidString)").path
        let socket = try UnixDatagramSocket()
        #expect(throws: SystemCallError("sendto", subject: path, code: ENOENT)) {
            try socket.send([1, 2, 3], to: #require(UnixSocketAddress(path)))
        }
        let error = SystemCallError("sendto", subject: path, code: ENOENT)
        #expect(error.description == "sendto(\(path)): No such file or directory (errno 2)")
    }

    @Test func anOversizedDatagramThrowsEMSGSIZE() throws {
        let receiver = try Receiver(abstract: false)
        let socket = try UnixDatagramSocket()
        let address = try #require(UnixSocketAddress(receiver.name))
        do {
            try socket.send([UInt8](repeating: 0x41, count: 16 << 20), to: address)
            Issue.record("a 16 MiB datagram was accepted")
        } catch {
            #expect(error.function == "sendto")
            #expect(error.code == EMSGSIZE)
        }
    }

    @Test func rejectsNamesThatDoNotFitSockaddrUn() {
        #expect(UnixSocketAddress("") == nil)
        #expect(UnixSocketAddress("/" + String(repeating: "x", count: 200)) == nil)
        #expect(UnixSocketAddress("/run/systemd/notify")?.isAbstract == false)
    }
}
