import NIOCore
import NIOPosix
import PortierDomain
import PortierProtocol
import Synchronization

/// An async client for one connection to `portierd`.
///
/// Any number of tasks may call `send` at once: requests are pipelined on the one
/// connection and each reply is matched to its request by id.
///
/// Restarts lose no request (R-OPS-1): when the server drains, it answers what
/// it read and sends a `closing` frame; the client then opens a new connection
/// to the same socket (retrying for `reconnectWindow`, while a restart's new
/// server comes up) and resends, in their order, the requests the old
/// connection never answered. The server never read those, so this is safe
/// for changes too. A connection that ends without a `closing` frame fails the
/// requests waiting on it, as before.
public final class PortierClient: Sendable {
    private let pending: PendingReplies
    private let nextID = Atomic<Int64>(1)

    private init(pending: PendingReplies) {
        self.pending = pending
    }

    /// Connects to the socket at `path`.
    public static func connect(
        path: String, limits: FrameLimits = FrameLimits(), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        reconnectWindow: Duration = .seconds(30)
    ) async throws -> PortierClient {
        let pending = PendingReplies(connector: Connector(path: path, limits: limits, group: group, reconnectWindow: reconnectWindow))
        let channel = try await pending.connector.open(pending, generation: 0)
        pending.attach(channel)
        return PortierClient(pending: pending)
    }

    /// Sends a request and waits for its reply (success or error reply alike).
    /// Throws only when the connection fails.
    public func send(_ op: String, actor: String? = nil, params: JSONObject = [:], consistency: Consistency? = nil) async throws -> Reply {
        try await send(id: .int(nextID.add(1, ordering: .relaxed).oldValue), op, actor: actor, params: params, consistency: consistency)
    }

    private func send(id: RequestID, _ op: String, actor: String? = nil, params: JSONObject = [:], consistency: Consistency? = nil) async throws -> Reply {
        let request = Request(id: id, op: op, actor: actor, params: params, consistency: consistency)
        var buffer = ByteBufferAllocator().buffer(capacity: 128)
        buffer.writeRequestFrame(request)
        return try await withCheckedThrowingContinuation { continuation in
            pending.register(id, continuation, frame: buffer)
        }
    }

    /// Sends a request and returns its result; an error reply throws its `PortierError`.
    @discardableResult
    public func call(_ op: String, actor: String? = nil, params: JSONObject = [:], consistency: Consistency? = nil) async throws -> JSONObject {
        let reply = try await send(op, actor: actor, params: params, consistency: consistency)
        switch reply.outcome {
        case .success(let result, _): return result
        case .failure(let error): throw error
        }
    }

    /// Opens a watch (R-WAT-1) on this connection: the `watch` reply's
    /// result, and its event frames' `event` objects as they come. The stream
    /// ends when the watch does: quietly after `cancelWatch`, with the final
    /// error frame's `PortierError` (`unavailable` at a server stop,
    /// `overloaded` for a client that fell behind), or with the connection's
    /// error. An error reply to `watch` itself throws. `PortierWatch` resumes
    /// by itself across reconnects.
    public func openWatch(environments: [String]? = nil, after: [String] = []) async throws -> (id: RequestID, result: JSONObject, events: AsyncThrowingStream<JSONObject, any Error>) {
        let id = RequestID.int(nextID.add(1, ordering: .relaxed).oldValue)
        var params: JSONObject = [:]
        if let environments { params["environments"] = .array(environments.map(JSONValue.string)) }
        if !after.isEmpty { params["after"] = .array(after.map(JSONValue.string)) }
        let (events, sink) = AsyncThrowingStream.makeStream(of: JSONObject.self)
        pending.openWatch(id, sink)
        let reply = try await send(id: id, "watch", params: params)
        switch reply.outcome {
        case .success(let result, _):
            return (id, result, events)
        case .failure(let error):
            pending.closeWatch(id, error: error)
            throw error
        }
    }

