import Foundation
import Logging
import NIOCore
import PortierClient
import PortierDomain
import PortierProtocol
import PortierServer
import PortierStorage
import PortierTestSupport
import Testing

@Suite("Transport: frames, pipelining, limits, peers (docs/rules.md §10, §12)")
struct TransportTests {
    func frame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        return withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload
    }

    func nextUnmatched(_ client: PortierClient) async -> Reply? {
        var iterator = client.unmatchedReplies.makeAsyncIterator()
        return await iterator.next()
    }

    @Test("hello reports server, version, protocol and limits; ping answers {}")
    func hello() async throws {
        try await withClient { _, client in
            let hello = try await client.call("hello")
            #expect(hello["server"] == "portierd")
            #expect(hello["protocol"] == .int(Int64(ProtocolVersion.current)))
            #expect(hello["limits"]?.objectValue?["max_frame_bytes"] == .int(1 << 20))
            #expect(try await client.call("ping").isEmpty)
        }
    }

    @Test("1,000 pipelined requests on one connection all come back, matched by id")
    func pipelining() async throws {
        try await withClient { _, client in
            let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<1000 {
                    group.addTask {
                        let op = i % 2 == 0 ? "ping" : "hello"
                        let reply = try await client.send(op)
                        guard case .success(let result, _) = reply.outcome else { return false }
                        return op == "ping" ? result.isEmpty : result["server"] == "portierd"
                    }
                }
                return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
            }
            #expect(ok == 1000)
        }
    }

    @Test("with a small in-flight bound, a burst is still answered in full (backpressure, not errors)")
    func inFlightBound() async throws {
        try await withClient(configure: { transport, _ in transport.maximumInFlightPerConnection = 2 }) { _, client in
            let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<200 { group.addTask { try await client.send("ping").isSuccess } }
                return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
            }
            #expect(ok == 200)
        }
    }

    @Test("garbage frames get bad_request and the connection stays usable", arguments: [
        "not json", "[1,2]", "\"text\"", "42", "{\"id\":1.5,\"op\":\"ping\"}", "{\"id\":true,\"op\":\"ping\"}", "",
        "{\"id\":1,\"op\":\"ping\",\"params\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}",
    ])
    func garbage(_ payload: String) async throws {
        try await withClient { _, client in
            try await client.sendRaw(frame(payload))
            let reply = await nextUnmatched(client)
            #expect(reply?.errorCode == .badRequest)
            #expect(try await client.call("ping").isEmpty)
        }
    }

    @Test("invalid UTF-8 in a frame gets bad_request and the connection stays usable")
    func badUTF8() async throws {
        try await withClient { _, client in
            let payload: [UInt8] = Array("{\"id\":1,\"op\":\"".utf8) + [0xFF, 0xFE] + Array("\"}".utf8)
            try await client.sendRaw(withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload)
            #expect(await nextUnmatched(client)?.errorCode == .badRequest)
            #expect(try await client.call("ping").isEmpty)
        }
    }

    @Test("a bad request whose id is readable is answered with that id")
    func badRequestKeepsID() async throws {
        try await withClient { _, client in
            try await client.sendRaw(frame(#"{"id":"mine","op":7}"#))
            let reply = await nextUnmatched(client)
            #expect(reply?.id == .string("mine"))
            #expect(reply?.errorCode == .badRequest)
        }
    }

    @Test("a header over the frame limit gets frame_too_large and the connection is closed, without waiting for the payload")
    func frameTooLarge() async throws {
        try await withClient(configure: { transport, _ in transport.frameLimits.maximumFrameBytes = 4096 }) { server, client in
            try await client.sendRaw(withUnsafeBytes(of: UInt32(1 << 30).bigEndian, Array.init))
            #expect(await nextUnmatched(client)?.errorCode == .frameTooLarge)
            for _ in 0..<500 where client.isConnected { try await Task.sleep(for: .milliseconds(10)) }
            #expect(!client.isConnected)
            let other = try await server.client()
            #expect(try await other.call("ping").isEmpty)
            await other.close()
        }
    }

    @Test("unknown operations get unknown_op")
    func unknownOp() async throws {
        try await withClient { _, client in
            let reply = try await client.send("no.such.op")
            #expect(reply.errorCode == .unknownOp)
        }
    }

    @Test("a client that disconnects mid-frame does not disturb the server")
    func disconnectMidFrame() async throws {
        try await withServer { server in
            for _ in 0..<20 {
                let client = try await server.client()
                try await client.sendRaw(Array(frame(#"{"id":1,"op":"ping"}"#).prefix(9)))
                await client.close()
            }
            let client = try await server.client()
            #expect(try await client.call("ping").isEmpty)
            await client.close()
        }
    }

    @Test("a half frame that never completes is cut off after the partial-frame timeout")
    func partialFrameTimeout() async throws {
        try await withClient(configure: { transport, _ in transport.partialFrameTimeout = .milliseconds(200) }) { _, client in
            try await client.sendRaw(Array(frame(#"{"id":1,"op":"ping"}"#).prefix(6)))
            for _ in 0..<200 where client.isConnected { try await Task.sleep(for: .milliseconds(10)) }
            #expect(!client.isConnected)
        }
    }

    @Test("an idle connection is closed after the idle timeout; a busy one is not")
    func idleTimeout() async throws {
        // Wide margins: CI runs the suite in parallel on two loaded cores. The busy
        // client pings back to back, so only a stall of 3 s could make it idle
        // (2 s happened once with the whole suite running).
        try await withServer(configure: { transport, _ in transport.idleTimeout = .seconds(3) }) { server in
            let idle = try await server.client()
            let busy = try await server.client()
            let start = ContinuousClock.now
            // The idle one goes once its timer sees 3 s without traffic: within a
            // few seconds, later on a loaded machine; the busy one keeps pinging.
            while ContinuousClock.now - start < .seconds(5) || (idle.isConnected && ContinuousClock.now - start < .seconds(20)) {
                #expect(try await busy.call("ping").isEmpty)
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(!idle.isConnected)
            #expect(busy.isConnected)
            await busy.close()
        }
    }

    @Test("past the connection limit, a new connection gets overloaded and is closed; others keep working")
    func connectionLimit() async throws {
        try await withServer(configure: { transport, _ in transport.maximumConnections = 2 }) { server in
            let a = try await server.client()
            #expect(try await a.call("ping").isEmpty)
            // b is admitted (answered) before c connects: two connections made back to
            // back are admitted on their event loops in either order.
            let b = try await server.client()
            #expect(try await b.call("ping").isEmpty)
            let c = try await server.client()
            #expect(await nextUnmatched(c)?.errorCode == .overloaded)
            #expect(try await b.call("ping").isEmpty)
            await a.close()
            try await Task.sleep(for: .milliseconds(100))
            let d = try await server.client()
            #expect(try await d.call("ping").isEmpty)
            for client in [b, c, d] { await client.close() }
        }
    }

    @Test("peer uids outside the allow-list get one forbidden frame; listed uids are served (SO_PEERCRED)")
    func allowList() async throws {
        let me = UInt32(getuid())
        try await withServer(configure: { transport, _ in
            transport.service.allowedUIDs = [me &+ 12345]
            transport.support.allowedUIDs = [me]
        }) { server in
            let refused = try await server.client()
            #expect(await nextUnmatched(refused)?.errorCode == .forbidden)
            let allowed = try await server.client(support: true)
            #expect(try await allowed.call("ping").isEmpty)
            await refused.close()
            await allowed.close()
        }
    }

    @Test("socket files get their configured modes: service 0660, support 0600 by default")
    func socketModes() async throws {
        try await withServer { server in
            let service = try FileManager.default.attributesOfItem(atPath: server.servicePath)[.posixPermissions] as? Int
            let support = try FileManager.default.attributesOfItem(atPath: server.supportPath)[.posixPermissions] as? Int
            #expect(service == 0o660)
            #expect(support == 0o600)
        }
    }

    @Test("socket files get a configured group (by name or gid) and mode")
    func socketGroups() async throws {
        // The daemon group (gid 1) exists on every Debian system.
        try await withServer(configure: { transport, _ in
            transport.service.group = "daemon"
            transport.support.group = "1"
            transport.support.mode = 0o660
        }) { server in
            let service = try FileManager.default.attributesOfItem(atPath: server.servicePath)
            let support = try FileManager.default.attributesOfItem(atPath: server.supportPath)
            #expect(service[.groupOwnerAccountName] as? String == "daemon")
            #expect((support[.groupOwnerAccountID] as? NSNumber)?.intValue == 1)
            #expect(support[.posixPermissions] as? Int == 0o660)
        }
    }

    @Test("a second server on the same sockets is refused with a clear message")
    func socketInUse() async throws {
        try await withServer { server in
            await #expect {
                _ = try await SocketListeners.open(server.server.configuration, logger: Logger(label: "test"))
            } throws: { "\($0)".contains("in use by a running server") }
            // The running server's sockets are untouched: it still answers.
            let client = try await server.client()
            _ = try await client.call("ping")
            await client.close()
        }
    }

    @Test("graceful stop answers what is in flight, then closes")
    func gracefulStop() async throws {
        let server = try await TestServer.start()
        let client = try await server.client()
        let admin = try await Scenario(client).environment("acme.test")
        let env = ScopedID(admin.id, kind: .user)!.environment
        // Hold the environment's row lock: the invitations below wait on it, in flight.
        let blocker = try PostgresConnection(conninfo: server.database.ownerConninfo)
        try blocker.execute("BEGIN")
        try blocker.query("SELECT 1 FROM environments WHERE environment_id = $1 FOR UPDATE", [env.raw])
        let replies = Task {
            try await withThrowingTaskGroup(of: Reply.self) { group in
                for i in 0..<4 {
                    group.addTask { try await client.send("user.invite", actor: admin.id, params: ["email": .string("late\(i)@acme.test")]) }
                }
                return try await group.reduce(into: [Reply]()) { $0.append($1) }
            }
        }
        try await waitUntil("4 requests in flight") { server.server.requestsInFlight >= 4 }
        let stopping = Task { await server.stop() }
        // Stops accepting (the socket file goes) while the invitations still wait on the lock.
        let path = server.servicePath
        try await waitUntil("stopped accepting", timeout: .seconds(10)) { !FileManager.default.fileExists(atPath: path) }
        #expect(server.server.requestsInFlight >= 4, "still in flight when the listener closed")
        try blocker.execute("COMMIT")
        await stopping.value
        let answered = try await replies.value
        #expect(answered.count == 4)
        #expect(answered.filter(\.isSuccess).count == 4)
        #expect(!client.isConnected)
    }
}
