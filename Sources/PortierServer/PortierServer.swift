import Logging
import NIOCore
import NIOPosix
import PortierProtocol
import PortierService
import PortierTransport
import ServiceLifecycle
import Synchronization

/// The two Unix sockets of SPEC §12 in front of a `PortierService`.
///
/// Runs as a swift-service-lifecycle `Service`: on graceful shutdown it stops
/// accepting, lets every connection finish its in-flight requests, then returns.
public final class PortierServer: Service, Sendable {
    public let configuration: ServerConfiguration
    private let service: PortierService
    private let group: any EventLoopGroup
    private let logger: Logger
    /// Each socket counts its own connections (R-SEC-2: support keeps room).
    private let serviceAdmission: SocketAdmission
    private let supportAdmission: SocketAdmission
    private let inFlight = InFlightCounter()
    private let state = Mutex<State>(State())
    /// Requests, latency, connections, pool and index, in Prometheus form.
    public let metrics = ServerMetrics()

    private struct State {
        var listeners: [any Channel] = []
        var connections: [ObjectIdentifier: any Channel] = [:]
    }

    public init(configuration: ServerConfiguration, service: PortierService, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        self.configuration = configuration
        self.service = service
        self.group = group
        self.logger = logger
        serviceAdmission = SocketAdmission(
            socket: .service, maximumConnections: configuration.maximumConnections, allowedUIDs: configuration.service.allowedUIDs,
            policy: configuration.service.capabilities)
        supportAdmission = SocketAdmission(
            socket: .support, maximumConnections: configuration.maximumSupportConnections, allowedUIDs: configuration.support.allowedUIDs,
            policy: configuration.support.capabilities)
    }

    /// The Prometheus text exposition of this server's metrics.
    public func metricsText() -> String {
        metrics.render(service: service, connections: openConnections, inFlight: inFlight.current)
    }

    /// Binds both sockets. Refuses when a running server already answers on one.
    public func start() async throws {
        for (socket, admission) in [(configuration.service, serviceAdmission), (configuration.support, supportAdmission)] {
            if SocketFile.isInUse(socket.path) {
                throw ServerError("\(socket.path) is in use by a running server; stop it first or choose another --state-dir")
            }
            SocketFile.removeStale(socket.path)
            let channel = try await bootstrap(admission)
                .bind(unixDomainSocketPath: socket.path, cleanupExistingSocketFile: false).get()
            try SocketFile.setMode(socket.path, socket.mode)
            if let group = socket.group { try SocketFile.setGroup(socket.path, group) }
            state.withLock { $0.listeners.append(channel) }
            logger.info("listening", metadata: ["socket": "\(admission.socket.rawValue)", "path": "\(socket.path)"])
        }
    }

    /// Stops accepting, drains connections (bounded by the grace period), removes the socket files.
    public func stop() async {
        let (listeners, connections) = state.withLock { s in (s.listeners, Array(s.connections.values)) }
        for listener in listeners { try? await listener.close() }
        for socket in [configuration.service, configuration.support] { SocketFile.removeStale(socket.path) }
        for connection in connections { connection.pipeline.fireUserInboundEventTriggered(DrainEvent()) }
        let deadline = ContinuousClock.now + .nanoseconds(configuration.shutdownGracePeriod.nanoseconds)
        for connection in connections {
            while connection.isActive, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
            if connection.isActive { try? await connection.close() }
        }
        state.withLock { $0.listeners = [] }
    }

    /// Service: serve until graceful shutdown is requested.
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await stop()
        logger.info("server stopped")
    }

    /// Open connections now, over both sockets.
    public var openConnections: Int { serviceAdmission.current + supportAdmission.current }

    /// Requests being worked on now, over all connections.
    public var requestsInFlight: Int { inFlight.current }

    private func bootstrap(_ admission: SocketAdmission) -> ServerBootstrap {
        let settings = configuration.connectionSettings
        let service = self.service
        let inFlight = self.inFlight
        let logger = self.logger
        let metrics = self.metrics
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.autoRead, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: configuration.maximumOutputBytes / 2, high: configuration.maximumOutputBytes))
            .childChannelInitializer { [weak self] channel in
                self?.track(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionHandler(
                            responder: service, admission: admission, settings: settings, inFlightTotal: inFlight,
                            stats: metrics.requests(on: channel.eventLoop), metrics: self, logger: logger
                        )
                    )
                }
            }
    }

    private func track(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        state.withLock { $0.connections[key] = channel }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.state.withLock { $0.connections.removeValue(forKey: key) }
        }
    }
}

extension PortierServer {
    /// Fails with a clear message if a running server answers on either socket.
    /// Call before starting anything that a second server must not touch.
    public static func ensureSocketsAvailable(_ configuration: ServerConfiguration) throws {
        for socket in [configuration.service, configuration.support] where SocketFile.isInUse(socket.path) {
            throw ServerError("\(socket.path) is in use by a running server; stop it first or choose another --state-dir")
        }
    }
}

/// `support.metrics` reads this server's metrics through the request's context.
extension PortierServer: MetricsSource {}
