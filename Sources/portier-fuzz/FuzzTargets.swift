import NIOCore
import PortierDomain
import PortierProtocol

/// The two fuzz targets. Each takes arbitrary bytes, must never crash, and
/// checks properties that must hold for any input (a failed property traps, so
/// libFuzzer reports it with the input).
enum FuzzTargets {
    static let maximumFrameBytes = 4096

    /// The frame decoder, fed the input in chunks whose sizes come from the
    /// input itself: every frame it yields has the announced length, never more
    /// than the limit; an oversize header is refused at once; every byte fed in
    /// is accounted for.
    static func frames(_ data: UnsafeRawBufferPointer) {
        guard let first = data.first else { return }
        let chunk = Int(first % 17) + 1
        let bytes = data.dropFirst()
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        var consumed = 0
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let end = min(offset + chunk, bytes.endIndex)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            offset = end
            while true {
                let before = buffer.readableBytes
                let frame: ByteBuffer?
                do throws(FrameTooLargeError) {
                    frame = try FrameDecoder.nextFrame(from: &buffer, maximumFrameBytes: maximumFrameBytes)
                } catch {
                    precondition(error.announcedBytes > maximumFrameBytes, "refused a frame within the limit")
                    return
                }
                guard let frame else { break }
                precondition(frame.readableBytes <= maximumFrameBytes, "frame over the limit")
                precondition(before - buffer.readableBytes == frame.readableBytes + 4, "bytes lost or invented")
                consumed += frame.readableBytes + 4
                // Whatever the payload, the request reader answers or refuses it.
                _ = try? Request.decode(payload: frame)
            }
        }
        precondition(consumed + buffer.readableBytes == bytes.count, "bytes lost or invented")
    }

    /// A frame payload through everything that runs before the database: the
    /// JSON parser (with its depth limit), the request envelope, the params
    /// helpers and domain parsers every operation uses on every value, and the
    /// reply encoder. Properties: a parsed value writes back to text that parses
    /// to the same value; a reply frame for the request parses back to its id.
    static func requests(_ data: UnsafeRawBufferPointer) {
        var payload = ByteBufferAllocator().buffer(capacity: data.count)
        payload.writeBytes(data)
        if let value = try? JSONParser.parse(Array(data)) {
            let text = value.jsonText
            guard let again = try? JSONParser.parse(text) else { preconditionFailure("written JSON does not parse: \(text)") }
            precondition(again == value, "JSON round trip changed the value")
        }
        let request: Request
        do throws(RequestDecodingError) {
            request = try Request.decode(payload: payload)
        } catch {
            reply(.failure(error.id, error.error))
            return
        }
        exercise(request.params)
        if let actor = request.actor { _ = try? UserReference(actor, field: "actor") }
        if case .atLeast(let token)? = request.consistency { _ = RevisionToken(token) }
        _ = try? Permission(name: request.op)
        reply(.success(request.id, request.params))
    }

    /// What operations do with params, applied to every key and value.
    private static func exercise(_ params: JSONObject) {
        _ = try? params.rejectUnknownKeys(allowed: ["email", "user", "organisation", "permission", "role", "name"])
        for pair in params.pairs {
            let key = pair.key
            _ = try? params.requiredString(key)
            _ = try? params.optionalString(key)
            _ = try? params.optionalInt(key, in: 1...1000)
            _ = try? params.requiredArray(key)
            _ = try? params.optionalEnum(key, EnvironmentRole.self)
            _ = try? params.optionalEnum(key, OrganisationRole.self)
            var strings: [String] = []
            if case .string(let s) = pair.value { strings.append(s) }
            if case .array(let items) = pair.value { strings += items.compactMap(\.stringValue) }
            for s in strings {
                _ = try? EmailAddress(s)
                _ = try? UserReference(s, field: key)
                _ = try? Permission(name: s)
                _ = RevisionToken(s)
                for kind in [EntityKind.user, .organisation, .partnership, .request, .message] {
                    if let id = ScopedID(s, kind: kind) {
                        precondition(ScopedID(id.description, kind: kind) == id, "scoped id round trip")
                    }
                }
            }
        }
    }

    private static func reply(_ reply: Reply) {
        var frame = ByteBufferAllocator().buffer(capacity: 256)
        frame.writeReplyFrame(reply)
        guard let payload = try? FrameDecoder.nextFrame(from: &frame, maximumFrameBytes: Int.max),
              case .object(let object)? = try? JSONParser.parse(Array(payload.readableBytesView)) else {
            preconditionFailure("reply frame does not read back")
        }
        switch reply.id {
        case .int(let i)?: precondition(object["id"] == .int(i), "reply id changed")
        case .string(let s)?: precondition(object["id"] == .string(s), "reply id changed")
        case nil: precondition(object["id"] == .null, "reply id invented")
        }
    }
}
