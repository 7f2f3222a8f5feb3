#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOCore
import NIOPosix
import PortierProtocol
import Synchronization

/// The two listening sockets, opened before anything else starts and
/// accepting only once a service answers behind them.
///
/// Each is either bound here (its file created with the configured mode and
/// group, and removed again at stop) or adopted from systemd's socket
/// activation (`SocketActivation`): then systemd owns the file and keeps the
/// socket open across restarts, and portierd never unlinks it. Until
/// `accept(_:)`, connections wait in the socket's backlog: a client that
/// connects while the database starts is served once it is up, not refused.
public final class SocketListeners: Sendable {
    /// Sets up an accepted connection (the server's handler for that socket).
    public typealias Initializer = @Sendable (any Channel, SocketKind) -> EventLoopFuture<Void>

    struct Listener: Sendable {
        let kind: SocketKind
        let channel: any Channel
        let path: String
        /// Bound here (the file is ours to remove), not adopted from systemd.
        let created: Bool
        /// The `<path>.lock` held while listening (taken for a systemd socket too, when it can be).
        var lockFD: Int32? = nil
        /// The socket file bound here, by device and inode: removed at the stop
        /// only if the path still names it.
        var identity: (dev_t, ino_t)? = nil
    }

    /// The initializer, set once by `accept` (a class: a closure kept directly in
    /// a Mutex gains thunks at every read, see ConnectionPool).
    final class Slot: Sendable {
        let initialize = Mutex<InitializerBox?>(nil)
    }
    final class InitializerBox: Sendable {
        let run: Initializer
        init(_ run: @escaping Initializer) { self.run = run }
    }

    private let listeners: [Listener]
    private let slot: Slot
    private let group: any EventLoopGroup
    private init(listeners: [Listener], slot: Slot, group: any EventLoopGroup) {
        self.listeners = listeners
        self.slot = slot
        self.group = group
    }

    /// Binds (or adopts) both sockets, not accepting yet. Errors name the
    /// socket and the setting behind it.
    public static func open(
        _ configuration: ServerConfiguration, activation: SocketActivation? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) async throws -> SocketListeners {
        let slot = Slot()
        var opened: [Listener] = []
        do {
            for (kind, socket) in [(SocketKind.service, configuration.service), (.support, configuration.support)] {
                let bootstrap = ServerBootstrap(group: group)
                    .serverChannelOption(.backlog, value: 256)
                    .serverChannelOption(.autoRead, value: false)
                    .childChannelOption(.autoRead, value: true)
                    .childChannelInitializer { channel in
                        guard let box = slot.initialize.withLock({ $0 }) else { return channel.close() }
                        return box.run(channel, kind)
                    }
                if let fd = activation?.descriptor(for: kind) {
                    let channel = try await bootstrap.withBoundSocket(fd).get()
                    let path = SocketActivation.path(of: channel) ?? "(inherited)"
                    // Best effort: the lock tells a portierd started by hand on the same
                    // path that this one serves it (systemd's folder may not let us create it).
                    let lockFD = (try? SocketFile.lock(path)) ?? nil
                    opened.append(Listener(kind: kind, channel: channel, path: path, created: false, lockFD: lockFD))
                    logger.info("listening", metadata: ["socket": "\(kind.rawValue)", "path": "\(path)", "from": "systemd"])
                    continue
                }
                let lockFD = try SocketFile.lock(socket.path)
                if SocketFile.isInUse(socket.path) {
                    // Taken over only when nobody holds its lock (or its lock cannot be
                    // read) and nothing answers on it: a socket nobody serves.
                    guard lockFD != nil, !SocketFile.answers(socket.path) else { throw SocketFile.inUse(socket.path) }
                    logger.warning("taking over a socket that accepts connections but no running portierd serves (a process that inherited it from a crashed server?)", metadata: ["path": "\(socket.path)"])
                }
                var keepLock = false
                defer { if !keepLock, let lockFD { Glibc.close(lockFD) } }
                SocketFile.removeStale(socket.path)
                // Bound in a private folder, given its mode and group there, then
                // moved into place: no moment in which the umask's mode lets others in.
                let staging = try SocketFile.stagingFolder(beside: socket.path)
                defer { rmdir(staging) }
                let bound = staging + "/" + (socket.path as NSString).lastPathComponent
                let channel: any Channel
                do {
                    channel = try await bootstrap.bind(unixDomainSocketPath: bound, cleanupExistingSocketFile: false).get()
                } catch {
                    throw ServerError("cannot listen on \(socket.path) (--socket-dir): \(SocketFile.reason(error))")
                }
                do {
                    try SocketFile.setMode(bound, socket.mode)
                    if let group = socket.group { try SocketFile.setGroup(bound, group, option: "--\(kind.rawValue)-socket-group") }
                    try SocketFile.move(bound, to: socket.path)
                } catch {
                    try? await channel.close()
                    unlink(bound)
                    throw error
                }
                opened.append(Listener(kind: kind, channel: channel, path: socket.path, created: true, lockFD: lockFD,
                                       identity: SocketFile.identity(socket.path)))
                keepLock = true
                logger.info("listening", metadata: ["socket": "\(kind.rawValue)", "path": "\(socket.path)"])
            }
        } catch {
            for listener in opened { await Self.close(listener, group: group) }
            throw error
        }
        return SocketListeners(listeners: opened, slot: slot, group: group)
    }

    /// Starts accepting: connections waiting in the backlog, and every later one,
    /// are set up by `initializer`.
    public func accept(_ initializer: @escaping Initializer) {
        let box = InitializerBox(initializer)
        slot.initialize.withLock { $0 = box }
        for listener in listeners { listener.channel.setOption(.autoRead, value: true).whenComplete { _ in } }
    }

    /// Stops accepting and closes this process's listening sockets; removes the
    /// files it created (never one systemd handed over: the next instance
    /// accepts on it).
    public func close() async {
        for listener in listeners { await Self.close(listener, group: group) }
    }

    /// Stops accepting without dropping a connection (R-OPS-1). A socket bound
    /// here is unlinked first, so that nobody new can connect, and what waits
    /// in its backlog is accepted for a moment (closing would reset those); a
    /// socket systemd holds keeps its backlog for the next server. Accepting
    /// then stops, and the listener closes only after the connections it
    /// accepted are set up: NIO closes an accepted connection whose set-up
    /// finishes after its listener closed, unread request and all.
    private static func close(_ listener: Listener, group: any EventLoopGroup) async {
        if listener.created {
            // Only if the path still names this socket (another server may have replaced it).
            if let mine = listener.identity, let now = SocketFile.identity(listener.path), mine == now { SocketFile.removeStale(listener.path) }
            try? await Task.sleep(for: .milliseconds(50))
        }
        try? await listener.channel.setOption(.autoRead, value: false).get()
        // Set-up runs on the connection's loop, then hops back to the listener's: two turns of every loop.
        for _ in 0..<2 {
            for loop in group.makeIterator() { try? await loop.submit {}.get() }
        }
        try? await listener.channel.close()
        // The lock file stays (unlinking it would race with a server starting now).
        if let fd = listener.lockFD { Glibc.close(fd) }
    }
}