    /// `watch.cancel`: ends the watch; its stream finishes without error.
    public func cancelWatch(_ id: RequestID) async throws {
        try await call("watch.cancel", params: ["watch": id.json])
        pending.closeWatch(id, error: nil)
    }

    /// Writes raw bytes (tests of malformed input).
    public func sendRaw(_ bytes: [UInt8]) async throws {
        guard let channel = pending.currentChannel else { throw PortierError.unavailable("the connection to portierd is being reopened") }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try await channel.writeAndFlush(buffer)
    }

    /// Replies that matched no request of ours (id null or unknown), in arrival order.
    public var unmatchedReplies: AsyncStream<Reply> { pending.unmatched }

    /// `closing` frames received (R-OPS-1), in arrival order: what the server
    /// said it had read before each drain.
    public var closingNotices: [ClosingNotice] { pending.closingNotices }

    /// Requests sent again on a new connection after a `closing` frame.
    public var resentRequests: Int { pending.resentCount }

    /// Whether the server still has the connection open (false while it is being reopened).
    public var isConnected: Bool { pending.currentChannel?.isActive ?? false }

    public func close() async {
        pending.closeForGood()
        try? await pending.currentChannel?.close()
    }
}

/// Where and how the client (re)connects.
struct Connector: Sendable {
    let path: String
    let limits: FrameLimits
    let group: any EventLoopGroup
    let reconnectWindow: Duration

    func open(_ pending: PendingReplies, generation: Int) async throws -> any Channel {
        try await ClientBootstrap(group: group)
            .channelInitializer { [limits] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(maximumFrameBytes: limits.maximumFrameBytes)),
                        ReplyHandler(pending: pending, generation: generation),
                    ])
                }
            }
            .connect(unixDomainSocketPath: path).get()
    }
}

/// The client's connection and the requests waiting for replies, keyed by id;
/// each waiting request keeps its frame until answered, to be resent after a
/// `closing` frame (R-OPS-1).
final class PendingReplies: Sendable {
    private struct Waiting {
        let continuation: CheckedContinuation<Reply, any Error>
        let frame: ByteBuffer
        /// Order of sending: resends keep it.
        let sequence: UInt64
        /// The connection generation the frame was last written on (nil: not yet).
        var sentOn: Int?
    }

    private struct State: ~Copyable {
        var waiting: [RequestID: Waiting] = [:]
        var sequence: UInt64 = 0
        /// The open connection; nil while it is being reopened.
        var channel: (any Channel)?
        var generation = 0
        /// The current connection sent its `closing` frame.
        var closingSeen = false
        var closingNotices: [ClosingNotice] = []
        var resent = 0
        var closedForGood = false
        /// Open watches: their event streams.
        var watches: [RequestID: AsyncThrowingStream<JSONObject, any Error>.Continuation] = [:]
        var closedError: (any Error)?
        /// The last error about the connection itself; explains a close that follows.
        var connectionError: PortierError?
    }

    private let state = Mutex(State())
    let connector: Connector
    let unmatched: AsyncStream<Reply>
    private let unmatchedSink: AsyncStream<Reply>.Continuation

    init(connector: Connector) {
        self.connector = connector
        (unmatched, unmatchedSink) = AsyncStream.makeStream(of: Reply.self)
    }

    var currentChannel: (any Channel)? { state.withLock { $0.channel } }
    var closingNotices: [ClosingNotice] { state.withLock { $0.closingNotices } }
    var resentCount: Int { state.withLock { $0.resent } }

    func attach(_ channel: any Channel) {
        state.withLock { $0.channel = channel }
    }

