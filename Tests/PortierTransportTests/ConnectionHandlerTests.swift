import Logging
import NIOCore
import NIOEmbedded
import PortierDomain
import PortierProtocol
import PortierTransport
import Testing

/// The NIO handler on an `EmbeddedChannel`: real frames in, real reply frames
/// out, virtual time for the timers; an `OfflineResponder` behind it. No socket,
/// no database.
@Suite("Connection handler on an EmbeddedChannel (docs/rules.md §10, R-SEC-2, R-SEC-3)")
struct ConnectionHandlerTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let peer = PeerCredentials(pid: 42, uid: 1000, gid: 1000)

    /// An active channel with the handler, admitted as `Self.peer`.
    func channel(
        settings: ConnectionSettings = ConnectionSettings(),
        admission: SocketAdmission = SocketAdmission(socket: .service, maximumConnections: 10),
        responder: any RequestResponder = OfflineResponder()
    ) throws -> EmbeddedChannel {
        let handler = ConnectionHandler(
            responder: responder, admission: admission, settings: settings, logger: Self.logger,
            identifyPeer: { $0.eventLoop.makeSucceededFuture(Self.peer) }
        )
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/x")).wait()
        return channel
    }

    func frame(_ text: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeFrame { $0.writeString(text) }
        return buffer
    }

    /// Runs the loop's pending tasks (yielded decode turns) until no more output comes.
    func drainOutput(_ channel: EmbeddedChannel) throws -> [Reply] {
        var replies: [Reply] = []
        var pending = ByteBuffer()
        while true {
            channel.embeddedEventLoop.run()
            var got = false
            while var out = try channel.readOutbound(as: ByteBuffer.self) {
                pending.writeBuffer(&out)
                got = true
            }
            while let payload = try FrameDecoder.nextFrame(from: &pending, maximumFrameBytes: .max) {
                let value = try payload.withUnsafeReadableBytes { try JSONParser.parse($0) }
                replies.append(try Reply.decode(value))
            }
            if !got { return replies }
        }
    }

    @Test("R-SEC-2: bursts of 30,000 bad frames of each kind in one write are all answered, in count, without recursion")
    func burstsInOneWrite() throws {
        let kinds: [(String, ErrorCode)] = [
            ("", .badRequest),
            ("{nope}!", .badRequest),
            (#"{"id":1,"op":"no.such.op"}"#, .unavailable),
            (#"{"id":1,"op":"user.get","actor":5}"#, .badRequest),
        ]
        for (payload, code) in kinds {
            let channel = try channel()
            var burst = ByteBuffer()
            for _ in 0..<30_000 { var f = frame(payload); burst.writeBuffer(&f) }
            try channel.writeInbound(burst)
            let replies = try drainOutput(channel)
            #expect(replies.count == 30_000, "\(payload)")
            #expect(replies.allSatisfy { $0.errorCodeForTest == code }, "\(payload)")
            #expect(channel.isActive)
            _ = try channel.finish()
        }
    }

    @Test("frames split at every byte boundary are answered once each")
    func splitFrames() throws {
        let channel = try channel()
        var bytes = ByteBuffer()
        for i in 0..<20 { var f = frame(#"{"id":\#(i),"op":"ping"}"#); bytes.writeBuffer(&f) }
        while bytes.readableBytes > 0 {
            let piece = bytes.readSlice(length: min(3, bytes.readableBytes))!
            try channel.writeInbound(piece)
        }
        let replies = try drainOutput(channel)
        #expect(replies.map(\.id) == (0..<20).map { RequestID.int(Int64($0)) })
    }

    @Test("R-SEC-3: a NUL anywhere is bad_request, answered with the request's id")
    func nul() throws {
        let channel = try channel()
        for text in [
            #"{"id":1,"op":"ping","params":{"name":"Bob\u0000Mallory"}}"#,
            #"{"id":2,"op":"ping","actor":"usr_1_1\u0000"}"#,
            #"{"id":3,"op":"ping","params":{"a\u0000b":1}}"#,
            #"{"id":4,"op":"ping","params":{"deep":[[{"x":["\u0000"]}]]}}"#,
            #"{"id":5,"op":"ping","consistency":{"at_least":"env_1:\u0000"}}"#,
            #"{"id":"six\u0000","op":"ping"}"#,
        ] {
            try channel.writeInbound(frame(text))
        }
        let replies = try drainOutput(channel)
        #expect(replies.count == 6)
        #expect(replies.allSatisfy { $0.errorCodeForTest == .badRequest })
        #expect(replies.map(\.id) == [.int(1), .int(2), .int(3), .int(4), .int(5), .string("six\u{0}")])
    }

    @Test("a header over the frame limit: frame_too_large, then closed")
    func frameTooLarge() throws {
        let channel = try channel(settings: ConnectionSettings(frameLimits: FrameLimits(maximumFrameBytes: 100)))
        var header = ByteBuffer()
        header.writeInteger(UInt32(101))
        try channel.writeInbound(header)
        let replies = try drainOutput(channel)
        #expect(replies.map(\.errorCodeForTest) == [.frameTooLarge])
        #expect(!channel.isActive)
    }

    @Test("a partial frame is closed after the partial-frame timeout; a completed one is not")
    func partialFrameTimeout() throws {
        let settings = ConnectionSettings(partialFrameTimeout: .seconds(2))
        let channel = try channel(settings: settings)
        var f = frame(#"{"id":1,"op":"ping"}"#)
        try channel.writeInbound(f.readSlice(length: 6)!)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        try channel.writeInbound(f)
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(channel.isActive, "the frame was completed in time")
        var g = frame(#"{"id":2,"op":"ping"}"#)
        try channel.writeInbound(g.readSlice(length: 6)!)
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(!channel.isActive)
    }

    @Test("an idle connection is closed after the idle timeout")
    func idleTimeout() throws {
        let channel = try channel(settings: ConnectionSettings(idleTimeout: .seconds(8)))
        channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        try channel.writeInbound(frame(#"{"id":1,"op":"ping"}"#))
        channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        #expect(channel.isActive, "traffic restarted the clock")
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(!channel.isActive)
    }

    @Test("R-SEC-2: past a socket's connection limit, overloaded and closed; the slot comes back when a connection closes")
    func connectionLimit() throws {
        let admission = SocketAdmission(socket: .service, maximumConnections: 1)
        let first = try channel(admission: admission)
        let second = try channel(admission: admission)
        #expect(try drainOutput(second).map(\.errorCodeForTest) == [.overloaded])
        #expect(!second.isActive)
        #expect(admission.current == 1)
        _ = try first.finish()
        #expect(admission.current == 0)
        let third = try channel(admission: admission)
        try third.writeInbound(frame(#"{"id":1,"op":"ping"}"#))
        #expect(try drainOutput(third).first?.isSuccess == true)
    }

    @Test("a peer outside the socket's allow-list gets forbidden (credentials injected at admission)")
    func allowList() throws {
        let admission = SocketAdmission(socket: .support, maximumConnections: 5, allowedUIDs: [Self.peer.uid + 1])
        let channel = try channel(admission: admission)
        try channel.writeInbound(frame(#"{"id":1,"op":"ping"}"#))
        #expect(try drainOutput(channel).map(\.errorCodeForTest) == [.forbidden])
        #expect(!channel.isActive)
    }

    @Test("while the client leaves its replies unread, decoding stops; the write-stall timer cuts it off")
    func unreadOutput() throws {
        let channel = try channel(settings: ConnectionSettings(writeStallTimeout: .seconds(3)))
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        try channel.writeInbound(frame(#"{"id":1,"op":"ping"}"#))
        #expect(try drainOutput(channel).isEmpty, "nothing decoded while replies are unread")
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(try drainOutput(channel).count == 1, "decoding resumes on the next turn")
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(!channel.isActive)
    }

    /// Every frame written so far, as JSON objects (replies and `closing` frames alike).
    func outputFrames(_ channel: EmbeddedChannel) throws -> [JSONObject] {
        var frames: [JSONObject] = []
        var pending = ByteBuffer()
        channel.embeddedEventLoop.run()
        while var out = try channel.readOutbound(as: ByteBuffer.self) { pending.writeBuffer(&out) }
        while let payload = try FrameDecoder.nextFrame(from: &pending, maximumFrameBytes: .max) {
            if case .object(let o) = try payload.withUnsafeReadableBytes({ try JSONParser.parse($0) }) { frames.append(o) }
        }
        return frames
    }

    @Test("R-OPS-1: graceful drain: buffered frames and those arriving in the read window are answered, then the closing frame names the last one read")
    func drain() throws {
        let channel = try channel(settings: ConnectionSettings(framesPerTurn: 2, drainReadWindow: .milliseconds(100)))
        var burst = ByteBuffer()
        for i in 0..<5 { var f = frame(#"{"id":\#(i),"op":"ping"}"#); burst.writeBuffer(&f) }
        try channel.writeInbound(burst)
        channel.pipeline.fireUserInboundEventTriggered(DrainEvent())
        #expect(try drainOutput(channel).count == 5)
        #expect(channel.isActive, "the read window is open")
        try channel.writeInbound(frame(#"{"id":"late","op":"ping"}"#))
        var half = frame(#"{"id":7,"op":"ping"}"#)
        try channel.writeInbound(half.readSlice(length: 6)!)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(100))
        let frames = try outputFrames(channel)
        #expect(frames.count == 2)
        #expect(frames.first?["id"] == .string("late"), "a request arriving during the window is answered")
        #expect(ClosingNotice.decode(frames.last ?? [:]) == ClosingNotice(lastID: .string("late")), "the half-sent request was not read")
        #expect(!channel.isActive)
    }

    @Test("R-OPS-1: a drain with nothing read: the closing frame's last_id is null")
    func drainNothingRead() throws {
        let channel = try channel(settings: ConnectionSettings(drainReadWindow: .milliseconds(50)))
        channel.pipeline.fireUserInboundEventTriggered(DrainEvent())
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(50))
        let frames = try outputFrames(channel)
        #expect(frames.count == 1)
        #expect(ClosingNotice.decode(frames[0]) == ClosingNotice(lastID: nil))
        #expect(!channel.isActive)
    }

    @Test("R-OPS-1: a drain asked for before the channel is active (accepted during the stop) still answers its first request")
    func drainBeforeActive() throws {
        let handler = ConnectionHandler(
            responder: OfflineResponder(), admission: SocketAdmission(socket: .service, maximumConnections: 10),
            settings: ConnectionSettings(drainReadWindow: .milliseconds(50)), logger: Self.logger,
            identifyPeer: { $0.eventLoop.makeSucceededFuture(Self.peer) }
        )
        let channel = EmbeddedChannel(handler: handler)
        channel.pipeline.fireUserInboundEventTriggered(DrainEvent())
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/x")).wait()
        try channel.writeInbound(frame(#"{"id":1,"op":"ping"}"#))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(50))
        let frames = try outputFrames(channel)
        #expect(frames.count == 2)
        #expect(frames.first?["ok"] == .bool(true))
        #expect(ClosingNotice.decode(frames.last ?? [:]) == ClosingNotice(lastID: .int(1)))
        #expect(!channel.isActive)
    }

    @Test("the caps of hello are enforced: a frame over one is bad_request and the connection stays usable")
    func caps() throws {
        let limits = FrameLimits(json: JSONLimits(maximumDepth: 8, maximumKeysPerObject: 4, maximumArrayElements: 5, maximumStringBytes: 10))
        let channel = try channel(settings: ConnectionSettings(frameLimits: limits))
        for text in [
            #"{"id":1,"op":"ping","params":{"a":1,"b":2,"c":3,"d":4,"e":5}}"#,
            #"{"id":2,"op":"ping","params":{"a":[1,2,3,4,5,6]}}"#,
            #"{"id":3,"op":"ping","params":{"a":"12345678901"}}"#,
            #"{"id":4,"op":"ping","params":{"a":[[[[[[[[1]]]]]]]]}}"#,
            #"{"id":5,"op":"ping"}"#,
        ] {
            try channel.writeInbound(frame(text))
        }
        let replies = try drainOutput(channel)
        #expect(replies.map(\.errorCodeForTest) == [.badRequest, .badRequest, .badRequest, .badRequest, nil])
    }
}

extension Reply {
    var errorCodeForTest: ErrorCode? { if case .failure(let e) = outcome { e.code } else { nil } }
    var isSuccess: Bool { if case .success = outcome { true } else { false } }
}
