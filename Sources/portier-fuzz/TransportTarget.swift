import Logging
import NIOCore
import NIOEmbedded
import PortierDomain
import PortierProtocol
import PortierTransport

/// The whole transport under fuzzing: arbitrary byte streams, split at
/// arbitrary points, through the real `ConnectionHandler` on an
/// `EmbeddedChannel`. Behind it stands an `OfflineResponder` (no database:
/// decode errors, `ping`, `hello`, `unavailable` for the rest), so every
/// request is answered on the event loop and the run is deterministic. What is
/// fuzzed is the transport: the state machine, the decode loop and its budget,
/// framing, request decoding, reply writing.
///
/// Input: byte 0 seeds the split points (chunks of 1 to 64 bytes); byte 1 picks
/// the decode budget per turn (1 to 16 frames, so yields happen); the rest is
/// the stream. Invariants (a violation traps): no crash; exactly one reply per
/// complete frame, in order, each with the id of its request; the connection
/// is closed only after a `frame_too_large` reply (no time passes, so no
/// timeout fires).
enum TransportTarget {
    static let maximumFrameBytes = 4096
    static let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    static let limits = FrameLimits(
        maximumFrameBytes: maximumFrameBytes,
        json: JSONLimits(maximumDepth: 8, maximumKeysPerObject: 16, maximumArrayElements: 64, maximumStringBytes: 512)
    )

    static func run(_ data: UnsafeRawBufferPointer) {
        guard data.count >= 2 else { return }
        var seed = UInt32(data[0]) &+ 1
        let budget = Int(data[1] % 16) + 1
        let stream = UnsafeRawBufferPointer(rebasing: data[2...])

        let expected = expectedReplies(stream)
        let settings = ConnectionSettings(frameLimits: limits, framesPerTurn: budget)
        let handler = ConnectionHandler(
            responder: OfflineResponder(limits: limits), admission: SocketAdmission(socket: .service, maximumConnections: 4),
            settings: settings, logger: logger, identifyPeer: { $0.eventLoop.makeSucceededFuture(PeerCredentials(pid: 1, uid: 1, gid: 1)) }
        )
        let channel = EmbeddedChannel(handler: handler)
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        guard (try? channel.connect(to: SocketAddress(unixDomainSocketPath: "/fuzz")).wait()) != nil else {
            preconditionFailure("embedded connect failed")
        }
        var offset = 0
        while offset < stream.count, channel.isActive {
            seed = seed &* 1_103_515_245 &+ 12345
            let size = min(Int((seed >> 16) % 64) + 1, stream.count - offset)
            var chunk = channel.allocator.buffer(capacity: size)
            chunk.writeBytes(UnsafeRawBufferPointer(rebasing: stream[offset..<(offset + size)]))
            offset += size
            do { try channel.writeInbound(chunk) } catch { break }
            channel.embeddedEventLoop.run()
        }
        // Yielded decode turns are tasks on the loop: run them all.
        for _ in 0..<100_000 {
            channel.embeddedEventLoop.run()
            if !handlerHasWork(channel) { break }
        }
        let replies = readReplies(channel)
        precondition(replies.count == expected.ids.count + (expected.tooLarge ? 1 : 0),
                     "\(replies.count) replies for \(expected.ids.count) complete frames (too large: \(expected.tooLarge))")
        for (i, id) in expected.ids.enumerated() {
            precondition(replies[i].id == id, "reply \(i) has id \(String(describing: replies[i].id)), expected \(String(describing: id))")
        }
        if expected.tooLarge {
            guard case .failure(let error) = replies.last?.outcome, error.code == .frameTooLarge else {
                preconditionFailure("an oversize frame was not answered with frame_too_large")
            }
            precondition(!channel.isActive, "still open after frame_too_large")
        } else {
            precondition(channel.isActive, "closed without frame_too_large")
        }
    }

    /// Whether the loop still has scheduled work (a yielded decode turn).
    private static func handlerHasWork(_ channel: EmbeddedChannel) -> Bool {
        guard channel.isActive, let handler = try? channel.pipeline.syncOperations.handler(type: ConnectionHandler.self) else { return false }
        if case .backpressured(let pressure) = handler.readState { return pressure.contains(.inputBacklog) }
        return false
    }

    /// What the stream's complete frames say: each request's id (nil where it
    /// cannot be read), and whether an oversize header ends the stream.
    private static func expectedReplies(_ stream: UnsafeRawBufferPointer) -> (ids: [RequestID?], tooLarge: Bool) {
        var buffer = ByteBufferAllocator().buffer(capacity: stream.count)
        buffer.writeBytes(stream)
        var ids: [RequestID?] = []
        while true {
            let frame: ByteBuffer?
            do throws(FrameTooLargeError) {
                frame = try FrameDecoder.nextFrame(from: &buffer, maximumFrameBytes: maximumFrameBytes)
            } catch {
                return (ids, true)
            }
            guard let frame else { return (ids, false) }
            do throws(RequestDecodingError) {
                ids.append(try Request.decode(payload: frame, limits: limits.json).id)
            } catch {
                ids.append(error.id)
            }
        }
    }

    private static func readReplies(_ channel: EmbeddedChannel) -> [Reply] {
        var out = ByteBufferAllocator().buffer(capacity: 0)
        while var piece = try? channel.readOutbound(as: ByteBuffer.self) { out.writeBuffer(&piece) }
        var replies: [Reply] = []
        while let payload = try? FrameDecoder.nextFrame(from: &out, maximumFrameBytes: .max) {
            guard let value = try? payload.withUnsafeReadableBytes({ try JSONParser.parse($0) }),
                  let reply = try? Reply.decode(value) else { preconditionFailure("a reply frame does not parse") }
            replies.append(reply)
        }
        precondition(out.readableBytes == 0, "a partial reply frame was written")
        return replies
    }
}
