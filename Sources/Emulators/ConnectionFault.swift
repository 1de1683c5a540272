// Deliberate misbehaviour of an emulated server, for failure-path tests: hang up, reset, truncate, or write bytes
// that are not HTTP. Built on `HTTPServerResponse.takeover`, so the HTTP server (which the daemon's /metrics and
// /healthz listener also uses) carries no fault of its own.
public import HTTPServer

public enum ConnectionFault: Sendable, Equatable {
    /// Close the connection without writing anything.
    case closeWithoutResponse
    /// Reset the connection (RST via SO_LINGER 0) without answering.
    case resetConnection
    /// Send the headers with the full Content-Length but only half the body, then close.
    case truncatedBody
    /// Write exactly these bytes (anything malformed you like), then close.
    case raw([UInt8])

    /// Does the fault on `connection`; `response` is the answer it spoils (`truncatedBody`).
    func perform(on connection: HTTPServerConnection, answering response: HTTPServerResponse,
                 to request: HTTPServerRequest) {
        switch self {
        case .closeWithoutResponse:
            connection.hangUp()
        case .resetConnection:
            connection.resetOnClose()
        case .truncatedBody:
            let bytes = connection.head(of: response, for: request, declaredLength: response.body.count)
                + response.body.prefix(response.body.count / 2)
            _ = connection.write(bytes)
            connection.hangUp()
        case .raw(let bytes):
            _ = connection.write(bytes)
            connection.hangUp()
        }
    }
}

extension HTTPServerResponse {
    /// A 500 that, after `delay`, does `fault` instead of being sent.
    public static func fault(_ fault: ConnectionFault, delay: Duration? = nil) -> HTTPServerResponse {
        HTTPServerResponse(status: 500, delay: delay).spoiled(by: fault)
    }

    /// This answer, spoiled by `fault` (`truncatedBody` sends its head and half its body).
    public func spoiled(by fault: ConnectionFault) -> HTTPServerResponse {
        var spoiled = self
        let original = self
        spoiled.takeover = { connection, request in fault.perform(on: connection, answering: original, to: request) }
        return spoiled
    }
}