    /// Registers a request and writes it (unless the connection is being
    /// reopened: then the reopening writes it). Fails it at once when the
    /// connection is closed for good.
    func register(_ id: RequestID, _ continuation: CheckedContinuation<Reply, any Error>, frame: ByteBuffer) {
        let outcome: Result<(any Channel, Int)?, any Error> = state.withLock { s in
            if let e = s.closedError { return .failure(e) }
            s.sequence += 1
            var entry = Waiting(continuation: continuation, frame: frame, sequence: s.sequence, sentOn: nil)
            guard let channel = s.channel else {
                s.waiting[id] = entry
                return .success(nil)
            }
            entry.sentOn = s.generation
            s.waiting[id] = entry
            return .success((channel, s.generation))
        }
        switch outcome {
        case .failure(let error):
            continuation.resume(throwing: error)
        case .success(let target?):
            target.0.writeAndFlush(frame).whenFailure { [self] error in writeFailed(id, generation: target.1, error: error) }
        case .success(nil):
            break
        }
    }

    /// A write failed: the request fails, unless the connection is being
    /// replaced after a `closing` frame (then it is resent).
    private func writeFailed(_ id: RequestID, generation: Int, error: any Error) {
        let waiter: Waiting? = state.withLock { s in
            if s.generation != generation || s.channel == nil || s.closingSeen { return nil }
            return s.waiting.removeValue(forKey: id)
        }
        waiter?.continuation.resume(throwing: error)
    }

    /// The server's `closing` frame on connection `generation`.
    func closing(_ notice: ClosingNotice, generation: Int) {
        state.withLock { s in
            guard s.generation == generation else { return }
            s.closingSeen = true
            s.closingNotices.append(notice)
        }
    }

    /// Connection `generation` ended: reopen it after a `closing` frame,
    /// otherwise fail everything waiting.
    func connectionEnded(generation: Int) {
        let reopen = state.withLock { s in
            guard s.generation == generation, s.closingSeen, !s.closedForGood, s.closedError == nil else { return false }
            s.channel = nil
            return true
        }
        guard reopen else {
            if state.withLock({ $0.generation == generation }) { finish() }
            return
        }
        // Watches do not survive a connection: they end (PortierWatch resumes),
        // and a `watch` request still unanswered is not resent (its stream ended).
        let (watches, openings) = state.withLock { s in
            let openings = s.watches.keys.compactMap { s.waiting.removeValue(forKey: $0) }
            defer { s.watches = [:] }
            return (Array(s.watches.values), openings)
        }
        let restarted = PortierError.unavailable("portierd restarted; watch again with after")
        for w in watches { w.finish(throwing: restarted) }
        for o in openings { o.continuation.resume(throwing: restarted) }
        Task { await reopenAndResend(generation: generation + 1) }
    }

