// The loopback HTTP listener the stateful emulators share (GitHub, NetSuite, Zoho Books), written once because the
// reasons behind its shape apply to all of them.
import HTTPServer
import Synchronization

/// One emulator's server on 127.0.0.1 with an ephemeral port. Its handler holds the emulator weakly: the emulator
/// owns the listener, so a strong reference would keep both alive (and the port open) after a test dropped the
/// emulator; once it is gone requests get a 503. The emulator is attached after its init has set every property —
/// `self` cannot be captured before — and a request that arrives in between gets the same 503.
final class EmulatorListener<Emulator: AnyObject & Sendable>: Sendable {
    private final class Box: Sendable {
        private struct Reference: @unchecked Sendable { weak var value: Emulator? }
        private let reference = Mutex<Reference?>(nil)
        var emulator: Emulator? { reference.withLock { $0?.value } }
        func set(_ emulator: Emulator) { reference.withLock { $0 = Reference(value: emulator) } }
    }

    private let box: Box
    private let server: Mutex<HTTPServer?>
    /// `http://127.0.0.1:PORT`.
    let baseURL: String

    init(handle: @escaping @Sendable (Emulator, HTTPServerRequest) async -> HTTPServerResponse) throws {
        let box = Box()
        let http = try HTTPServer(handler: { request in
            guard let emulator = box.emulator else { return .text("emulator gone", status: 503) }
            return await handle(emulator, request)
        })
        self.box = box
        server = Mutex(http)
        baseURL = http.baseURL
    }

    /// Starts answering for `emulator` (call at the end of its init).
    func attach(_ emulator: Emulator) { box.set(emulator) }

    /// Stops the server. Safe to call twice.
    func stop() {
        let http = server.withLock { s -> HTTPServer? in
            defer { s = nil }
            return s
        }
        http?.stop()
    }
}
