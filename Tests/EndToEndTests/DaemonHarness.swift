// Helpers for running the real `deltahook run` binary: a fake $NOTIFY_SOCKET (a unix datagram socket bound in a
// temporary directory, read the way systemd reads it), a config on disk, and the process with its stderr in a file.
import Foundation
import Glibc
import TestSupport
import Testing

/// The package root, found from this file's path.
let daemonPackageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// `.build/debug/deltahook` (built by `swift build --build-tests`), or next to the test bundle. `name`: another
/// executable of the package, e.g. the test-only `DeltahookWatchdogProof`.
func daemonBinary(_ name: String = "deltahook") throws -> URL {
    var candidates: [URL] = []
    if let bundle = Bundle.main.executableURL?.deletingLastPathComponent() {
        candidates.append(bundle.appendingPathComponent(name))
        candidates.append(bundle.deletingLastPathComponent().appendingPathComponent(name))
    }
    candidates.append(daemonPackageRoot.appendingPathComponent(".build/debug/" + name))
    return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) },
                        "build the package first (swift build) so .build/debug/\(name) exists")
}

/// Runs the built `deltahook` with `arguments` and only `environment`, to completion (CLI commands, not `run`).
func runDeltahook(_ arguments: [String], environment: [String: String] = [:]) throws
    -> (status: Int32, stdout: String, stderr: String)
{
    let process = Process()
    process.executableURL = try daemonBinary()
    process.arguments = arguments
    process.environment = environment
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

/// A temporary directory removed on deinit (TestSupport.TemporaryDirectory needs an explicit remove()).
final class ScratchDirectory {
    let path: String
    init(_ label: String) throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("deltahook-\(label)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// What systemd's end of `$NOTIFY_SOCKET` sees: every datagram, in order.
final class NotifySocket {
    let path: String
    private let fd: Int32
    private(set) var messages: [String] = []
    private var consumed = 0

    init(directory: String) throws {
        path = directory + "/notify.sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket() failed: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw HarnessError("notify socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else { throw HarnessError("bind(\(path)) failed: errno \(errno)") }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Reads datagrams for up to `timeout`, returning the new ones.
    @discardableResult
    func read(for timeout: Duration) -> [String] {
        let deadline = ContinuousClock.now + timeout
        var fresh: [String] = []
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { break }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            guard poll(&pfd, 1, ms) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { fresh.append(String(decoding: buffer[..<n], as: UTF8.self)) }
        }
        messages += fresh
        return fresh
    }

    /// The first datagram after the previous match that satisfies `predicate`, reading for up to `timeout`;
    /// nil when none came. Datagrams read but not yet matched stay available for the next call.
    func waitFor(timeout: Duration, _ predicate: (String) -> Bool) -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let match = takeMatch(predicate) { return match }
            guard ContinuousClock.now < deadline else { return nil }
            read(for: .milliseconds(100))
        }
    }

    /// The first unconsumed datagram that satisfies `predicate`, consumed; nil when none has arrived yet.
    private func takeMatch(_ predicate: (String) -> Bool) -> String? {
        guard let index = messages[consumed...].firstIndex(where: predicate) else { return nil }
        consumed = index + 1
        return messages[index]
    }

    // Async overloads: an async test must never block a thread of the cooperative pool (two threads on this
    // machine's two cores) — a blocked pool stalls every other test's emulators and deadlines at once.

    /// Reads datagrams for up to `timeout` without blocking a thread, returning the new ones.
    @discardableResult
    func read(for timeout: Duration) async -> [String] {
        let deadline = ContinuousClock.now + timeout
        var fresh: [String] = []
        repeat {
            fresh += readPending()
            try? await Task.sleep(for: .milliseconds(20))
        } while ContinuousClock.now < deadline
        fresh += readPending()
        messages += fresh
        return fresh
    }

    /// ``waitFor(timeout:_:)`` without blocking a thread.
    func waitFor(timeout: Duration, _ predicate: (String) -> Bool) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let match = takeMatch(predicate) { return match }
            guard ContinuousClock.now < deadline else { return nil }
            await read(for: .milliseconds(100))
        }
    }

    /// Every datagram already queued, without waiting.
    private func readPending() -> [String] {
        var fresh: [String] = []
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 0) > 0 else { return fresh }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { return fresh }
            fresh.append(String(decoding: buffer[..<n], as: UTF8.self))
        }
    }

    /// Reads whatever is pending and forgets everything seen so far.
    func drain() {
        read(for: .milliseconds(50))
        messages.removeAll()
        consumed = 0
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A running `deltahook` process.
final class DaemonProcess {
    let process = Process()
    let stderrPath: String

    init(arguments: [String], environment: [String: String], directory: String, binary: String = "deltahook") throws {
        process.executableURL = try daemonBinary(binary)
        process.arguments = arguments
        process.environment = environment  // nothing inherited
        stderrPath = directory + "/stderr-\(UUID().uuidString.prefix(6)).log"
        guard FileManager.default.createFile(atPath: stderrPath, contents: nil) else {
            throw HarnessError("cannot create \(stderrPath)")
        }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits up to `timeout` for the exit; nil when still running.
    func waitForExit(timeout: Duration) -> Int32? {
        _ = Wait.blocking(timeout: timeout) { !process.isRunning }
        guard !process.isRunning else { return nil }
        return process.terminationStatus
    }

    /// ``waitForExit(timeout:)`` without blocking a thread of the cooperative pool.
    func waitForExit(timeout: Duration) async -> Int32? {
        _ = await Wait.until(timeout: timeout) { !process.isRunning }
        guard !process.isRunning else { return nil }
        return process.terminationStatus
    }

    /// ``waitForLog(_:timeout:)`` without blocking a thread of the cooperative pool.
    func waitForLog(_ text: String, timeout: Duration) async -> Bool {
        await Wait.until(timeout: timeout, interval: .milliseconds(50)) { stderr.contains(text) }
    }

    /// Waits until stderr contains `text`.
    func waitForLog(_ text: String, timeout: Duration) -> Bool {
        Wait.blocking(timeout: timeout, interval: .milliseconds(50)) { stderr.contains(text) }
    }
}

/// A free loopback TCP port (bound then released; fine for tests that bind it again at once).
func freeLoopbackPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw HarnessError("bind failed: errno \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return UInt16(bigEndian: address.sin_port)
}

/// A blocking HTTP/1.0 GET over loopback (no client library needed): (status, body).
func loopbackGET(port: UInt16, path: String) throws -> (Int, String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw HarnessError("connect to port \(port) failed: errno \(errno)") }
    let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 8192)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        response += buffer[..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let statusLine = text.split(separator: "\r\n").first, statusLine.split(separator: " ").count >= 2,
          let status = Int(statusLine.split(separator: " ")[1])
    else { throw HarnessError("not an HTTP response: \(text.prefix(100))") }
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (status, body)
}
