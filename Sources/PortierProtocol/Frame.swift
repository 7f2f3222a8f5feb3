import NIOCore

/// Frame limits shared by both ends of a connection.
public struct FrameLimits: Sendable, Equatable {
    /// Largest payload accepted, in bytes (default 1 MiB). A header announcing
    /// more is refused at once with `frame_too_large`.
    public var maximumFrameBytes: Int
    /// Caps on the shape of a request's JSON (nesting, keys, elements, strings).
    public var json: JSONLimits

    public init(maximumFrameBytes: Int = 1 << 20, json: JSONLimits = .requests) {
        self.maximumFrameBytes = maximumFrameBytes
        self.json = json
    }
}

/// Raised by `FrameDecoder` when a header announces a payload over the limit.
public struct FrameTooLargeError: Error, Sendable, Equatable {
    public let announcedBytes: Int
    public let limit: Int
}

/// Splits a byte stream into frames: a 4-byte big-endian length, then that many bytes.
///
/// Unlike swift-nio-extras' `LengthFieldBasedFrameDecoder`, this one checks the
/// announced length as soon as the header is in, so a client cannot make the
/// server wait for (or buffer) a gigabyte it will never accept.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public let maximumFrameBytes: Int

    public init(maximumFrameBytes: Int) { self.maximumFrameBytes = maximumFrameBytes }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.nextFrame(from: &buffer, maximumFrameBytes: maximumFrameBytes) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial frame at EOF is dropped: the peer went away mid-frame.
        try decode(context: context, buffer: &buffer)
    }

    /// The pure framing step, also used by clients without a pipeline: the next
    /// complete frame's payload, or nil when more bytes are needed.
    public static func nextFrame(from buffer: inout ByteBuffer, maximumFrameBytes: Int) throws(FrameTooLargeError) -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) <= maximumFrameBytes else {
            throw FrameTooLargeError(announcedBytes: Int(length), limit: maximumFrameBytes)
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }
}

extension ByteBuffer {
    /// Writes one frame whose payload is produced by `body`: reserves the length,
    /// lets `body` write, then fills the length in. No intermediate copy.
    public mutating func writeFrame(_ body: (inout ByteBuffer) -> Void) {
        let lengthIndex = writerIndex
        writeInteger(UInt32(0))
        let start = writerIndex
        body(&self)
        setInteger(UInt32(writerIndex - start), at: lengthIndex)
    }
}
