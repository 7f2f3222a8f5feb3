import Foundation
import Logging
import NIOCore
import PortierDomain
import PortierProtocol
import PortierService

/// Asks a connection to finish what it has and close (graceful stop).
struct DrainEvent: Sendable {}

/// One client connection: frames in, replies out, many requests in flight.
///
/// Event-loop confined. Reads stop while `maximumInFlight` requests are being
/// worked on, or while more than `maximumOutputBytes` of replies wait for the
/// client to read them (backpressure instead of unbounded buffering); a client
/// that leaves its replies unread for the write-stall timeout is cut off. A frame
/// started but not finished within the partial-frame timeout, or a connection
/// idle for the idle timeout, is closed. Replies go out in completion order,
/// matched by id.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let service: PortierService
    private let socket: SocketKind
    private let settings: ServerConfiguration
    private let allowedUIDs: Set<UInt32>?
    private let counter: ConnectionCounter
    private let inFlightTotal: InFlightCounter
    private let metrics: ServerMetrics
    /// This event loop's request numbers (set when the connection becomes active).
    private var requestStats: RequestStats?
    private let logger: Logger

    private var buffer: ByteBuffer?
    private var inFlight = 0
    private var readWithheld = false
    private var draining = false
    private var closing = false
    private var admitted = false
    private var counted = false
    private var peer: PeerCredentials?
    private var partialFrameTimer: Scheduled<Void>?
    /// True while frames of one read burst are handled: replies are written then
    /// and flushed once at `channelReadComplete` (one syscall for a pipelined batch).
    private var reading = false
    private var flushPending = false
    /// Last read or write, for the idle timeout (checked by a timer, not per event).
    private var lastActivity = NIODeadline.now()
    private var idleTimer: RepeatedTask?
    /// Running while the client leaves more than `maximumOutputBytes` unread.
    private var writeStallTimer: Scheduled<Void>?

    init(service: PortierService, socket: SocketKind, settings: ServerConfiguration, allowedUIDs: Set<UInt32>?,
         counter: ConnectionCounter, inFlightTotal: InFlightCounter, metrics: ServerMetrics, logger: Logger) {
        self.service = service
        self.socket = socket
        self.settings = settings
        self.allowedUIDs = allowedUIDs
        self.counter = counter
        self.inFlightTotal = inFlightTotal
        self.metrics = metrics
        self.logger = logger
    }

    // MARK: Admission

    func channelActive(context: ChannelHandlerContext) {
        requestStats = metrics.requests(on: context.eventLoop)
        counted = true
        guard counter.tryEnter(limit: settings.maximumConnections) else {
            counted = false
            refuse(context: context, PortierError(.overloaded, "too many connections; retry later"))
            return
        }
        startIdleTimer(context: context)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.channel.peerCredentials().whenSuccess { credentials in
            let (handler, context) = bound.value
            handler.admit(credentials, context: context)
        }
        context.fireChannelActive()
    }

    private func admit(_ credentials: PeerCredentials?, context: ChannelHandlerContext) {
        peer = credentials
        if let allowed = allowedUIDs, !(credentials.map { allowed.contains($0.uid) } ?? false) {
            logger.warning("refused peer", metadata: ["socket": "\(socket.rawValue)", "peer": "\(credentials.map(\.description) ?? "unknown")"])
            refuse(context: context, .forbidden("this user may not connect to the \(socket.rawValue) socket"))
            return
        }
        admitted = true
        processFrames(context: context)
    }

    /// Sends one error frame and closes.
    private func refuse(context: ChannelHandlerContext, _ error: PortierError) {
        closing = true
        var out = context.channel.allocator.buffer(capacity: 128)
        out.writeReplyFrame(.failure(nil, error))
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in bound.value.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        partialFrameTimer?.cancel()
        partialFrameTimer = nil
        idleTimer?.cancel()
        idleTimer = nil
        writeStallTimer?.cancel()
        writeStallTimer = nil
        if counted { counter.leave(); counted = false }
        context.fireChannelInactive()
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard !closing else { return }
        lastActivity = .now()
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        reading = true
        if admitted { processFrames(context: context) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        if flushPending {
            flushPending = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    private func processFrames(context: ChannelHandlerContext) {
        while !closing, inFlight < settings.maximumInFlightPerConnection, buffer != nil {
            let frame: ByteBuffer?
            do {
                frame = try FrameDecoder.nextFrame(from: &buffer!, maximumFrameBytes: settings.frameLimits.maximumFrameBytes)
            } catch {
                logger.debug("frame too large", metadata: ["announced": "\(error.announcedBytes)"])
                refuse(context: context, PortierError(.frameTooLarge, "frame of \(error.announcedBytes) bytes is over the limit of \(error.limit)"))
                return
            }
            guard let frame else { break }
            handleFrame(frame, context: context)
        }
        if let b = buffer, b.readableBytes == 0 {
            buffer = nil
        } else {
            buffer?.discardReadBytes()
        }
        updatePartialFrameTimer(context: context)
        if draining, inFlight == 0 { context.close(promise: nil) }
    }

    private func handleFrame(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        inFlight += 1
        inFlightTotal.add(1)
        let started = NIODeadline.now()
        let request: Request
        do {
            request = try Request.decode(payload: frame, maximumDepth: settings.frameLimits.maximumJSONDepth)
        } catch {
            send(.failure(error.id, error.error), request: nil, started: started, context: context)
            return
        }
        // The hot path: a check answered from memory, right here on the event loop.
        if let reply = service.immediateAnswer(request) {
            send(reply, request: request, started: started, context: context)
            return
        }
        let service = self.service
        let requestContext = RequestContext(socket: socket, peer: peer)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        Task {
            let reply = await service.handle(request, context: requestContext)
            loop.execute {
                let (handler, context) = bound.value
                handler.send(reply, request: request, started: started, context: context)
            }
        }
    }

    private func send(_ reply: Reply, request: Request?, started: NIODeadline, context: ChannelHandlerContext) {
        let elapsed = NIODeadline.now() - started
        let op = request?.op ?? ""
        if case .failure(let error) = reply.outcome {
            requestStats?.record(op: op, code: error.code, nanoseconds: elapsed.nanoseconds)
            let serious = error.code == .internal || error.code == .unavailable
            logRequest(request, reply: reply, elapsed: elapsed, level: serious ? .warning : .debug, code: error.code.rawValue)
        } else {
            requestStats?.record(op: op, code: nil, nanoseconds: elapsed.nanoseconds)
            if elapsed > settings.slowRequestThreshold { logRequest(request, reply: reply, elapsed: elapsed, level: .warning, code: "ok") }
        }
        inFlight -= 1
        lastActivity = .now()
        inFlightTotal.add(-1)
        var out = context.channel.allocator.buffer(capacity: 256)
        out.writeReplyFrame(reply)
        if reading {
            context.write(wrapOutboundOut(out), promise: nil)
            flushPending = true
        } else {
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
        if !context.channel.isWritable,
           let unread = context.channel.syncOptions.flatMap({ try? $0.getOption(.bufferedWritableBytes) }),
           unread > 4 * settings.maximumOutputBytes {
            cutOff(context: context, unread: unread)
            return
        }
        if buffer != nil { processFrames(context: context) }
        if draining, inFlight == 0, buffer == nil { context.close(promise: nil) }
        resumeReadingIfWithheld(context: context)
    }

    /// One structured line for a slow or failed request (never for the others:
    /// nothing is logged per request on the hot path).
    private func logRequest(_ request: Request?, reply: Reply, elapsed: TimeAmount, level: Logger.Level, code: String) {
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = [
            "request_id": "\(reply.id.map { "\($0)" } ?? "null")",
            "op": "\(request?.op ?? "unreadable")",
            "code": "\(code)",
            "duration_ms": "\(String(format: "%.1f", Double(elapsed.nanoseconds) / 1e6))",
            "socket": "\(socket.rawValue)",
        ]
        if let actor = request?.actor, let id = ScopedID(actor, kind: .user) { metadata["environment"] = "\(id.environment)" }
        logger.log(level: level, code == "ok" ? "slow request" : "request failed", metadata: metadata)
    }

    /// Backpressure: no new reads while the connection is at its in-flight bound
    /// or its unread replies are past the output bound.
    func read(context: ChannelHandlerContext) {
        if inFlight >= settings.maximumInFlightPerConnection || draining || closing || !context.channel.isWritable {
            readWithheld = true
        } else {
            context.read()
        }
    }

    private func resumeReadingIfWithheld(context: ChannelHandlerContext) {
        if readWithheld, inFlight < settings.maximumInFlightPerConnection, !draining, !closing, context.channel.isWritable {
            readWithheld = false
            context.read()
        }
    }

    /// The client's unread replies crossed the output bound (or fell back under it).
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            writeStallTimer?.cancel()
            writeStallTimer = nil
            resumeReadingIfWithheld(context: context)
        } else if writeStallTimer == nil {
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            writeStallTimer = context.eventLoop.scheduleTask(in: settings.writeStallTimeout) {
                let (handler, context) = bound.value
                handler.cutOff(context: context, unread: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    /// Closes a connection whose client does not read its replies.
    private func cutOff(context: ChannelHandlerContext, unread: Int?) {
        guard !closing else { return }
        closing = true
        logger.warning("cut off a client that does not read its replies", metadata: [
            "socket": "\(socket.rawValue)", "peer": "\(peer.map(\.description) ?? "unknown")",
            "unread_bytes": "\(unread.map(String.init) ?? "over \(settings.maximumOutputBytes)")",
        ])
        context.close(promise: nil)
    }

    private func updatePartialFrameTimer(context: ChannelHandlerContext) {
        let partial = (buffer?.readableBytes ?? 0) > 0 && inFlight < settings.maximumInFlightPerConnection
        if partial, partialFrameTimer == nil {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            partialFrameTimer = context.eventLoop.scheduleTask(in: settings.partialFrameTimeout) {
                bound.value.close(promise: nil)
            }
        } else if !partial, let timer = partialFrameTimer {
            timer.cancel()
            partialFrameTimer = nil
        }
    }

    // MARK: Events

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is DrainEvent {
            draining = true
            if inFlight == 0 { processFrames(context: context) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Closes the connection once it has had nothing in flight and no traffic for
    /// the idle timeout. Checked every quarter of the timeout.
    private func startIdleTimer(context: ChannelHandlerContext) {
        let timeout = settings.idleTimeout
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let period = TimeAmount.nanoseconds(max(timeout.nanoseconds / 4, 1_000_000))
        idleTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            let (handler, context) = bound.value
            if handler.inFlight == 0, NIODeadline.now() - handler.lastActivity >= timeout { context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Connection resets and the like: nothing to answer, just close.
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
