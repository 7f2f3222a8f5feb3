import Logging
import NIOCore
import PortierDomain
import PortierProtocol
import Synchronization

/// Asks a connection to finish what it has and close (graceful stop).
public struct DrainEvent: Sendable {
    public init() {}
}

/// The socket's access rules were reloaded: a connection whose peer is no
/// longer allowed, or lost a capability it held, is closed at once (requests
/// in flight are abandoned); one that gained capabilities holds them from now on.
public struct AccessRulesChanged: Sendable {
    public init() {}
}

/// One client connection on the event loop: bytes in, frames decoded, requests
/// answered (in completion order, matched by id), replies out.
///
/// Every decision is the `ConnectionStateMachine`'s; this class performs its
/// actions on the channel: it owns the input buffer, the timers and the tasks
/// of requests answered asynchronously (cancelled when the client goes away).
/// Event-loop confined.
public final class ConnectionHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Reads the peer's credentials (SO_PEERCRED on a real socket).
    public typealias PeerIdentification = @Sendable (any Channel) -> EventLoopFuture<PeerCredentials?>

    var machine: ConnectionStateMachine
    let responder: any RequestResponder
    let admission: SocketAdmission
    let settings: ConnectionSettings
    private let inFlightTotal: InFlightCounter?
    private let stats: RequestStats?
    let logger: Logger
    private let identifyPeer: PeerIdentification
    /// Shared by the server's connections: repeated warnings are summarised (R-SEC-5).
    private let logThrottle: LogThrottle

    private var buffer: ByteBuffer?
    private(set) var peer: PeerCredentials?
    /// Granted at admission (R-SEC-1).
    private var capabilities: Capabilities = []
    /// This connection's number, for fairness between connections downstream.
    let number = ConnectionHandler.numbers.add(1, ordering: .relaxed).newValue
    private static let numbers = Atomic<UInt64>(0)
    private var partialFrameTimer: Scheduled<Void>?
    private var writeStallTimer: Scheduled<Void>?
    private var drainReadTimer: Scheduled<Void>?
    /// The id of the last request read on this connection: the `closing`
    /// frame names it (R-OPS-1).
    private var lastReadID: RequestID?
    /// A drain asked for before the channel was active (a connection accepted
    /// while the server stops): applied at activation.
    private var drainBeforeActive = false
    private var active = false
    /// After the `closing` frame: our side is shut for writing, and what the
    /// client still sends is read and dropped until it closes (or the linger
    /// ends), so that its writes do not fail before it has read the frame.
    private var lingering = false
    /// How long a drained connection waits for the client to close.
    static let lingerTime = TimeAmount.seconds(2)
    private var idleTimer: RepeatedTask?
    /// Requests answered asynchronously, by a number of this connection's own.
    private var tasks: [UInt64: Task<Void, Never>] = [:]
    private var nextTask: UInt64 = 0
    /// Handed to the service with each request (`support.metrics`).
    private let metrics: (any MetricsSource)?
    /// Where the service pushes this connection's watch frames (R-WAT-1).
    private var watchOutlet: ConnectionWatchOutlet?
    /// Open watches, with the frames each has waiting.
    var watches: [RequestID: WatchBacklog] = [:]
    /// `watch` requests not answered yet.
    var openingWatches: [RequestID: OpeningWatch] = [:]

    public init(
        responder: any RequestResponder,
        admission: SocketAdmission,
        settings: ConnectionSettings,
        inFlightTotal: InFlightCounter? = nil,
        stats: RequestStats? = nil,
        metrics: (any MetricsSource)? = nil,
        logger: Logger,
        logThrottle: LogThrottle = LogThrottle(),
        identifyPeer: @escaping PeerIdentification = { $0.peerCredentials() }
    ) {
        self.logThrottle = logThrottle
        self.machine = ConnectionStateMachine(limits: settings.machineLimits, now: .now())
        self.responder = responder
        self.admission = admission
        self.settings = settings
        self.inFlightTotal = inFlightTotal
        self.stats = stats
        self.metrics = metrics
        self.logger = logger
        self.identifyPeer = identifyPeer
    }

    /// The state machine's view, for tests.
    public var state: ConnectionStateMachine.State { machine.state }
    public var readState: ConnectionStateMachine.ReadState { machine.readState }

    // MARK: Admission

    public func channelActive(context: ChannelHandlerContext) {
        machine = ConnectionStateMachine(limits: settings.machineLimits, now: context.eventLoop.now)
        watchOutlet = ConnectionWatchOutlet(handler: self, context: context)
        active = true
        perform(machine.activated(slotTaken: admission.tryEnter()), context: context)
        if drainBeforeActive { perform(machine.drainRequested(), context: context) }
        if machine.state == .admitting {
            startIdleTimer(context: context)
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            identifyPeer(context.channel).whenComplete { result in
                let (handler, context) = bound.value
                handler.admit((try? result.get()) ?? nil, context: context)
            }
        }
        context.fireChannelActive()
    }

    private func admit(_ credentials: PeerCredentials?, context: ChannelHandlerContext) {
        peer = credentials
        capabilities = admission.policy.capabilities(for: credentials)
        let allowed = admission.allows(credentials) && !capabilities.isEmpty
        if !allowed, admitLog("refused peer") {
            logger.warning("refused peer", metadata: [
                "socket": "\(admission.socket.rawValue)", "peer": "\(credentials.map(\.description) ?? "unknown")",
            ])
        }
        let refusal = PortierError.forbidden("this user may not connect to the \(admission.socket.rawValue) socket")
        perform(machine.peerIdentified(allowed: allowed, refusal: refusal), context: context)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        let (release, actions) = machine.closed()
        if release { admission.leave() }
        perform(actions, context: context)
        idleTimer?.cancel()
        idleTimer = nil
        drainReadTimer?.cancel()
        drainReadTimer = nil
        // Nobody will read these replies: stop working on them.
        for task in tasks.values { task.cancel() }
        watchOutlet?.close()
        if !watches.isEmpty || !openingWatches.isEmpty {
            watches = [:]
            openingWatches = [:]
            responder.watchesEnded(connection: number, ids: nil)
        }
        watchOutlet = nil
        context.fireChannelInactive()
    }

    // MARK: Reading and decoding

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch machine.state {
        case .admitting, .serving, .draining: break
        case .closing, .closed: return
        }
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        perform(machine.bytesReceived(now: context.eventLoop.now), context: context)
    }

    public func read(context: ChannelHandlerContext) {
        if lingering || machine.readRequested() { context.read() }
    }

    /// Decodes and handles complete frames until the machine says stop or
    /// yield. Never re-entered (the machine refuses a nested start).
    private func decodeLoop(context: ChannelHandlerContext) {
        guard machine.decodeLoopStarting() else { return }
        var yielded = false
        decoding: while true {
            switch machine.nextDecodeStep() {
            case .stop: break decoding
            case .yield: yielded = true; break decoding
            case .decode: break
            }
            guard buffer != nil else { break }
            let frame: ByteBuffer?
            do {
                frame = try FrameDecoder.nextFrame(from: &buffer!, maximumFrameBytes: settings.frameLimits.maximumFrameBytes)
            } catch {
                logger.debug("frame too large", metadata: ["announced": "\(error.announcedBytes)"])
                let refusal = PortierError(.frameTooLarge, "frame of \(error.announcedBytes) bytes is over the limit of \(error.limit)")
                perform(machine.frameTooLarge(refusal), context: context)
                break
            }
            guard let frame else { break }
            machine.frameDecoded(payloadBytes: frame.readableBytes)
            inFlightTotal?.add(1)
            handle(frame, context: context)
        }
        let buffered = buffer?.readableBytes ?? 0
        if buffered == 0 { buffer = nil } else { buffer!.discardReadBytes() }
        perform(machine.decodeLoopEnded(bufferedBytes: buffered, yielded: yielded), context: context)
    }

    private func handle(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        let started = context.eventLoop.now
        let request: Request
        do {
            request = try Request.decode(payload: frame, limits: settings.frameLimits.json)
        } catch {
            if let id = error.id { lastReadID = id }
            complete(.failure(error.id, error.error), request: nil, started: started, context: context)
            return
        }
        lastReadID = request.id
        let needed = Capabilities.required(for: request.op)
        guard capabilities.contains(needed) else {
            let refusal = PortierError.forbidden("\(request.op) needs the \(needed) capability, which this peer does not hold on the \(admission.socket.rawValue) socket")
            complete(.failure(request.id, refusal), request: request, started: started, context: context)
            return
        }
        if duplicateWatch(request) {
            complete(.failure(request.id, .conflict("this connection already has a watch with id \(request.id)")), request: request, started: started, context: context)
            return
        }
        watchRequested(request)
        let requestContext = RequestContext(
            socket: admission.socket, peer: peer, capabilities: capabilities, connection: number, metrics: metrics, watchOutlet: watchOutlet)
        if let reply = responder.immediateReply(to: request, context: requestContext) {
            complete(reply, request: request, started: started, context: context, answeredByService: true)
            return
        }
        let responder = self.responder
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let number = nextTask
        nextTask &+= 1
        tasks[number] = Task {
            let reply = await responder.reply(to: request, context: requestContext)
            loop.execute {
                let (handler, context) = bound.value
                handler.tasks[number] = nil
                handler.complete(reply, request: request, started: started, context: context, answeredByService: true)
            }
        }
    }

    // MARK: Replies

    /// `answeredByService`: the request reached the service (a `watch` among
    /// them may open); otherwise the transport refused it.
    private func complete(_ reply: Reply, request: Request?, started: NIODeadline, context: ChannelHandlerContext, answeredByService: Bool = false) {
        record(reply, request: request, elapsed: context.eventLoop.now - started)
        inFlightTotal?.add(-1)
        let actions = machine.replyReady(inputBuffered: (buffer?.readableBytes ?? 0) > 0, now: context.eventLoop.now)
        perform(actions, reply: reply, context: context) {
            if answeredByService { self.watchReplied(reply, request: request, context: context) }
        }
    }

    /// Performs the machine's actions in their documented order; `written`
    /// runs right after the reply is written (before a close).
    private func perform(
        _ actions: ConnectionStateMachine.Actions, reply: Reply? = nil, context: ChannelHandlerContext, written: () -> Void = {}
    ) {
        if let write = actions.write, let reply {
            var out = context.channel.allocator.buffer(capacity: 256)
            out.writeReplyFrame(reply)
            if write == .buffered {
                context.write(wrapOutboundOut(out), promise: nil)
            } else {
                context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            }
            if !context.channel.isWritable,
               let unread = context.channel.syncOptions.flatMap({ try? $0.getOption(.bufferedWritableBytes) }),
               unread > 4 * settings.maximumOutputBytes {
                perform(machine.unreadOutputOverflowed(), context: context)
                return
            }
        }
        written()
        if actions.endWatches { endAllWatches(Self.overloaded, context: context) }
        if let refusal = actions.refuse {
            var out = context.channel.allocator.buffer(capacity: 128)
            out.writeReplyFrame(.failure(nil, refusal))
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in bound.value.close(promise: nil) }
        }
        if actions.flush { context.flush() }
        partialFrameTimer = change(partialFrameTimer, actions.partialFrameTimer, .partialFrame, in: settings.partialFrameTimeout, context: context)
        writeStallTimer = change(writeStallTimer, actions.writeStallTimer, .writeStall, in: settings.writeStallTimeout, context: context)
        drainReadTimer = change(drainReadTimer, actions.drainReadTimer, .drainRead, in: settings.drainReadWindow, context: context)
        if actions.read { context.read() }
        if let reason = actions.close {
            logClose(reason)
            if reason == .drained {
                // After the last replies and the watches' final frames, the
                // `closing` frame naming the last request read; the close
                // follows once it has gone out.
                var out = context.channel.allocator.buffer(capacity: 64)
                out.writeClosingFrame(ClosingNotice(lastID: lastReadID))
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in
                    let (handler, context) = bound.value
                    handler.linger(context: context)
                }
                // A client that does not read its replies never lets that write
                // finish: it is cut off after the write-stall timeout, as while serving.
                let closing = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: settings.writeStallTimeout) { closing.value.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
        }
        if actions.decode { decodeLoop(context: context) }
        if actions.scheduleDecode {
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.execute {
                let (handler, context) = bound.value
                handler.machine.scheduledDecodeRunning()
                handler.decodeLoop(context: context)
            }
        }
    }

    /// A lingering close: shut our side for writing, read (and drop) until the
    /// client closes, then close; at most `lingerTime`.
    private func linger(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        lingering = true
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.close(mode: .output).whenFailure { _ in bound.value.close(promise: nil) }
        context.read()
        context.eventLoop.scheduleTask(in: Self.lingerTime) { bound.value.close(promise: nil) }
    }

    private enum Timer { case partialFrame, writeStall, drainRead }

    /// A timer after the machine's change: started, cancelled, or left as it was.
    private func change(
        _ current: Scheduled<Void>?, _ change: ConnectionStateMachine.TimerChange?, _ timer: Timer, in delay: TimeAmount, context: ChannelHandlerContext
    ) -> Scheduled<Void>? {
        switch change {
        case .start?: return schedule(timer, in: delay, context: context)
        case .cancel?:
            current?.cancel()
            return nil
        case nil: return current
        }
    }

    private func schedule(_ timer: Timer, in delay: TimeAmount, context: ChannelHandlerContext) -> Scheduled<Void> {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        return context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = bound.value
            switch timer {
            case .partialFrame: handler.perform(handler.machine.partialFrameTimerFired(), context: context)
            case .writeStall: handler.perform(handler.machine.writeStallTimerFired(), context: context)
            case .drainRead:
                handler.drainReadTimer = nil
                handler.perform(handler.machine.drainReadWindowEnded(), context: context)
            }
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { flushWatchBacklogs(context: context) }
        perform(machine.writabilityChanged(writable: context.channel.isWritable), context: context)
        context.fireChannelWritabilityChanged()
    }

    // MARK: Events

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is DrainEvent {
            guard active else {
                drainBeforeActive = true
                return
            }
            endAllWatches(context: context)
            perform(machine.drainRequested(), context: context)
            return
        }
        if event is AccessRulesChanged {
            guard state != .admitting else { return }  // not identified yet: the new rules apply at admission
            let now = admission.policy.capabilities(for: peer)
            if !admission.allows(peer) || !now.isSuperset(of: capabilities) {
                logger.warning("closing connection: the peer lost access in a reload", metadata: [
                    "socket": "\(admission.socket.rawValue)", "peer": "\(peer.map(\.description) ?? "unknown")",
                    "had": "\(capabilities)", "now": "\(now)",
                ])
                context.close(promise: nil)
            } else {
                capabilities = now
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// The idle check runs every quarter of the idle timeout.
    private func startIdleTimer(context: ChannelHandlerContext) {
        let period = TimeAmount.nanoseconds(max(settings.idleTimeout.nanoseconds / 4, 1_000_000))
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            let (handler, context) = bound.value
            handler.perform(handler.machine.idleCheck(now: context.eventLoop.now), context: context)
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Connection resets and the like: nothing to answer, just close.
        logger.debug("connection error", metadata: ["error": "\(error)"])
        perform(machine.errorCaught(), context: context)
    }

    // MARK: Logs and numbers

    /// Whether a warning of this kind is written now (R-SEC-5: at most a few a
    /// second per server); says once how many of the kind were left out.
    private func admitLog(_ kind: String) -> Bool {
        let (write, leftOut) = logThrottle.admit(kind, now: .now())
        if let leftOut {
            logger.warning("repeated log lines left out", metadata: ["kind": "\(kind)", "count": "\(leftOut)", "interval_s": "1"])
        }
        return write
    }

    private func logClose(_ reason: ConnectionStateMachine.CloseReason) {
        switch reason {
        case .writeStall:
            guard admitLog("cut off a client that does not read its replies") else { break }
            logger.warning("cut off a client that does not read its replies", metadata: [
                "socket": "\(admission.socket.rawValue)", "peer": "\(peer.map(\.description) ?? "unknown")",
            ])
        case .refused, .drained, .channelError:
            break
        case .frameTooLarge, .partialFrameTimeout, .idleTimeout:
            logger.debug("closing connection", metadata: ["socket": "\(admission.socket.rawValue)", "reason": "\(reason.rawValue)"])
        }
    }

    private func record(_ reply: Reply, request: Request?, elapsed: TimeAmount) {
        let op = request?.op ?? ""
        if case .failure(let error) = reply.outcome {
            stats?.record(op: op, code: error.code, nanoseconds: elapsed.nanoseconds)
            // A request cancelled because its client left is not worth a warning.
            let serious = (error.code == .internal || error.code == .unavailable) && machine.state != .closed
            logRequest(request, reply: reply, elapsed: elapsed, level: serious ? .warning : .debug, code: error.code.rawValue)
        } else {
            stats?.record(op: op, code: nil, nanoseconds: elapsed.nanoseconds)
            if elapsed > settings.slowRequestThreshold { logRequest(request, reply: reply, elapsed: elapsed, level: .warning, code: "ok") }
        }
    }

    /// One structured line for a slow or failed request (never for the others:
    /// nothing is logged per request on the hot path).
    private func logRequest(_ request: Request?, reply: Reply, elapsed: TimeAmount, level: Logger.Level, code: String) {
        guard logger.logLevel <= level else { return }
        let tenths = elapsed.nanoseconds / 100_000
        var metadata: Logger.Metadata = [
            "request_id": "\(reply.id.map { "\($0)" } ?? "null")",
            "op": "\(request?.op ?? "unreadable")",
            "code": "\(code)",
            "duration_ms": "\(tenths / 10).\(tenths % 10)",
            "socket": "\(admission.socket.rawValue)",
        ]
        if let actor = request?.actor, let id = ScopedID(actor, kind: .user) { metadata["environment"] = "\(id.environment)" }
        let message = code == "ok" ? "slow request" : "request failed"
        guard level < .warning || admitLog(message) else { return }
        logger.log(level: level, "\(message)", metadata: metadata)
    }
}
