import NIOCore
import PortierDomain
import PortierProtocol

/// The fuzz targets besides the transport (`TransportTarget`). Each takes
/// arbitrary bytes, must never crash, and checks properties that must hold for
/// any input (a failed property traps, so libFuzzer reports it with the input).
enum FuzzTargets {
    /// The parser alone, run with libFuzzer's per-input `-timeout` (see
    /// `Scripts/fuzz.sh`) so that inputs whose parse time grows faster than
    /// their size are reported: the input itself, with the request caps, and,
    /// when it parses, 32 copies of it as the elements of an array and as the
    /// values of an object, so that a cost per element or key that grows with
    /// the count shows at 32 times the scale. Property: what parses writes back
    /// to text that parses to the same value.
    static func parser(_ data: UnsafeRawBufferPointer) {
        guard let document = try? JSONParser.parseDocument(data, limits: .requests) else { return }
        let text = document.value.jsonText
        guard let again = try? JSONParser.parse(text, limits: .trusted) else { preconditionFailure("written JSON does not parse: \(text)") }
        precondition(again == document.value, "JSON round trip changed the value")
        let copies = 32
        var array = "["
        var object = "{"
        for i in 0..<copies {
            if i > 0 { array += ","; object += "," }
            array += text
            object += "\"k\(i)\":" + text
        }
        _ = try? JSONParser.parse(array + "]", limits: .requests)
        _ = try? JSONParser.parse(object + "}", limits: .requests)
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
