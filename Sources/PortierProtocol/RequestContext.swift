/// Which socket a request arrived on: the support socket alone accepts `support.*`.
public enum SocketKind: String, Sendable {
    case service, support
}

/// Credentials of the peer process, read once per connection with SO_PEERCRED.
public struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    public var description: String { "pid=\(pid) uid=\(uid) gid=\(gid)" }
}

/// What the transport knows about a request's origin.
public struct RequestContext: Sendable {
    public let socket: SocketKind
    public let peer: PeerCredentials?
    /// What the peer may ask (R-SEC-1), decided at admission; the transport has
    /// checked each request against it before the request gets here.
    public let capabilities: Capabilities
    /// The connection's number in this process: requests of one connection
    /// share their turns at the password hasher (R-SEC-2).
    public let connection: UInt64
    /// The server's metrics, for `support.metrics`: handed down with the
    /// request by whoever owns them (the server), so the service never calls
    /// up into the transport.
    public let metrics: (any MetricsSource)?
    /// Where this connection's watch frames go (nil: no watches here).
    public let watchOutlet: (any WatchOutlet)?

    public init(
        socket: SocketKind, peer: PeerCredentials?, capabilities: Capabilities = [.check, .manage, .mail, .support],
        connection: UInt64 = 0, metrics: (any MetricsSource)? = nil, watchOutlet: (any WatchOutlet)? = nil
    ) {
        self.socket = socket
        self.peer = peer
        self.capabilities = capabilities
        self.connection = connection
        self.metrics = metrics
        self.watchOutlet = watchOutlet
    }
}

/// What renders the Prometheus text of a running server.
public protocol MetricsSource: AnyObject, Sendable {
    func metricsText() -> String
}

