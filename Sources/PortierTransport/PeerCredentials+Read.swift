#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import PortierProtocol

/// The layout of Linux's `struct ucred` (Glibc's is not visible from Swift).
struct UCred: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

extension Channel {
    /// The peer's pid/uid/gid from SO_PEERCRED, or nil where it cannot be read.
    public func peerCredentials() -> EventLoopFuture<PeerCredentials?> {
        #if os(Linux)
        guard let provider = self as? SocketOptionProvider else { return eventLoop.makeSucceededFuture(nil) }
        let future: EventLoopFuture<UCred> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED)
        )
        return future.map { Optional(PeerCredentials(pid: $0.pid, uid: $0.uid, gid: $0.gid)) }
            .recover { _ in nil }
        #else
        return eventLoop.makeSucceededFuture(nil)
        #endif
    }
}
