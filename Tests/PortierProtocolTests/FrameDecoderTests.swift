import NIOCore
import NIOEmbedded
import PortierProtocol
import Testing

@Suite("Frame decoder")
struct FrameDecoderTests {
    func frame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        return withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload
    }

    func channel(limit: Int = 1 << 20) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameBytes: limit)))
        return channel
    }

    func payloads(_ channel: EmbeddedChannel) throws -> [String] {
        var out: [String] = []
        while var b = try channel.readInbound(as: ByteBuffer.self) { out.append(b.readString(length: b.readableBytes)!) }
        return out
    }

    @Test("a frame arriving one byte at a time comes out once, whole")
    func byteByByte() throws {
        let channel = try channel()
        let bytes = frame(#"{"id":1,"op":"ping"}"#)
        for (i, byte) in bytes.enumerated() {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
            #expect(try payloads(channel) == (i == bytes.count - 1 ? [#"{"id":1,"op":"ping"}"#] : []))
        }
    }

    @Test("several frames in one read all come out, in order")
    func severalFrames() throws {
        let channel = try channel()
        try channel.writeInbound(ByteBuffer(bytes: frame("a") + frame("bb") + frame("ccc") + Array(frame("dddd").prefix(5))))
        #expect(try payloads(channel) == ["a", "bb", "ccc"])
        try channel.writeInbound(ByteBuffer(bytes: Array(frame("dddd").dropFirst(5))))
        #expect(try payloads(channel) == ["dddd"])
    }

    @Test("a header over the limit fails at once, before any payload arrives")
    func oversizeHeader() throws {
        let channel = try channel(limit: 1024)
        let header = withUnsafeBytes(of: UInt32(1 << 30).bigEndian, Array.init)
        #expect(throws: FrameTooLargeError.self) { try channel.writeInbound(ByteBuffer(bytes: header)) }
    }

    @Test("a frame exactly at the limit passes")
    func atLimit() throws {
        let channel = try channel(limit: 10)
        try channel.writeInbound(ByteBuffer(bytes: frame("0123456789")))
        #expect(try payloads(channel) == ["0123456789"])
    }

    @Test("a zero-length frame is a frame with an empty payload")
    func zeroLength() throws {
        let channel = try channel()
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 0]))
        #expect(try payloads(channel) == [""])
    }

    @Test("writeFrame prefixes the payload with its big-endian length")
    func writeFrame() {
        var buffer = ByteBufferAllocator().buffer(capacity: 16)
        buffer.writeFrame { $0.writeString("hey") }
        #expect(Array(buffer.readableBytesView) == frame("hey"))
    }
}
