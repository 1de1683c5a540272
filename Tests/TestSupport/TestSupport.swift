// Shared helpers for tests: temporary directories, the built `deltahook` binary, running it with a timeout,
// and bounded waiting for conditions. Nothing here sleeps unboundedly or leaves processes behind.
public import Foundation
import Glibc

/// A fresh directory under the system temp dir, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "deltahook-test") throws {
        let base = NSTemporaryDirectory() + "/\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        path = base
    }

    /// `path/name`.
    public func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        let target = file(name)
        try Data(text.utf8).write(to: URL(fileURLWithPath: target))
        return target
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Where the package's build output is, found from a test source file's `#filePath`.
public enum BuiltBinary {
    /// `.build/debug/deltahook` of the package containing `filePath` (walks up to `Package.swift`).
    public static func deltahook(filePath: String = #filePath) -> String? {
        var url = URL(fileURLWithPath: filePath).deletingLastPathComponent()
        for _ in 0..<8 {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                for candidate in [".build/debug/deltahook", ".build/x86_64-unknown-linux-gnu/debug/deltahook",
                                  ".build/aarch64-unknown-linux-gnu/debug/deltahook"] {
                    let path = url.appendingPathComponent(candidate).path
                    if FileManager.default.isExecutableFile(atPath: path) { return path }
                }
                return nil
            }
            url = url.deletingLastPathComponent()
        }
        return nil
    }
}

/// The outcome of a finished (or killed) process.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// True when the timeout killed it.
    public var timedOut: Bool
}

/// Runs executables with captured output and a hard timeout.
public enum ProcessRunner {
    /// Runs `executable` with `arguments`; SIGKILLs it after `timeout`.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           timeout: Duration = .seconds(60)) async throws -> ProcessResult {
        let running = try RunningProcess(executable, arguments, environment: environment)
        return await running.wait(timeout: timeout)
    }
}

/// A started process whose output goes to temp files (pipes could fill up and block it).
public final class RunningProcess: @unchecked Sendable {
    public let process: Process
    private let outPath: String
    private let errPath: String

    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws {
        let id = UUID().uuidString.prefix(8)
        outPath = NSTemporaryDirectory() + "/deltahook-proc-\(id).out"
        errPath = NSTemporaryDirectory() + "/deltahook-proc-\(id).err"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Output written so far.
    public var stdout: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

    public func kill(signal: Int32 = SIGKILL) {
        if process.isRunning { Glibc.kill(process.processIdentifier, signal) }
    }

    /// Waits for exit, killing the process after `timeout`.
    public func wait(timeout: Duration) async -> ProcessResult {
        var timedOut = false
        let finished = await Wait.until(timeout: timeout) { !self.process.isRunning }
        if !finished {
            timedOut = true
            kill()
            _ = await Wait.until(timeout: .seconds(5)) { !self.process.isRunning }
        }
        let result = ProcessResult(status: process.isRunning ? -1 : process.terminationStatus, stdout: stdout,
                                   stderr: stderr, timedOut: timedOut)
        try? FileManager.default.removeItem(atPath: outPath)
        try? FileManager.default.removeItem(atPath: errPath)
        return result
    }
}

/// Bounded polling for conditions (never an open-ended sleep): the one polling helper of the tests.
public enum Wait {
    /// Polls `condition` every `interval` until it holds (true) or `timeout` passes (false). Sleeps with
    /// `Task.sleep`, never blocking a thread of the cooperative pool: on two cores a blocked pool starves every
    /// other test's emulators and deadlines at once.
    public static func until(timeout: Duration, interval: Duration = .milliseconds(20),
                             _ condition: () async throws -> Bool) async rethrows -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: interval)
        }
        return try await condition()
    }

    /// ``until(timeout:interval:_:)`` for synchronous callers only (a test that is not `async`); blocks the thread.
    public static func blocking(timeout: Duration, interval: Duration = .milliseconds(20),
                                _ condition: () throws -> Bool) rethrows -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            if try condition() { return true }
            let (seconds, attoseconds) = interval.components
            usleep(UInt32(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
        }
        return try condition()
    }
}
