import NIOCore
import PortierProtocol
import Synchronization

/// A connection's `WatchOutlet`: hops each frame the service pushes onto the
/// connection's event loop, where the handler writes or queues it.
final class ConnectionWatchOutlet: WatchOutlet {
    private let target: NIOLoopBound<(ConnectionHandler, ChannelHandlerContext)>
    private let loop: any EventLoop
    private let closed = Atomic<Bool>(false)

    var isOpen: Bool { !closed.load(ordering: .acquiring) }

    /// The connection is gone (set before the service is told to drop its watches).
    func close() { closed.store(true, ordering: .releasing) }

    init(handler: ConnectionHandler, context: ChannelHandlerContext) {
        loop = context.eventLoop
        target = NIOLoopBound((handler, context), eventLoop: context.eventLoop)
    }

    func send(_ frames: [(id: RequestID, event: [UInt8])]) {
        loop.execute { [target] in
            let (handler, context) = target.value
            handler.watchEvents(frames, context: context)
        }
    }

    func finish(_ id: RequestID, error: PortierError?) {
        loop.execute { [target] in
            let (handler, context) = target.value
            handler.watchFinished(id, error: error, context: context)
        }
    }
}

/// A watch whose `watch` reply has not gone out yet: what arrived for it meanwhile.
struct OpeningWatch {
    var frames: [[UInt8]] = []
    var bytes = 0
    /// Ended before it opened: `.some(nil)` quietly, `.some(error)` with a frame.
    var finished: PortierError??
}

extension ConnectionHandler {
    /// Whether the request is a `watch` that must be refused at once: its id is
    /// that of a watch open or opening on this connection (frames could not be
    /// told apart).
    func duplicateWatch(_ request: Request) -> Bool {
        request.op == "watch" && (watches[request.id] != nil || openingWatches[request.id] != nil)
    }

    /// A `watch` request goes to the service: frames for it wait for its reply.
    func watchRequested(_ request: Request) {
        if request.op == "watch" { openingWatches[request.id] = OpeningWatch() }
    }

    /// Right after a reply was written (before any close): a successful
    /// `watch` reply opens the watch and writes what waited for it; during a
    /// graceful stop the watch ends at once with `unavailable`. A watch that
    /// cannot open (the connection is closing) is dropped from the service.
    func watchReplied(_ reply: Reply, request: Request?, context: ChannelHandlerContext) {
        guard let request, request.op == "watch", let opening = openingWatches.removeValue(forKey: request.id) else { return }
        guard case .success = reply.outcome else { return }
        let id = request.id
        switch machine.state {
        case .serving, .draining, .closing(.drained):
            watches[id] = WatchBacklog(limit: settings.maximumWatchBacklogBytes)
            machine.watchesChanged(open: watches.count)
            for frame in opening.frames { watchEvent(id, event: frame, context: context, opening: true) }
            if let finished = opening.finished {
                watchFinished(id, error: finished, context: context)
                // Ended here (its frames overflowed before the reply) or by the
                // service: either way the service must not keep it.
                responder.watchesEnded(connection: number, ids: [id])
            } else if machine.state != .serving {
                endWatch(id, Self.stopping, context: context)
                responder.watchesEnded(connection: number, ids: [id])
            }
        default:
            responder.watchesEnded(connection: number, ids: [id])
        }
    }

    static let stopping = PortierError.unavailable("the server is stopping; watch again elsewhere or later")

    /// A batch of event frames: written one by one (each write counts
    /// against the output bound at once, so the backlog takes over mid-batch),
    /// flushed once.
    func watchEvents(_ frames: [(id: RequestID, event: [UInt8])], context: ChannelHandlerContext) {
        var wrote = false
        for frame in frames { wrote = watchEvent(frame.id, event: frame.event, context: context, flush: false) || wrote }
        if wrote { context.flush() }
    }

