import Logging
import NIOCore
import NIOPosix
import PortierProtocol
import PortierService
import PortierTransport
import ServiceLifecycle
import Synchronization

/// The two Unix sockets of docs/rules.md §12 in front of a `PortierService`.
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
    /// Repeated warnings of all connections summarised per second (R-SEC-5).
    private let logThrottle = LogThrottle()
    private let state: Mutex<State>
    /// Requests, latency, connections, pool and index, in Prometheus form.
    public let metrics = ServerMetrics()

    private struct State {
        /// The connection limits new connections get (a reload replaces them).
        var connectionSettings: ConnectionSettings
        var listeners: SocketListeners?
        var started = false
        /// Stopping: a connection accepted from now on drains as soon as it is set up.
        var draining = false
        var connections: [ObjectIdentifier: any Channel] = [:]
    }

    /// `listeners`: sockets opened before the service was ready (portierd opens
    /// them first, so a port or permission problem costs nothing to find); nil:
    /// `start()` binds them.
    public init(
        configuration: ServerConfiguration, service: PortierService, listeners: SocketListeners? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) {
        self.configuration = configuration
        state = Mutex(State(connectionSettings: configuration.connectionSettings, listeners: listeners))
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

    /// Starts accepting on the listening sockets: those opened before (see
    /// `SocketListeners`), or both bound now.
    public func start() async throws {
        guard !state.withLock({ s in defer { s.started = true }; return s.started }) else { return }
        let listeners: SocketListeners
        if let opened = state.withLock({ $0.listeners }) {
            listeners = opened
        } else {
            listeners = try await SocketListeners.open(configuration, group: group, logger: logger)
            state.withLock { $0.listeners = listeners }
        }
        let initializers = [SocketKind.service: initializer(serviceAdmission), .support: initializer(supportAdmission)]
        listeners.accept { channel, kind in initializers[kind]!(channel) }
    }

    /// Stops accepting (the sockets' files are removed unless systemd owns them),
    /// drains every connection, those accepted during the stop included
    /// (R-OPS-1), bounded by the grace period.
    public func stop() async {
        let (listeners, open) = state.withLock { s in
            s.draining = true
            return (s.listeners, Array(s.connections.values))
        }
        for connection in open { connection.pipeline.fireUserInboundEventTriggered(DrainEvent()) }
        await listeners?.close()
        // A connection accepted just before the close is set up by a task already
        // queued on its event loop: one turn of every loop, and it is tracked
        // (and draining) before the wait below can see an empty list.
        for loop in group.makeIterator() { try? await loop.submit {}.get() }
        let deadline = ContinuousClock.now + .nanoseconds(configuration.shutdownGracePeriod.nanoseconds)
        while ContinuousClock.now < deadline, state.withLock({ !$0.connections.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        for connection in state.withLock({ Array($0.connections.values) }) { try? await connection.close() }
    }

    /// Service: serve until graceful shutdown is requested.
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await stop()
        logger.info("server stopped")
    }

    /// A reload: new connection limits (for connections accepted from now on)
    /// and new access rules per socket, which open connections check at once
    /// (`AccessRulesChanged`: a peer that lost access or a capability is cut off).
    public func reconfigure(connections settings: ConnectionSettings, service: ServerConfiguration.Socket, support: ServerConfiguration.Socket) {
        serviceAdmission.update(allowedUIDs: service.allowedUIDs, policy: service.capabilities)
        supportAdmission.update(allowedUIDs: support.allowedUIDs, policy: support.capabilities)
        let connections = state.withLock { s in
            s.connectionSettings = settings
            return Array(s.connections.values)
        }
        for connection in connections { connection.pipeline.fireUserInboundEventTriggered(AccessRulesChanged()) }
    }

    /// Open connections now, over both sockets.
    public var openConnections: Int { serviceAdmission.current + supportAdmission.current }

    /// Requests being worked on now, over all connections.
    public var requestsInFlight: Int { inFlight.current }

    /// Sets up one accepted connection of a socket.
    private func initializer(_ admission: SocketAdmission) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        let (service, inFlight, logger, metrics) = (self.service, self.inFlight, self.logger, self.metrics)
        return { [weak self] channel in
            guard let self else { return channel.close() }
            let settings = self.state.withLock { $0.connectionSettings }
            let draining = self.track(channel)
            return channel.eventLoop.makeCompletedFuture {
                // Per connection, so that a reload's output bound applies to new connections.
                try channel.syncOptions?.setOption(.writeBufferWaterMark, value: .init(low: settings.maximumOutputBytes / 2, high: settings.maximumOutputBytes))
                try channel.pipeline.syncOperations.addHandler(
                    ConnectionHandler(
                        responder: service, admission: admission, settings: settings, inFlightTotal: inFlight,
                        stats: metrics.requests(on: channel.eventLoop), metrics: self, logger: logger, logThrottle: self.logThrottle
                    )
                )
                if draining { channel.pipeline.fireUserInboundEventTriggered(DrainEvent()) }
            }
        }
    }

    /// Returns whether the server is stopping (the connection must drain at once).
    private func track(_ channel: any Channel) -> Bool {
        let key = ObjectIdentifier(channel)
        let draining = state.withLock { s in
            s.connections[key] = channel
            return s.draining
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.state.withLock { $0.connections.removeValue(forKey: key) }
        }
        return draining
    }
}

/// `support.metrics` reads this server's metrics through the request's context.
extension PortierServer: MetricsSource {}
