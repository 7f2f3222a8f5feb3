import NIOCore
import PortierDomain

/// A request's `id`: an integer or a string, echoed in its reply.
public enum RequestID: Sendable, Hashable, CustomStringConvertible {
    case int(Int64)
    case string(String)

    public var json: JSONValue {
        switch self {
        case .int(let i): .int(i)
        case .string(let s): .string(s)
        }
    }

    public var description: String {
        switch self {
        case .int(let i): String(i)
        case .string(let s): s
        }
    }

    /// The id a frame carries, when it is an integer or a string.
    public init?(_ value: JSONValue?) {
        switch value {
        case .int(let i)?: self = .int(i)
        case .string(let s)?: self = .string(s)
        default: return nil
        }
    }
}

/// How fresh a read must be (R-PRM-5).
public enum Consistency: Sendable, Equatable {
    /// Never answer from state older than this revision token.
    case atLeast(String)
    /// Always answer from the database.
    case full
}

/// One request frame: `{"id", "op", "actor"?, "params"?, "consistency"?}` (docs/rules.md §10).
public struct Request: Sendable {
    public var id: RequestID
    public var op: String
    public var actor: String?
    public var params: JSONObject
    public var consistency: Consistency?

    public init(id: RequestID, op: String, actor: String? = nil, params: JSONObject = [:], consistency: Consistency? = nil) {
        self.id = id
        self.op = op
        self.actor = actor
        self.params = params
        self.consistency = consistency
    }

    /// The envelope as JSON, as a client sends it.
    public var json: JSONObject {
        var o: JSONObject = ["id": id.json, "op": .string(op)]
        if let actor { o["actor"] = .string(actor) }
        if !params.isEmpty { o["params"] = .object(params) }
        switch consistency {
        case .atLeast(let token)?: o["consistency"] = ["at_least": .string(token)]
        case .full?: o["consistency"] = "full"
        case nil: break
        }
        return o
    }
}

/// A request that could not be read, with whatever id could be recovered so the
/// error reply can still be matched by the client.
public struct RequestDecodingError: Error, Sendable {
    public let id: RequestID?
    public let error: PortierError
}

extension Request {
    private static let knownKeys: Set<String> = ["id", "op", "actor", "params", "consistency"]

    /// Reads a request from a frame's payload. Every failure is a `bad_request`
    /// naming the problem; the connection stays usable. A NUL character in any
    /// string is refused once the id is known, so the reply can be matched (R-SEC-3).
    public static func decode(payload: ByteBuffer, limits: JSONLimits = .requests) throws(RequestDecodingError) -> Request {
        let parsed: Result<ParsedJSON, JSONParseError> = payload.withUnsafeReadableBytes { raw in
            do throws(JSONParseError) { return .success(try JSONParser.parseDocument(raw, limits: limits)) } catch {
                return .failure(error)
            }
        }
        switch parsed {
        case .failure(let e):
            throw RequestDecodingError(id: nil, error: .badRequest("frame is not valid JSON: \(e)"))
        case .success(let document):
            let request = try decode(document.value)
            if document.containsNUL {
                throw RequestDecodingError(id: request.id, error: .badRequest("text must not contain NUL (U+0000)"))
            }
            return request
        }
    }

    public static func decode(_ value: JSONValue) throws(RequestDecodingError) -> Request {
        guard case .object(let o) = value else {
            throw RequestDecodingError(id: nil, error: .badRequest("a request must be a JSON object, got \(value.typeName)"))
        }
        let id: RequestID
        switch o["id"] {
        case .int(let i)?: id = .int(i)
        case .string(let s)?: id = .string(s)
        case nil: throw RequestDecodingError(id: nil, error: .badRequest("request has no id"))
        case let other?: throw RequestDecodingError(id: nil, error: .badRequest("id must be an integer or a string, got \(other.typeName)"))
        }
        func fail(_ message: String) -> RequestDecodingError { RequestDecodingError(id: id, error: .badRequest(message)) }
        for pair in o.pairs where !knownKeys.contains(pair.key) {
            throw fail("unknown request field \"\(pair.key)\"")
        }
        guard case .string(let op)? = o["op"] else { throw fail("request needs \"op\" as a string") }
        var actor: String?
        switch o["actor"] {
        case nil, .null?: actor = nil
        case .string(let s)?: actor = s
        case let other?: throw fail("actor must be a string, got \(other.typeName)")
        }
        var params = JSONObject()
        switch o["params"] {
        case nil, .null?: break
        case .object(let p)?: params = p
        case let other?: throw fail("params must be an object, got \(other.typeName)")
        }
        var consistency: Consistency?
        switch o["consistency"] {
        case nil, .null?: consistency = nil
        case .string("full")?: consistency = .full
        case .object(let c)? where c.count == 1:
            guard case .string(let token)? = c["at_least"] else { throw fail("consistency must be \"full\" or {\"at_least\": token}") }
            consistency = .atLeast(token)
        default: throw fail("consistency must be \"full\" or {\"at_least\": token}")
        }
        return Request(id: id, op: op, actor: actor, params: params, consistency: consistency)
    }
}

