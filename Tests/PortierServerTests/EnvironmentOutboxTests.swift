import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

@Suite("environment.get and the outbox (R-USR-9, R-OUT-1, R-ENV-1)")
struct EnvironmentOutboxTests {
    @Test("R-USR-9: one administrator reports single_administrator; the list names the active administrators")
    func singleAdministrator() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let alice = try await s.activeUser("alice@acme.test")
            let env = try await client.call("environment.get", actor: "alice@acme.test")
            #expect(env["environment"]?.objectValue?["warnings"] == ["single_administrator"])
            #expect(env["environment"]?.objectValue?["administrators"] == [alice["id"]!])
            // By id works as well as by email.
            let byID = try await client.call("environment.get", actor: alice["id"]!.stringValue!)
            #expect(byID.string("environment", "id") == env.string("environment", "id"))
        }
    }

    @Test("R-PRM-1: environment.get needs an active actor: missing, unknown, invited and other-environment forms are refused")
    func actorChecks() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let alice = try await s.activeUser("alice@acme.test")
            try await s.signup("bob@acme.test")
            #expect(try await client.send("environment.get").errorCode == .badRequest)
            #expect(try await client.send("environment.get", actor: "bob@acme.test").errorCode == .forbidden)
            #expect(try await client.send("environment.get", actor: "ghost@acme.test").errorCode == .forbidden)
            #expect(try await client.send("environment.get", actor: "not-an-actor").errorCode == .badRequest)
            // An id naming the right environment with a user that does not exist there.
            let env = ScopedID(alice["id"]!.stringValue!, kind: .user)!.environment
            #expect(try await client.send("environment.get", actor: "usr_\(env.raw)_999999").errorCode == .forbidden)
            #expect(try await client.send("environment.get", actor: "usr_999999_1").errorCode == .forbidden)
        }
    }

    @Test("R-OUT-1: acknowledged messages leave the list and their tokens are erased")
    func acknowledge() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.signup("alice@acme.test")
            try await s.signup("bob@gmail.com")
            let messages = try await client.call("outbox.list")["messages"]!.arrayValue!.map { $0.objectValue! }
            #expect(messages.count == 2)
            #expect(messages.allSatisfy { $0["token"]?.stringValue != nil })
            try await client.call("outbox.ack", params: ["ids": .array([messages[0]["id"]!])])
            let left = try await client.call("outbox.list")["messages"]!.arrayValue!
            #expect(left.count == 1)
            #expect(left.first?.objectValue?["id"] == messages[1]["id"])
            let tokens = try server.database.owner("SELECT count(token) AS n FROM outbox").first!.int64("n")
            #expect(tokens == 1)
            // Acknowledging twice is harmless.
            try await client.call("outbox.ack", params: ["ids": .array([messages[0]["id"]!])])
        }
    }

    @Test("R-OUT-1: an unknown id fails the acknowledgement and changes nothing")
    func acknowledgeUnknown() async throws {
        try await withClient { _, client in
            try await Scenario(client).signup("alice@acme.test")
            let id = try await client.call("outbox.list")["messages"]!.arrayValue![0].objectValue!["id"]!
            let reply = try await client.send("outbox.ack", params: ["ids": [id, "msg_1_999999"]])
            #expect(reply.errorCode == .notFound)
            #expect(try await client.call("outbox.list")["messages"]!.arrayValue!.count == 1)
            for bad: JSONValue in [[], ["nope"], [5], "msg_1_1"] {
                #expect(try await client.send("outbox.ack", params: ["ids": bad]).errorCode == .badRequest)
            }
        }
    }

    @Test("R-OUT-1: the outbox pages with limit and next_cursor, oldest first, without gaps or repeats")
    func paging() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            for i in 0..<7 { try await s.signup("u\(i)@gmail.com") }
            var seen: [String] = []
            var cursor: String?
            repeat {
                var params: JSONObject = ["limit": 3]
                if let cursor { params["cursor"] = .string(cursor) }
                let page = try await client.call("outbox.list", params: params)
                seen += page["messages"]!.arrayValue!.map { $0.objectValue!["to"]!.stringValue! }
                cursor = page["next_cursor"]?.stringValue
            } while cursor != nil
            #expect(seen == (0..<7).map { "u\($0)@gmail.com" })
            #expect(try await client.send("outbox.list", params: ["limit": 0]).errorCode == .badRequest)
            #expect(try await client.send("outbox.list", params: ["limit": "3"]).errorCode == .badRequest)
            #expect(try await client.send("outbox.list", params: ["cursor": "x"]).errorCode == .badRequest)
        }
    }

    @Test("R-SUP-1: support operations are refused on the service socket")
    func supportOnlyOnSupportSocket() async throws {
        try await withServer { server in
            let service = try await server.client()
            let reply = try await service.send("support.appoint_admin", params: [:])
            #expect(reply.errorCode == .forbidden)
            let support = try await server.client(support: true)
            let hello = try await support.call("hello")
            #expect(hello["socket"] == "support")
            #expect(try await support.send("support.nonexistent").errorCode == .unknownOp)
            await service.close()
            await support.close()
        }
    }

    @Test("every operation refuses unknown parameters")
    func unknownParams() async throws {
        try await withClient { _, client in
            for op in ["hello", "ping", "signup", "user.activate", "user.authenticate", "outbox.list", "outbox.ack"] {
                let reply = try await client.send(op, params: ["surprise": 1])
                #expect(reply.errorCode == .badRequest, "\(op)")
            }
        }
    }
}
