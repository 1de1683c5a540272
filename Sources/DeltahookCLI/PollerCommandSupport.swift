// Shared setup of the commands that act as the poller of a state directory (poll-once, reconcile): the validated
// config with secrets (they build provider adapters), the connection and object named on the command line, and a
// logger that scrubs the config's secrets.
import Config
import Core
import Foundation
import Logging
import Store

enum PollerCLI {
    /// Loads and validates the config, and finds `connection` (and `object`, when given) in it.
    /// - Throws: `ConfigError` (exit 78), ``UsageError`` naming what is configured (exit 64).
    static func load(context: CommandContext, connection: String, object: String?) throws
        -> (config: DeltahookConfig, connection: ConnectionConfig)
    {
        let config = try ConfigLoader.load(path: context.configPath, environment: context.configEnvironment)
        guard let connectionConfig = config.connection(id: connection) else {
            throw UsageError("no connection \"\(connection)\" in \(context.configPath) (configured: "
                + config.connections.map(\.id).joined(separator: ", ") + ")")
        }
        if let object, !connectionConfig.objects.contains(where: { $0.name == object }) {
            throw UsageError("connection \"\(connection)\" has no object \"\(object)\" (configured: "
                + connectionConfig.objects.map(\.name).joined(separator: ", ") + ")")
        }
        return (config, connectionConfig)
    }

    /// What a poller command starts from: ``load(context:connection:object:)`` and ``logger(for:context:)``.
    static func setUp(context: CommandContext, connection: String, object: String?) throws
        -> (config: DeltahookConfig, connection: ConnectionConfig, logger: Logger, scrubber: SecretScrubber)
    {
        let (config, connectionConfig) = try load(context: context, connection: connection, object: object)
        let (logger, scrubber) = self.logger(for: config, context: context)
        return (config, connectionConfig, logger, scrubber)
    }

    /// A stderr logger at the config's level that never prints the config's secrets, nor the tokens the
    /// providers mint (they register them with `context.scrubber`, which the logger carries).
    static func logger(for config: DeltahookConfig, context: CommandContext) -> (Logger, SecretScrubber) {
        config.register(in: context.scrubber)
        let logger = Logger(level: LogLevel(name: config.logLevel.rawValue) ?? .info,
                            sink: StderrSink(variables: context.environment), scrubber: context.scrubber)
        return (logger, context.scrubber)
    }
}

extension PollerCLI {
    /// Joins the cluster of daemons sharing a PostgreSQL store as a short-lived node `<host>-<pid>-<command>`, so
    /// this command's writes are fenced like a daemon's: it polls an object only under its poll lease, and a write
    /// after the lease was taken over is refused (docs/DESIGN.md §2 rule 19). There the poller lock of a state
    /// directory means nothing: other hosts cannot see it. Every write renews the lease, so only a gap longer than
    /// `store.lease_ttl` between two writes loses it. Call ``leave(_:)`` when done: it releases the leases at once.
    static func joinAsTransientNode(_ store: any StateStoring, config: DeltahookConfig, command: String) throws
        -> NodeIdentity
    {
        let host = ProcessInfo.processInfo.hostName
        let pid = ProcessInfo.processInfo.processIdentifier
        let shortHost = host.split(separator: ".").first.map(String.init) ?? host
        let node = NodeIdentity(id: "\(shortHost)-\(pid)-\(command)", host: host, pid: pid,
                                version: DeltahookVersion.current, startedAt: Date())
        // The whole configured object count: this node's fair share then never keeps it from a free lease.
        let objects = config.connections.reduce(0) { $0 + $1.objects.count }
        try store.joinCluster(node, leaseTTL: config.store.leaseTTL, objects: max(1, objects))
        return node
    }

    /// Leaves the cluster; a failure only means the leases run out after `lease_ttl` instead of now.
    static func leave(_ store: any StateStoring, logger: Logger) {
        do {
            try store.leaveCluster()
        } catch {
            logger.warning("could not leave the cluster; this command's poll leases expire after lease_ttl",
                           error: error)
        }
    }
}
