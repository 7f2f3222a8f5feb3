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
@Suite("Hostile bytes on the socket (R-SEC-2, R-SEC-3, SPEC §10)")
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

    /// Frames near the 1 MiB limit in the shapes that cost a parser most.
    static func worstCases() -> [(name: String, payload: String, message: String)] {
        let keys = (0..<1000).map { #""k\#($0)":0"# }.joined(separator: ",")
        let wide = "{" + (0..<80).map { #""o\#($0)":{\#(keys)}"# }.joined(separator: ",") + "}"
        let emptyObjects = "[" + (0..<100).map { _ in "[" + Array(repeating: "{}", count: 3000).joined(separator: ",") + "]" }.joined(separator: ",") + "]"
        let escapes = "[" + (0..<16).map { _ in "\"" + String(repeating: #"\u00e9"#, count: 10_000) + "\"" }.joined(separator: ",") + "]"
        let numbers = "[" + (0..<14).map { _ in "[" + (0..<8000).map { "\(1_000_000 + $0)" }.joined(separator: ",") + "]" }.joined(separator: ",") + "]"
        let nested = String(repeating: "[", count: 30) + String(repeating: "]", count: 30)
        func params(_ value: String) -> String { #"{"id":7,"op":"ping","params":{"x":\#(value)}}"# }
        return [
            ("wide objects", params(wide), "unknown parameter \"x\""),
            ("empty objects", params(emptyObjects), "unknown parameter \"x\""),
            ("\\u escapes", params(escapes), "unknown parameter \"x\""),
            ("numbers", params(numbers), "unknown parameter \"x\""),
            ("maximum nesting", params(nested), "unknown parameter \"x\""),
            ("one key too many", params("{" + (0..<1025).map { #""k\#($0)":0"# }.joined(separator: ",") + "}"), "more than 1024 keys"),
            ("one element too many", params("[" + Array(repeating: "0", count: 10_001).joined(separator: ",") + "]"), "more than 10000 elements"),
            ("a string too long", params("\"" + String(repeating: "a", count: 65_537) + "\""), "longer than 65536 bytes"),
            ("nested too deep", params(String(repeating: "[", count: 40) + String(repeating: "]", count: 40)), "deeper than 32"),
            ("a duplicate key among many", params("{" + (0..<500).map { #""k\#($0)":0"# }.joined(separator: ",") + #","k250":1}"#), "duplicate key"),
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
                #expect(error.message.contains(message), "\(name): \(error.message)")
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
