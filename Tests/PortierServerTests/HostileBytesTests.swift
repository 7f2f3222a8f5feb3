import Foundation
import PortierClient
import PortierDomain
import PortierProtocol
import PortierServer
import PortierStorage
import PortierTestSupport
import Testing

/// What an attacker on the socket can send, through a real server on real
/// sockets and PostgreSQL (issue 12's findings): bursts, long pipelines, the
/// worst JSON shapes, NUL characters, a full service socket.
@Suite("Hostile bytes on the socket (R-SEC-2, R-SEC-3, docs/rules.md §10)")
struct HostileBytesTests {
    static let burstKinds: [(name: String, payload: String, code: String)] = [
        ("empty", "", "bad_request"),
        ("invalid JSON", "{nope}!", "bad_request"),
        ("unknown op", #"{"id":1,"op":"no.such.op"}"#, "unknown_op"),
        ("bad actor", #"{"id":1,"op":"user.get","actor":"not an actor","params":{"user":"usr_1_1"}}"#, "bad_request"),
    ]

    @Test("R-SEC-2: a burst of 30,000 frames of each bad kind in one write is answered in full, and the server lives",
          arguments: 0..<4)
    func burst(_ kind: Int) async throws {
        let (name, payload, code) = Self.burstKinds[kind]
        try await withServer { server in
            let client = try FrameCounter(path: server.servicePath)
            let frame = FrameCounter.frame(payload)
            var burst: [UInt8] = []
            burst.reserveCapacity(frame.count * 30_000)
            for _ in 0..<30_000 { burst += frame }
            try await client.write(burst)
            #expect(await client.waitFor(30_000, seconds: 120), "\(name): \(client.replies)")
            #expect(client.replies == [code: 30_000], "\(name)")
            #expect(!client.closedByServer)
            let other = try await server.client()
            #expect(try await other.call("ping").isEmpty)
            await other.close()
        }
    }

    @Test("100,000 pipelined pings from a client that reads while it writes are all answered")
    func pipelinedPings() async throws {
        try await withServer { server in
            let client = try FrameCounter(path: server.servicePath)
            var batch: [UInt8] = []
            for i in 0..<1000 { batch += FrameCounter.frame(#"{"id":\#(i),"op":"ping"}"#) }
            for _ in 0..<100 { try await client.write(batch) }
            #expect(await client.waitFor(100_000, seconds: 180))
            #expect(client.replies == ["ok": 100_000])
        }
    }

    /// Frames near the 1 MiB limit in the shapes that cost a parser most
    /// (`WorstCaseJSON`, also timed by `Scripts/bench-parse.sh`), and one frame
    /// just past each cap: what each must be answered with.
    static func worstCases() -> [(name: String, payload: String, message: String)] {
        let limit = (1 << 20) - 64
        let shapes = WorstCaseJSON.shapes.map { shape in
            let payload = String(decoding: WorstCaseJSON.request(shape, bytes: limit), as: UTF8.self)
            // Within the caps (escapes), ping refuses its unknown parameter; past the
            // value cap, the parser refuses the frame first.
            return (shape.name, payload, "")
        }
        func params(_ value: String) -> String { #"{"id":7,"op":"ping","params":{"x":\#(value)}}"# }
        return shapes + [
            ("plain strings", String(decoding: WorstCaseJSON.request(WorstCaseJSON.plain, bytes: limit), as: UTF8.self), "unknown parameter \"x\""),
            ("one key too many", params("{" + (0..<1025).map { #""k\#($0)":0"# }.joined(separator: ",") + "}"), "more than 1024 keys"),
            ("one element too many", params("[" + Array(repeating: "0", count: 4097).joined(separator: ",") + "]"), "more than 4096 elements"),
            ("one value too many", params("[" + Array(repeating: "[0,0]", count: 2731).joined(separator: ",") + "]"), "more than 8192 values"),
            ("a string too long", params("\"" + String(repeating: "a", count: 65_537) + "\""), "longer than 65536 bytes"),
            ("an escaped string too long", params("\"" + String(repeating: #"\u00e9"#, count: 32_769) + "\""), "longer than 65536 bytes"),
            ("nested too deep", params(String(repeating: "[", count: 40) + String(repeating: "]", count: 40)), "deeper than 32"),
            ("a number too long", params(String(repeating: "1", count: 65)), "number longer than 64"),
            ("a duplicate key among many", params("{" + (0..<500).map { #""k\#($0)":0"# }.joined(separator: ",") + #","k250":1}"#), "duplicate key"),
            ("maximum nesting within the cap", params(String(repeating: "[", count: 29) + String(repeating: "]", count: 29)), "unknown parameter \"x\""),
        ]
    }

    @Test("R-SEC-2: the worst JSON shapes at the frame limit are answered correctly and the connection stays usable")
    func worstShapes() async throws {
        try await withClient { _, client in
            for (name, payload, message) in Self.worstCases() {
                #expect(payload.utf8.count < 1 << 20, "\(name) fits the frame limit")
                try await client.sendRaw(FrameCounter.frame(payload))
                var iterator = client.unmatchedReplies.makeAsyncIterator()
                // Replies with a readable id come back matched... unless nobody waits:
                // this one has id 7 and no waiter, so it arrives here.
                guard let reply = await iterator.next(), case .failure(let error) = reply.outcome else {
                    Issue.record("\(name): no error reply")
                    continue
                }
                #expect(error.code == .badRequest, "\(name)")
                #expect(message.isEmpty || error.message.contains(message), "\(name): \(error.message)")
                #expect(try await client.call("ping").isEmpty, "\(name)")
            }
        }
    }

    @Test("R-SEC-2: with the service socket full, the support socket still answers")
    func supportKeepsItsConnections() async throws {
        try await withServer(configure: { transport, _ in
            transport.maximumConnections = 2
            transport.maximumSupportConnections = 2
        }) { server in
            let a = try await server.client()
            let b = try await server.client()
            #expect(try await a.call("ping").isEmpty)
            #expect(try await b.call("ping").isEmpty)
            let refused = try await server.client()
            var iterator = refused.unmatchedReplies.makeAsyncIterator()
            #expect(await iterator.next()?.errorCode == .overloaded)
            let support = try await server.client(support: true)
            #expect(try await support.call("ping").isEmpty)
            #expect(try await support.call("hello")["socket"] == "support")
            for client in [a, b, refused, support] { await client.close() }
        }
    }
}
