// The optional listener (`http.listen`, loopback by default): `GET /metrics` (Prometheus text 0.0.4) and
// `GET /healthz` (200 "ok" while the liveness probe passes, 503 with the reason otherwise). docs/DESIGN.md §8.
import Config
import Core
import HTTPServer
import Logging

final class HealthServer: Service {
    let name = "http"
    let server: HTTPServer
    let logger: Logger
    private let stop = Doorbell()

    /// Binds now, so a taken port fails the start-up before READY=1.
    /// `hints`: also answer `POST /hooks/…` here (no `hints.listen`); the body cap is then the hints' 1 MiB.
    init(listen: HTTPListenConfig, registry: MetricsRegistry, state: DaemonState, logger: Logger,
         hints: HintGate? = nil) throws {
        self.logger = logger
        server = try HTTPServer(host: listen.host, port: listen.port,
                                limits: .init(maxHeaderBytes: 16 << 10,
                                              maxBodyBytes: hints == nil ? 1 << 10 : HintGate.maxBodyBytes,
                                              maxConnections: 32, idleTimeout: .seconds(30)),
                                handling: .sync { request in
                                    if let hints, HintGate.handles(request.path) { return hints.answer(request) }
                                    return HealthServer.answer(request, registry: registry, state: state)
                                })
    }

    static func answer(_ request: HTTPServerRequest, registry: MetricsRegistry, state: DaemonState)
        -> HTTPServerResponse
    {
        guard request.method == "GET" || request.method == "HEAD" else {
            return HTTPServerResponse(status: 405, headers: [("Allow", "GET, HEAD")], body: Array("use GET\n".utf8))
        }
        switch request.path {
        case "/metrics":
            return HTTPServerResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                                      body: Array(registry.render().utf8))
        case "/healthz":
            return state.isAlive ? .text("ok\n") : .text("unhealthy: \(state.livenessReason)\n", status: 503)
        default:
            return .text("not found; try /metrics or /healthz\n", status: 404)
        }
    }

    func run() async throws {
        logger.info("metrics and health listener started", ["LISTEN": server.baseURL])
        await stop.wait()
        server.stop()
    }

    func shutdown(deadline: ContinuousClock.Instant) async { stop.close() }
}

/// `hints.listen`: push hints on a listener of their own, so `/metrics` on `http.listen` can stay private while
/// hints come through a reverse proxy. Answers only `POST /hooks/…` (docs/DESIGN.md §6).
final class HintServer: Service {
    let name = "hints"
    let server: HTTPServer
    let logger: Logger
    private let stop = Doorbell()

    /// Binds now, so a taken port fails the start-up before READY=1.
    init(listen: HTTPListenConfig, gate: HintGate, logger: Logger) throws {
        self.logger = logger
        server = try HTTPServer(host: listen.host, port: listen.port,
                                limits: .init(maxHeaderBytes: 16 << 10, maxBodyBytes: HintGate.maxBodyBytes,
                                              maxConnections: 64, idleTimeout: .seconds(30)),
                                handling: .sync { request in
                                    guard HintGate.handles(request.path) else {
                                        return .text("not found; POST /hooks/{connection}[/{object}]\n", status: 404)
                                    }
                                    return gate.answer(request)
                                })
    }

    func run() async throws {
        logger.info("push hint listener started", ["LISTEN": server.baseURL])
        await stop.wait()
        server.stop()
    }

    func shutdown(deadline: ContinuousClock.Instant) async { stop.close() }
}
