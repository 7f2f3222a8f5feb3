#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import PortierProtocol

/// Listening sockets handed over by systemd (sd_listen_fds(3)): `LISTEN_PID`
/// names this process, `LISTEN_FDS` counts descriptors from 3 on, and
/// `LISTEN_FDNAMES` names them (`service`, `support`: the `FileDescriptorName=`
/// of Deploy/systemd's socket units). Without names, one descriptor is the
/// service socket and a second the support socket. A socket not handed over
/// is bound by portierd itself.
///
/// Parsed by hand: the protocol is three variables, and libsystemd is not
/// worth a dependency for them.
public struct SocketActivation: Sendable, Equatable {
    public var service: Int32?
    public var support: Int32?

    public init(service: Int32? = nil, support: Int32? = nil) {
        self.service = service
        self.support = support
    }

    func descriptor(for kind: SocketKind) -> Int32? { kind == .service ? service : support }

    /// The first descriptor systemd passes (SD_LISTEN_FDS_START).
    static let firstDescriptor: Int32 = 3

    /// The sockets in `environment` meant for process `pid`; nil when there are
    /// none (no `LISTEN_PID`, or another process's). Malformed values are errors.
    public static func parse(_ environment: [String: String], pid: Int32) throws(ServerError) -> SocketActivation? {
        guard let listenPID = environment["LISTEN_PID"], Int32(listenPID) == pid else { return nil }
        guard let count = environment["LISTEN_FDS"].flatMap(Int32.init), count > 0, count <= 2 else {
            throw ServerError("LISTEN_FDS must be 1 or 2 (the service and support sockets); got \(environment["LISTEN_FDS"] ?? "nothing")")
        }
        let names: [String]
        if let text = environment["LISTEN_FDNAMES"], !text.isEmpty {
            names = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard names.count == count else { throw ServerError("LISTEN_FDNAMES names \(names.count) sockets but LISTEN_FDS is \(count)") }
        } else {
            names = Array(["service", "support"].prefix(Int(count)))
        }
        var activation = SocketActivation()
        for (offset, name) in names.enumerated() {
            let fd = firstDescriptor + Int32(offset)
            switch name {
            case "service" where activation.service == nil: activation.service = fd
            case "support" where activation.support == nil: activation.support = fd
            default: throw ServerError("LISTEN_FDNAMES: \(name) is not a socket of portierd (service, support), or named twice")
            }
        }
        return activation
    }

    /// The sockets systemd passed to this process, checked to be listening Unix
    /// stream sockets and marked close-on-exec (the embedded PostgreSQL must
    /// not inherit them); the variables are removed, as sd_listen_fds(3) does.
    public static func fromEnvironment(_ environment: [String: String]) throws(ServerError) -> SocketActivation? {
        // Removed whatever happens next, as sd_listen_fds(3) does: children never see them.
        defer { for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(name) } }
        guard let activation = try parse(environment, pid: getpid()) else { return nil }
        for fd in [activation.service, activation.support].compactMap({ $0 }) {
            var type: Int32 = 0, listening: Int32 = 0, domain: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) == 0, domain == AF_UNIX else {
                throw ServerError("descriptor \(fd) from systemd is not a Unix socket (the socket unit needs ListenStream=/path): peers are known by their credentials")
            }
            size = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0, type == Int32(SOCK_STREAM.rawValue) else {
                throw ServerError("descriptor \(fd) from systemd is not a stream socket")
            }
            size = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0, listening == 1 else {
                throw ServerError("descriptor \(fd) from systemd is not listening (the socket unit needs ListenStream=, Accept=no)")
            }
            _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
        }
        return activation
    }

    /// The file path a listening channel is bound to, for the log.
    static func path(of channel: any Channel) -> String? {
        channel.localAddress?.pathname
    }
}