    /// An event frame for watch `id` (`opening`: one that waited for the
    /// reply); true if it was written and `flush` was false.
    @discardableResult
    func watchEvent(_ id: RequestID, event: [UInt8], context: ChannelHandlerContext, opening: Bool = false, flush: Bool = true) -> Bool {
        guard machine.state == .serving || machine.state == .draining || opening else { return false }
        if openingWatches[id] != nil {
            // Bounded like an open watch's backlog: past it the watch ends as it opens.
            if openingWatches[id]!.finished == nil {
                openingWatches[id]!.bytes += event.count
                if openingWatches[id]!.bytes > settings.maximumWatchBacklogBytes {
                    openingWatches[id]!.frames = []
                    openingWatches[id]!.finished = .some(Self.overloaded)
                } else {
                    openingWatches[id]!.frames.append(event)
                }
            }
            return false
        }
        guard watches[id] != nil else { return false }  // cancelled or ended: drop
        switch watches[id]!.arrived(event, writable: context.channel.isWritable) {
        case .write:
            var out = context.channel.allocator.buffer(capacity: event.count + 32)
            out.writeEventFrame(id, event: event)
            if flush { context.writeAndFlush(wrapOutboundOut(out), promise: nil) } else { context.write(wrapOutboundOut(out), promise: nil) }
            return !flush
        case .queued:
            break
        case .overflow:
            logger.warning("ended a watch whose client does not read its events", metadata: [
                "socket": "\(admission.socket.rawValue)", "peer": "\(peer.map(\.description) ?? "unknown")",
            ])
            endWatch(id, Self.overloaded, context: context)
            responder.watchesEnded(connection: number, ids: [id])
        }
        return false
    }

    /// The service ended watch `id` (`watch.cancel`: quietly; otherwise with a frame).
    func watchFinished(_ id: RequestID, error: PortierError?, context: ChannelHandlerContext) {
        if openingWatches[id] != nil {
            openingWatches[id]!.finished = .some(error)
            return
        }
        if let error {
            endWatch(id, error, context: context)
        } else if watches.removeValue(forKey: id) != nil {
            machine.watchesChanged(open: watches.count)
        }
    }

    static let overloaded = PortierError(.overloaded, "this watch fell too far behind (its backlog of events is full): resume it with after")

    /// Writes what waited, then the final error frame, and forgets the watch.
    func endWatch(_ id: RequestID, _ error: PortierError, context: ChannelHandlerContext) {
        guard var backlog = watches.removeValue(forKey: id) else { return }
        machine.watchesChanged(open: watches.count)
        var out = context.channel.allocator.buffer(capacity: 256)
        for frame in backlog.takeAll() { out.writeEventFrame(id, event: frame) }
        out.writeReplyFrame(.failure(id, error))
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    /// Every open watch ends with `error`: `unavailable` at a graceful stop,
    /// `overloaded` when the client left its output unread too long (R-WAT-1).
    func endAllWatches(_ error: PortierError = ConnectionHandler.stopping, context: ChannelHandlerContext) {
        guard !watches.isEmpty else { return }
        // These, by id: a watch whose reply is still on its way stays.
        let ids = Array(watches.keys)
        for id in ids { endWatch(id, error, context: context) }
        responder.watchesEnded(connection: number, ids: ids)
    }

    /// The channel takes bytes again: write the frames that waited.
    func flushWatchBacklogs(context: ChannelHandlerContext) {
        var wrote = false
        for id in Array(watches.keys) where !(watches[id]?.isEmpty ?? true) {
            guard context.channel.isWritable else { break }
            let frames = watches[id]!.takeAll()
            var out = context.channel.allocator.buffer(capacity: frames.reduce(0) { $0 + $1.count + 32 })
            for frame in frames { out.writeEventFrame(id, event: frame) }
            context.write(wrapOutboundOut(out), promise: nil)
            wrote = true
        }
        if wrote { context.flush() }
    }
}
