import NIOCore
import PortierDomain
import PortierProtocol
import Testing

@Suite("Request and reply envelopes (docs/rules.md §10)")
struct EnvelopeTests {
    func decode(_ text: String) throws(RequestDecodingError) -> Request {
        try Request.decode(payload: ByteBuffer(string: text))
    }

    @Test("a full request decodes")
    func full() throws {
        let r = try decode(#"{"id":"a-7","op":"member.add","actor":"usr_1_2","params":{"x":1},"consistency":{"at_least":"env_1:4"}}"#)
        #expect(r.id == .string("a-7"))
        #expect(r.op == "member.add")
        #expect(r.actor == "usr_1_2")
        #expect(r.params["x"] == 1)
        #expect(r.consistency == .atLeast("env_1:4"))
        #expect(try decode(#"{"id":1,"op":"check","consistency":"full"}"#).consistency == .full)
    }

    @Test("bad envelopes are bad_request, keeping the id when it could be read", arguments: [
        (#"[1]"#, false), (#""x""#, false), (#"{"op":"ping"}"#, false), (#"{"id":1.5,"op":"ping"}"#, false),
        (#"{"id":true,"op":"ping"}"#, false), (#"{"id":null,"op":"ping"}"#, false), (#"{"id":[1],"op":"ping"}"#, false),
        (#"{"id":{},"op":"ping"}"#, false), (#"{"id":1}"#, true), (#"{"id":1,"op":5}"#, true),
        (#"{"id":1,"op":"ping","actor":3}"#, true), (#"{"id":1,"op":"ping","params":[]}"#, true),
        (#"{"id":1,"op":"ping","consistency":"weak"}"#, true), (#"{"id":1,"op":"ping","consistency":{"at_least":1}}"#, true),
        (#"{"id":1,"op":"ping","extra":1}"#, true), ("not json", false), ("", false),
    ])
    func bad(_ text: String, keepsID: Bool) {
        do {
            _ = try decode(text)
            Issue.record("decoded \(text)")
        } catch {
            #expect(error.error.code == .badRequest)
            #expect((error.id != nil) == keepsID)
        }
    }

    @Test("replies encode as docs/rules.md §10 says and decode back")
    func replies() throws {
        let ok = Reply.success(.int(7), ["a": 1], revision: "env_1:2")
        #expect(ok.json == ["id": 7, "ok": true, "result": ["a": 1], "revision": "env_1:2"])
        let failed = Reply.failure(.string("x"), .lastAdministrator)
        let back = try Reply.decode(.object(failed.json))
        guard case .failure(let e) = back.outcome else { Issue.record("not a failure"); return }
        #expect(e.code == .lastAdministrator)
        #expect(back.id == .string("x"))
    }

    @Test("params readers name the field and the expected type")
    func params() throws {
        let p: JSONObject = ["s": "x", "n": 5, "a": [1]]
        #expect(try p.requiredString("s") == "x")
        #expect(throws: PortierError.badRequest("params.n must be a string, got number")) { _ = try p.requiredString("n") }
        #expect(throws: PortierError.badRequest("params.missing is required")) { _ = try p.requiredString("missing") }
        #expect(throws: PortierError.badRequest("unknown parameter \"a\"")) { try p.rejectUnknownKeys(allowed: ["s", "n"]) }
        #expect(throws: PortierError.self) { _ = try p.optionalEnum("s", EnvironmentRole.self) }
    }
}

@Suite("Reply frames")
struct ReplyFrameTests {
    @Test("the direct frame writer produces exactly the reply's JSON", arguments: [
        Reply.success(.int(7), ["allowed": true, "reason": "member"], revision: "env_1:2"),
        Reply.success(.string("x\"y"), [:]),
        Reply.failure(nil, PortierError(.frameTooLarge, "frame of 9 bytes is \"over\"")),
    ])
    func direct(_ reply: Reply) throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        buffer.writeReplyFrame(reply)
        let length = buffer.readInteger(as: UInt32.self)!
        #expect(Int(length) == buffer.readableBytes)
        let parsed = try JSONParser.parse(Array(buffer.readableBytesView))
        #expect(parsed == .object(reply.json))
    }
}
