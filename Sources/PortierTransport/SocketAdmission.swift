#if canImport(Glibc)
import Glibc
#endif
import PortierProtocol
import Synchronization

/// Who may hold a connection on one socket: how many at once, which peers
/// (SO_PEERCRED uids), and what each may ask (`CapabilityPolicy`, R-SEC-1).
/// Each socket has its own, so a full service socket never locks support out
/// (R-SEC-2). Shared by the socket's connections on every event loop.
public final class SocketAdmission: Sendable {
    public let socket: SocketKind
    public let maximumConnections: Int
    private let open = Atomic<Int>(0)
    /// Who may connect and what they may ask: replaced by a reload (`update`).
    private let rules: Mutex<Rules>

    struct Rules: Sendable {
        var allowedUIDs: Set<UInt32>?
        var policy: CapabilityPolicy
    }

    public init(socket: SocketKind, maximumConnections: Int, allowedUIDs: Set<UInt32>? = nil, policy: CapabilityPolicy? = nil) {
        self.socket = socket
        self.maximumConnections = maximumConnections
        rules = Mutex(Rules(allowedUIDs: allowedUIDs, policy: policy ?? (socket == .support ? .support() : .service(mailerUIDs: [], serverUID: getuid()))))
    }

    /// If set, only peers with these uids are served.
    public var allowedUIDs: Set<UInt32>? { rules.withLock { $0.allowedUIDs } }
    public var policy: CapabilityPolicy { rules.withLock { $0.policy } }

    /// New rules for new connections; open ones re-check theirs when they get
    /// `AccessRulesChanged` (the server sends it after calling this).
    public func update(allowedUIDs: Set<UInt32>?, policy: CapabilityPolicy) {
        rules.withLock { $0 = Rules(allowedUIDs: allowedUIDs, policy: policy) }
    }

    /// Takes a slot unless the limit is reached.
    func tryEnter() -> Bool {
        while true {
            let current = open.load(ordering: .relaxed)
            guard current < maximumConnections else { return false }
            if open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed).exchanged { return true }
        }
    }

    func leave() { open.subtract(1, ordering: .relaxed) }

    /// Connections holding a slot now.
    public var current: Int { open.load(ordering: .relaxed) }

    /// Whether a peer may use this socket (unknown credentials only without an allow-list).
    func allows(_ peer: PeerCredentials?) -> Bool {
        guard let allowedUIDs else { return true }
        return peer.map { allowedUIDs.contains($0.uid) } ?? false
    }
}

/// Requests being worked on over all connections, shared by all event loops.
public final class InFlightCounter: Sendable {
    private let value = Atomic<Int>(0)
    public init() {}
    func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    public var current: Int { value.load(ordering: .relaxed) }
}
