// The one error for a failed system call: which call, on what, and the errno it left (issue 13, item 6).
import Glibc

/// A system call that returned failure. Carries the call's name, what it was acting on (a path, a socket
/// address) when that helps, and `errno` captured right after the call, before anything else can change it.
public struct SystemCallError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The C function, e.g. `"sendto"`.
    public let function: String
    /// What the call acted on (`"/run/systemd/notify"`), or nil.
    public let subject: String?
    /// The `errno` value.
    public let code: Int32

    public init(_ function: String, subject: String? = nil, code: Int32) {
        self.function = function
        self.subject = subject
        self.code = code
    }

    /// Reads `errno` now; call it immediately after the failing call.
    public static func last(_ function: String, subject: String? = nil) -> SystemCallError {
        SystemCallError(function, subject: subject, code: errno)
    }

    /// `strerror(3)` for `code`.
    public var message: String { String(cString: strerror(code)) }

    /// `sendto(/run/systemd/notify): No such file or directory (errno 2)`.
    public var description: String {
        let call = subject.map { "\(function)(\($0))" } ?? function
        return "\(call): \(message) (errno \(code))"
    }
}