    private func reopenAndResend(generation: Int) async {
        let deadline = ContinuousClock.now + connector.reconnectWindow
        var delay = Duration.milliseconds(10)
        while true {
            do {
                let channel = try await connector.open(self, generation: generation)
                let reopened: Bool = state.withLock { s in
                    guard !s.closedForGood else { return false }
                    s.channel = channel
                    s.generation = generation
                    s.closingSeen = false
                    let unanswered = s.waiting.filter { $0.value.sentOn != generation }.sorted { $0.value.sequence < $1.value.sequence }
                    for (id, _) in unanswered { s.waiting[id]?.sentOn = generation }
                    s.resent += unanswered.count
                    // Queued under the lock, so that no request sent meanwhile overtakes them.
                    for (_, entry) in unanswered { channel.write(entry.frame, promise: nil) }
                    channel.flush()
                    return true
                }
                if !reopened {
                    try? await channel.close()
                    failAll(PortierError.unavailable("the client was closed"))
                    unmatchedSink.finish()
                }
                return
            } catch {
                if ContinuousClock.now + delay > deadline || state.withLock({ $0.closedForGood }) {
                    failAll(PortierError.unavailable("portierd closed the connection for a restart and could not be reached again at \(connector.path): \(error)"))
                    unmatchedSink.finish()
                    return
                }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .milliseconds(500))
            }
        }
    }

    /// A channel error: fails everything waiting, unless the connection is
    /// being replaced after a `closing` frame (a reset then is the restart).
    func channelError(_ error: any Error, generation: Int) {
        let fail = state.withLock { s in s.generation == generation && !s.closingSeen }
        if fail { failAll(error) }
    }

    /// The client's `close()`: nothing is reopened any more; requests waiting
    /// while the connection is being reopened fail now.
    func closeForGood() {
        let reopening = state.withLock { s in
            s.closedForGood = true
            return s.channel == nil
        }
        if reopening {
            failAll(PortierError.unavailable("the client was closed"))
            unmatchedSink.finish()
        }
    }

    func openWatch(_ id: RequestID, _ sink: AsyncThrowingStream<JSONObject, any Error>.Continuation) {
        let closed = state.withLock { s in
            if s.closedError == nil { s.watches[id] = sink }
            return s.closedError
        }
        if let closed { sink.finish(throwing: closed) }
    }

    /// Ends a watch's stream (nil: quietly).
    func closeWatch(_ id: RequestID, error: (any Error)?) {
        state.withLock { $0.watches.removeValue(forKey: id) }?.finish(throwing: error)
    }

    /// An event frame: `{"id", "event"}`.
    func deliverEvent(_ id: RequestID?, _ event: JSONObject) {
        guard let id, let sink = state.withLock({ $0.watches[id] }) else { return }
        sink.yield(event)
    }

    func deliver(_ reply: Reply) {
        let (waiter, watch) = reply.id.map { id in
            state.withLock { s in
                let waiter = s.waiting.removeValue(forKey: id)
                // A reply with the id of an open watch, after its first: the watch's end.
                return (waiter, waiter == nil ? s.watches.removeValue(forKey: id) : nil)
            }
        } ?? (nil, nil)
        if let waiter {
            waiter.continuation.resume(returning: reply)
        } else if let watch {
            if case .failure(let error) = reply.outcome { watch.finish(throwing: error) } else { watch.finish() }
        } else {
            // An error with no id is about the connection (overloaded,
            // frame_too_large, forbidden) or an unreadable request: the requests
            // waiting now cannot be told apart, so each gets it.
            if reply.id == nil, case .failure(let error) = reply.outcome { failWaiting(error) }
            unmatchedSink.yield(reply)
        }
    }

    private func failWaiting(_ error: PortierError) {
        let waiters = state.withLock { s in
            s.connectionError = error
            defer { s.waiting = [:] }
            return Array(s.waiting.values)
        }
        for w in waiters { w.continuation.resume(throwing: error) }
    }

    func failAll(_ error: any Error) {
        let (waiters, watches) = state.withLock { s in
            if s.closedError == nil { s.closedError = error }
            defer { s.waiting = [:]; s.watches = [:] }
            return (Array(s.waiting.values), Array(s.watches.values))
        }
        for w in waiters { w.continuation.resume(throwing: error) }
        for w in watches { w.finish(throwing: error) }
    }

    func finish() {
        let reason = state.withLock { $0.connectionError }
        failAll(reason ?? PortierError.unavailable("the connection to portierd closed"))
        unmatchedSink.finish()
    }
}

/// Decodes reply frames and hands them to `PendingReplies`.
final class ReplyHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let pending: PendingReplies
    /// Which of the client's connections this is (a new one after each restart).
    private let generation: Int

    init(pending: PendingReplies, generation: Int) {
        self.pending = pending
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let parsed: JSONValue? = frame.withUnsafeReadableBytes { try? JSONParser.parse($0, limits: .trusted) }
        if case .object(let frame)? = parsed, case .object(let event)? = frame["event"] {
            pending.deliverEvent(RequestID(frame["id"]), event)
            return
        }
        if case .object(let frame)? = parsed, let notice = ClosingNotice.decode(frame) {
            // Nothing follows it: close our side at once (the server lingers
            // until we do), and the close reopens the connection.
            pending.closing(notice, generation: generation)
            context.close(promise: nil)
            return
        }
        guard let parsed, let reply = try? Reply.decode(parsed) else {
            pending.failAll(PortierError.internal("portierd sent a reply that is not valid"))
            context.close(promise: nil)
            return
        }
        pending.deliver(reply)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pending.connectionEnded(generation: generation)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pending.channelError(error, generation: generation)
        context.close(promise: nil)
    }
}