/// One reply frame (docs/rules.md §10).
public struct Reply: Sendable {
    /// Echo of the request id; nil when the request's id could not be read.
    public var id: RequestID?
    public var outcome: Outcome

    public enum Outcome: Sendable {
        case success(result: JSONObject, revision: String?)
        case failure(PortierError)
    }

    public init(id: RequestID?, outcome: Outcome) {
        self.id = id
        self.outcome = outcome
    }

    public static func success(_ id: RequestID?, _ result: JSONObject, revision: String? = nil) -> Reply {
        Reply(id: id, outcome: .success(result: result, revision: revision))
    }

    public static func failure(_ id: RequestID?, _ error: PortierError) -> Reply {
        Reply(id: id, outcome: .failure(error))
    }

    public var json: JSONObject {
        var o: JSONObject = ["id": id?.json ?? .null]
        switch outcome {
        case .success(let result, let revision):
            o["ok"] = true
            o["result"] = .object(result)
            if let revision { o["revision"] = .string(revision) }
        case .failure(let error):
            o["ok"] = false
            o["error"] = ["code": .string(error.code.rawValue), "message": .string(error.message)]
        }
        return o
    }

    /// Reads a reply as a client receives it.
    public static func decode(_ value: JSONValue) throws(PortierError) -> Reply {
        guard case .object(let o) = value else { throw .badRequest("reply is not an object") }
        let id: RequestID? = switch o["id"] {
        case .int(let i)?: .int(i)
        case .string(let s)?: .string(s)
        default: nil
        }
        switch o["ok"] {
        case .bool(true)?:
            return .success(id, o["result"]?.objectValue ?? [:], revision: o["revision"]?.stringValue)
        case .bool(false)?:
            guard let e = o["error"]?.objectValue, let codeText = e["code"]?.stringValue else {
                throw .badRequest("error reply without error.code")
            }
            // An unknown code from a newer server still surfaces, as `internal`, with its text.
            let code = ErrorCode(rawValue: codeText) ?? .internal
            let message = e["message"]?.stringValue ?? codeText
            return .failure(id, PortierError(code, code.rawValue == codeText ? message : "\(codeText): \(message)"))
        default:
            throw .badRequest("reply has no boolean ok")
        }
    }
}

extension ByteBuffer {
    /// Writes `reply` as one frame, straight into the buffer (the same bytes as
    /// `reply.json` would give, without building that object first).
    public mutating func writeReplyFrame(_ reply: Reply) {
        writeFrame { out in
            out.writeStaticString("{\"id\":")
            if let id = reply.id { out.writeJSON(id.json) } else { out.writeStaticString("null") }
            switch reply.outcome {
            case .success(let result, let revision):
                out.writeStaticString(",\"ok\":true,\"result\":")
                out.writeJSON(result)
                if let revision {
                    out.writeStaticString(",\"revision\":")
                    out.writeJSONString(revision)
                }
            case .failure(let error):
                out.writeStaticString(",\"ok\":false,\"error\":{\"code\":")
                out.writeJSONString(error.code.rawValue)
                out.writeStaticString(",\"message\":")
                out.writeJSONString(error.message)
                out.writeStaticString("}")
            }
            out.writeStaticString("}")
        }
    }

    /// Writes `request` as one frame.
    public mutating func writeRequestFrame(_ request: Request) {
        writeFrame { $0.writeJSON(request.json) }
    }
}

/// The protocol version this build speaks; `hello` reports it.
public enum ProtocolVersion {
    public static let current = 1
}
