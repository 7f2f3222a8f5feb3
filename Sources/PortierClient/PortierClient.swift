import NIOCore
import NIOPosix
import PortierDomain
import PortierProtocol
import Synchronization

/// An async client for one connection to `portierd`.
///
/// Any number of tasks may call `send` at once: requests are pipelined on the one
/// connection and each reply is matched to its request by id.
public final class PortierClient: Sendable {
    private let channel: any Channel
    private let pending: PendingReplies
    private let nextID = Atomic<Int64>(1)

    private init(channel: any Channel, pending: PendingReplies) {
        self.channel = channel
        self.pending = pending
    }

    /// Connects to the socket at `path`.
    public static func connect(
        path: String, limits: FrameLimits = FrameLimits(), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> PortierClient {
        let pending = PendingReplies()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(maximumFrameBytes: limits.maximumFrameBytes)),
                        ReplyHandler(pending: pending),
                    ])
                }
            }
            .connect(unixDomainSocketPath: path).get()
        return PortierClient(channel: channel, pending: pending)
    }

    /// Sends a request and waits for its reply (success or error reply alike).
    /// Throws only when the connection fails.
    public func send(_ op: String, actor: String? = nil, params: JSONObject = [:], consistency: Consistency? = nil) async throws -> Reply {
        try await send(id: .int(nextID.add(1, ordering: .relaxed).oldValue), op, actor: actor, params: params, consistency: consistency)
    }

    private func send(id: RequestID, _ op: String, actor: String? = nil, params: JSONObject = [:], consistency: Consistency? = nil) async throws -> Reply {
        let request = Request(id: id, op: op, actor: actor, params: params, consistency: consistency)
        var buffer = channel.allocator.buffer(capacity: 128)
        buffer.writeRequestFrame(request)
        return try await withCheckedThrowingContinuation { continuation in
            guard pending.register(id, continuation) else { return }
            channel.writeAndFlush(buffer).whenFailure { [pending] error in
                pending.fail(id, with: error)
            }
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

    /// Opens a watch (SPEC R-WAT-1) on this connection: the `watch` reply's
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
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try await channel.writeAndFlush(buffer)
    }

    /// Replies that matched no request of ours (id null or unknown), in arrival order.
    public var unmatchedReplies: AsyncStream<Reply> { pending.unmatched }

    /// Whether the server still has the connection open.
    public var isConnected: Bool { channel.isActive }

    public func close() async {
        try? await channel.close()
    }
}

/// The continuations waiting for replies, keyed by request id.
final class PendingReplies: Sendable {
    private struct State: ~Copyable {
        var waiting: [RequestID: CheckedContinuation<Reply, any Error>] = [:]
        /// Open watches: their event streams.
        var watches: [RequestID: AsyncThrowingStream<JSONObject, any Error>.Continuation] = [:]
        var closedError: (any Error)?
        /// The last error about the connection itself; explains a close that follows.
        var connectionError: PortierError?
    }

    private let state = Mutex(State())
    let unmatched: AsyncStream<Reply>
    private let unmatchedSink: AsyncStream<Reply>.Continuation

    init() {
        (unmatched, unmatchedSink) = AsyncStream.makeStream(of: Reply.self)
    }

    /// False (and the continuation already failed) when the connection is closed.
    func register(_ id: RequestID, _ continuation: CheckedContinuation<Reply, any Error>) -> Bool {
        let closed: (any Error)? = state.withLock { s in
            if let e = s.closedError { return e }
            s.waiting[id] = continuation
            return nil
        }
        if let closed { continuation.resume(throwing: closed) }
        return closed == nil
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
            waiter.resume(returning: reply)
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

    func fail(_ id: RequestID, with error: any Error) {
        state.withLock { $0.waiting.removeValue(forKey: id) }?.resume(throwing: error)
    }

    private func failWaiting(_ error: PortierError) {
        let waiters = state.withLock { s in
            s.connectionError = error
            defer { s.waiting = [:] }
            return Array(s.waiting.values)
        }
        for w in waiters { w.resume(throwing: error) }
    }

    func failAll(_ error: any Error) {
        let (waiters, watches) = state.withLock { s in
            if s.closedError == nil { s.closedError = error }
            defer { s.waiting = [:]; s.watches = [:] }
            return (Array(s.waiting.values), Array(s.watches.values))
        }
        for w in waiters { w.resume(throwing: error) }
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

    init(pending: PendingReplies) {
        self.pending = pending
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let parsed: JSONValue? = frame.withUnsafeReadableBytes { try? JSONParser.parse($0, limits: .trusted) }
        if case .object(let frame)? = parsed, case .object(let event)? = frame["event"] {
            let id: RequestID? = switch frame["id"] {
            case .int(let i)?: .int(i)
            case .string(let s)?: .string(s)
            default: nil
            }
            pending.deliverEvent(id, event)
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
        pending.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pending.failAll(error)
        context.close(promise: nil)
    }
}
