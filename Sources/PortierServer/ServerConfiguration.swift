#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import PortierProtocol
import PortierTransport

/// Transport settings: where the sockets are, who may connect, and the limits
/// that keep one client from hurting the others.
public struct ServerConfiguration: Sendable {
    /// One listening socket.
    public struct Socket: Sendable {
        public var path: String
        /// File mode of the socket file (default 0660 service, 0600 support).
        public var mode: UInt32
        /// If set, only peers with these uids (SO_PEERCRED) are served.
        public var allowedUIDs: Set<UInt32>?
        /// If set, the socket file's group (a name or a numeric gid): with mode
        /// 0660, the members of this group may connect.
        public var group: String?
        /// Which peer holds which capabilities here (R-SEC-1).
        public var capabilities: CapabilityPolicy

        public init(path: String, mode: UInt32, capabilities: CapabilityPolicy, allowedUIDs: Set<UInt32>? = nil, group: String? = nil) {
            self.path = path
            self.mode = mode
            self.capabilities = capabilities
            self.allowedUIDs = allowedUIDs
            self.group = group
        }
    }

    public var service: Socket
    public var support: Socket
    public var frameLimits: FrameLimits
    /// Requests of one connection being worked on at once; past it, the server
    /// stops reading from that connection until replies go out (backpressure).
    public var maximumInFlightPerConnection: Int
    /// Connections open at once on the service socket; past it, `overloaded` and close.
    public var maximumConnections: Int
    /// Connections open at once on the support socket, counted apart so that a
    /// full service socket never locks support out (R-SEC-2).
    public var maximumSupportConnections: Int
    /// A connection with nothing in flight and no traffic for this long is closed.
    public var idleTimeout: TimeAmount
    /// A frame begun but not finished within this time closes the connection.
    public var partialFrameTimeout: TimeAmount
    /// How long a graceful stop waits for in-flight requests.
    public var shutdownGracePeriod: TimeAmount
    /// Replies waiting to be read by a client: past this, the server stops
    /// reading that client's requests; past four times this (replies of
    /// requests already in flight), it closes the connection.
    public var maximumOutputBytes: Int
    /// A client whose replies stay past `maximumOutputBytes` this long (it does
    /// not read them) is cut off.
    public var writeStallTimeout: TimeAmount
    /// Event bytes one watch may have waiting for a client that does not read
    /// them; past it the watch ends with `overloaded` (R-WAT-1).
    public var maximumWatchBacklogBytes = 1 << 20
    /// Requests taking longer are logged (warning) with their id, operation,
    /// environment and duration; so are requests failing with `internal` or
    /// `unavailable`. Other failures are logged at debug level.
    public var slowRequestThreshold: TimeAmount

    public init(
        service: Socket, support: Socket,
        frameLimits: FrameLimits = FrameLimits(),
        maximumInFlightPerConnection: Int = 128,
        maximumConnections: Int = 1024,
        maximumSupportConnections: Int = 64,
        idleTimeout: TimeAmount = .seconds(300),
        partialFrameTimeout: TimeAmount = .seconds(10),
        shutdownGracePeriod: TimeAmount = .seconds(10),
        maximumOutputBytes: Int = 1 << 20,
        writeStallTimeout: TimeAmount = .seconds(10),
        slowRequestThreshold: TimeAmount = .milliseconds(500)
    ) {
        self.service = service
        self.support = support
        self.frameLimits = frameLimits
        self.maximumInFlightPerConnection = maximumInFlightPerConnection
        self.maximumConnections = maximumConnections
        self.maximumSupportConnections = maximumSupportConnections
        self.idleTimeout = idleTimeout
        self.partialFrameTimeout = partialFrameTimeout
        self.shutdownGracePeriod = shutdownGracePeriod
        self.maximumOutputBytes = maximumOutputBytes
        self.writeStallTimeout = writeStallTimeout
        self.slowRequestThreshold = slowRequestThreshold
    }

    /// What each connection keeps to.
    public var connectionSettings: ConnectionSettings {
        ConnectionSettings(
            frameLimits: frameLimits,
            maximumInFlight: maximumInFlightPerConnection,
            maximumOutputBytes: maximumOutputBytes,
            maximumWatchBacklogBytes: maximumWatchBacklogBytes,
            idleTimeout: idleTimeout,
            partialFrameTimeout: partialFrameTimeout,
            writeStallTimeout: writeStallTimeout,
            slowRequestThreshold: slowRequestThreshold
        )
    }

    /// The layout of docs/rules.md §12: `<state>/portier.sock` and `<state>/support.sock`.
    public static func standard(stateDirectory: String) -> ServerConfiguration {
        ServerConfiguration(
            service: Socket(path: stateDirectory + "/portier.sock", mode: 0o660, capabilities: .service(mailerUIDs: [], serverUID: getuid())),
            support: Socket(path: stateDirectory + "/support.sock", mode: 0o600, capabilities: .support())
        )
    }
}
