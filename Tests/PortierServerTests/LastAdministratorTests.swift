import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

@Suite("The last administrator (R-USR-8, R-USR-9)")
struct LastAdministratorTests {
    @Test("R-USR-8: demoting, blocking or removing the last active administrator is refused with last_administrator")
    func refused() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let attempts: [(String, JSONObject)] = [
                ("user.set_role", ["user": .string(admin.id), "role": "advanced"]),
                ("user.block", ["user": .string(admin.id)]),
                ("user.remove", ["user": .string(admin.id)]),
            ]
            for (op, params) in attempts {
                let reply = try await client.send(op, actor: admin.id, params: params)
                guard case .failure(let e) = reply.outcome else { Issue.record("\(op) succeeded"); continue }
                #expect(e.code == .lastAdministrator, "\(op)")
                #expect(e.message.contains("appoint another administrator first"))
            }
            let row = try server.database.owner("SELECT role, status FROM users").first
            #expect(row?["role"] == "administrator")
            #expect(row?["status"] == "active")
            // An invited administrator does not count: they cannot act yet.
            try await s.invite("next@acme.test", role: "administrator", as: admin.id)
            #expect(try await client.send("user.set_role", actor: admin.id, params: ["user": .string(admin.id), "role": "basic"]).errorCode == .lastAdministrator)
            try await s.activate("next@acme.test")
            #expect(try await client.send("user.set_role", actor: admin.id, params: ["user": .string(admin.id), "role": "basic"]).isSuccess)
        }
    }

    /// Two administrators; each does `op` to the other at the same instant, from
    /// two connections. Exactly one may win, and one active administrator remains.
    /// The loser is refused either as no longer an administrator (`forbidden`: the
    /// winner's change reached the loser first) or by R-USR-8 itself.
    func race(_ op: String, params: @escaping @Sendable (String) -> JSONObject, rounds: Int) async throws {
        try await withServer { server in
            let first = try await server.client()
            let second = try await server.client()
            let s = Scenario(first)
            for round in 0..<rounds {
                let domain = "race\(round).test"
                let a = try await s.environment(domain)
                let b = try await s.member("b@\(domain)", role: "administrator", as: a.id)
                let (toB, toA) = (params(b.id), params(a.id))
                async let one = first.send(op, actor: a.id, params: toB)
                async let two = second.send(op, actor: b.id, params: toA)
                let replies = try await [one, two]
                #expect(replies.filter(\.isSuccess).count == 1, "round \(round)")
                #expect(replies.filter { $0.errorCode == .lastAdministrator || $0.errorCode == .forbidden }.count == 1, "round \(round)")
                let env = ScopedID(a.id, kind: .user)!.environment
                let admins = try server.database.owner(
                    "SELECT count(*) AS n FROM users WHERE environment_id = $1 AND role = 'administrator' AND status = 'active'", [env.raw]
                ).first!.int64("n")
                #expect(admins == 1, "round \(round)")
            }
            await first.close()
            await second.close()
        }
    }

    @Test("R-USR-8: two administrators demoting each other at once leave one administrator, 100 times out of 100")
    func demotionRace() async throws {
        try await race("user.set_role", params: { ["user": .string($0), "role": "basic"] }, rounds: 100)
    }

    @Test("R-USR-8: two administrators blocking each other at once leave one administrator, 100 times out of 100")
    func blockRace() async throws {
        try await race("user.block", params: { ["user": .string($0)] }, rounds: 100)
    }

    @Test("R-USR-8: two administrators removing each other at once leave one administrator, 100 times out of 100")
    func removeRace() async throws {
        try await race("user.remove", params: { ["user": .string($0)] }, rounds: 100)
    }

    @Test("R-USR-8, R-SEC-4: forced interleavings: one administrator's change waits at its checked rule while the other's comes in; one active administrator remains, 100 rounds",
          arguments: [("user.set_role", "user.set_role"), ("user.block", "user.remove"), ("user.remove", "user.block"), ("user.remove", "user.remove")])
    func forcedRace(_ firstOp: String, _ secondOp: String) async throws {
        func params(_ op: String, _ user: String) -> JSONObject {
            op == "user.set_role" ? ["user": .string(user), "role": "basic"] : ["user": .string(user)]
        }
        try await withPausingServer { server in
            let client = try await server.client()
            let s = Scenario(client)
            for round in 0..<100 {
                let domain = "forced\(round).test"
                let a = try await s.environment(domain).id
                let b = try await s.member("b@\(domain)", role: "administrator", as: a).id
                let (toB, toA) = (params(firstOp, b), params(secondOp, a))
                let replies = try await interleave(server, pause: .lastAdministratorChecked,
                    first: { try await client.send(firstOp, actor: a, params: toB) },
                    second: { try await client.send(secondOp, actor: b, params: toA) })
                #expect(replies[0].isSuccess, "round \(round): the first goes through")
                #expect(replies[1].errorCode == .forbidden || replies[1].errorCode == .lastAdministrator, "round \(round): \(replies[1])")
                let env = ScopedID(a, kind: .user)!.environment
                let admins = try server.database.owner(
                    "SELECT count(*) AS n FROM users WHERE environment_id = $1 AND role = 'administrator' AND status = 'active'", [env.raw]
                ).first!.int64("n")
                #expect(admins == 1, "round \(round)")
            }
            await client.close()
        }
    }

    @Test("R-USR-9: environment.get reports single_administrator until a second administrator is active")
    func warning() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            #expect(try await client.call("environment.get", actor: admin.id)["environment"]?.objectValue?["warnings"] == ["single_administrator"])
            try await s.member("second@acme.test", role: "administrator", as: admin.id)
            let env = try await client.call("environment.get", actor: admin.id)["environment"]!.objectValue!
            #expect(env["warnings"] == [])
            #expect(env["administrators"]?.arrayValue?.count == 2)
        }
    }
}
