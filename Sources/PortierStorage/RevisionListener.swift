import Foundation
import Logging
import PortierDomain
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Listens for committed revisions (NOTIFY on `Schema.revisionChannel`) on a
/// dedicated connection and thread, and reconnects when that connection is lost.
///
/// Notifications are hints: they are lost while disconnected, so after every
/// (re)connect `onConnected` runs and the caller compares revisions itself.
/// The LISTEN connection must reach PostgreSQL directly (not through a
/// transaction-mode pooler).
public final class RevisionListener: Sendable {
    private let conninfo: String
    private let logger: Logger
    private let onRevision: @Sendable (RevisionNotice) -> Void
    private let onConnected: @Sendable () -> Void
    private let stopped = Atomic<Bool>(false)
    private let backend = Atomic<Int32>(0)
    private let finished = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let done = Atomic<Bool>(false)

    public init(conninfo: String, logger: Logger, onRevision: @escaping @Sendable (RevisionNotice) -> Void, onConnected: @escaping @Sendable () -> Void) {
        self.conninfo = conninfo
        self.logger = logger
        self.onRevision = onRevision
        self.onConnected = onConnected
    }

    /// The server process of the listening connection (0 while disconnected); tests kill it.
    public var backendPID: Int32 { backend.load(ordering: .relaxed) }

    /// Starts the listening thread.
    public func start() {
        let thread = Thread { [self] in
            run()
            done.store(true, ordering: .relaxed)
            finished.withLock { $0?.resume(); $0 = nil }
        }
        thread.name = "portier-listener"
        thread.start()
    }

    /// Stops listening; returns once the thread has ended (within about a second).
    public func stop() async {
        stopped.store(true, ordering: .relaxed)
        await withCheckedContinuation { continuation in
            let already = finished.withLock { slot -> Bool in
                if done.load(ordering: .relaxed) { return true }
                slot = continuation
                return false
            }
            if already { continuation.resume() }
        }
    }

    private func run() {
        var backoff = 0.05
        while !stopped.load(ordering: .relaxed) {
            do {
                let connection = try PostgresConnection(conninfo: conninfo)
                try connection.execute("LISTEN \(Schema.revisionChannel)")
                backend.store(connection.backendPID, ordering: .relaxed)
                backoff = 0.05
                onConnected()
                try listen(on: connection)
            } catch {
                backend.store(0, ordering: .relaxed)
                guard !stopped.load(ordering: .relaxed) else { break }
                logger.warning("revision listener disconnected; reconnecting", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: backoff)
                backoff = min(backoff * 2, 2)
            }
        }
    }

    private func listen(on connection: PostgresConnection) throws {
        while !stopped.load(ordering: .relaxed) {
            var fd = pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&fd, 1, 250)
            if ready < 0, errno != EINTR { throw DatabaseError(kind: .connection, sqlState: nil, message: "poll failed: \(errno)") }
            guard ready > 0 else { continue }
            for (_, payload) in try connection.notifications() {
                if let notice = RevisionNotice(payload) { onRevision(notice) }
            }
            if !connection.isHealthy { throw DatabaseError(kind: .connection, sqlState: nil, message: "listener connection lost") }
        }
    }
}

/// One revision notification: `env_<n>:<revision> <instance>`, the instance
/// being the committing pool's `ConnectionPool.instance` (empty when the
/// commit came from elsewhere, e.g. a tool writing with plain SQL).
public struct RevisionNotice: Sendable, Equatable {
    public let token: RevisionToken
    public let instance: String

    public init?(_ payload: String) {
        let parts = payload.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard let token = RevisionToken(String(parts[0])) else { return nil }
        self.token = token
        instance = parts.count > 1 ? String(parts[1]) : ""
    }
}
