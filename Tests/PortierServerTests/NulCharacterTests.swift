import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

/// R-SEC-3: a NUL (U+0000) anywhere in a request is `bad_request` before any
/// database work, in every family of operations; nothing is created.
@Suite("R-SEC-3: NUL characters are refused everywhere")
struct NulCharacterTests {
    @Test("R-SEC-3: NUL in params, actor, consistency or id is bad_request in every op family, and changes nothing")
    func everyFamily() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test").id
            let org = try await s.organisation("Acme BV", as: admin)
            let bob = try await s.member("bob@acme.test", as: admin).id
            let nul = "x\u{0}y"
            let before = try await snapshot(client, admin: admin)

            let requests: [(op: String, actor: String?, params: JSONObject)] = [
                ("signup", nil, ["email": "new@other.test", "name": .string("Bob\u{0}Mallory")]),
                ("signup", nil, ["email": .string("n\u{0}ew@other.test")]),
                ("user.activate", nil, ["token": .string(nul), "password": "long enough password"]),
                ("user.authenticate", nil, ["email": "admin@acme.test", "password": .string("correct\u{0}horse")]),
                ("user.invite", admin, ["email": .string("carol\u{0}@acme.test")]),
                ("user.set_role", admin, ["user": .string(bob + "\u{0}"), "role": "advanced"]),
                ("user.set_role", admin, ["user": .string(bob), "role": .string("advanced\u{0}")]),
                ("user.email.add", bob, ["email": .string("bob2\u{0}@acme.test")]),
                ("organisation.create", admin, ["name": .string("Evil\u{0}Corp")]),
                ("organisation.update", admin, ["organisation": .string(org), "name": .string("Acme\u{0}BV")]),
                ("member.add", admin, ["organisation": .string(org), "user": .string(bob), "role": .string("administrator\u{0}")]),
                ("partnership.propose", admin, ["email": .string("someone\u{0}@other.test")]),
                ("inbox.accept", bob, ["request": .string(nul)]),
                ("audit.list", admin, ["cursor": .string(nul)]),
                ("outbox.ack", nil, ["ids": [.string(nul)]]),
                ("check", nil, ["user": .string(bob), "permission": .string("documents.view\u{0}"), "organisation": .string(org)]),
                ("check.bulk", nil, ["checks": [["user": .string(bob), "permission": "documents.view", "organisation": .string(org + "\u{0}")]]]),
                ("lookup.organisations", nil, ["user": .string(bob), "permission": .string("documents\u{0}.view")]),
                ("lookup.users", nil, ["organisation": .string(org), "permission": .string("\u{0}")]),
                ("user.set_role", admin + "\u{0}", ["user": .string(bob), "role": "advanced"]),
            ]
            for r in requests {
                let reply = try await client.send(r.op, actor: r.actor, params: r.params)
                #expect(reply.errorCode == .badRequest, "\(r.op) \(r.params)")
                if case .failure(let e) = reply.outcome { #expect(e.message.contains("NUL"), "\(r.op): \(e.message)") }
            }
            // consistency and the id itself
            let token = try await client.send("check", params: ["user": .string(bob), "permission": "documents.view"],
                                              consistency: .atLeast("env_1:\u{0}1"))
            #expect(token.errorCode == .badRequest)
            let support = try await server.client(support: true)
            let appoint = try await support.send("support.appoint_admin", params: [
                "environment": "env_1", "user": .string(bob),
                "verification": ["method": "kvk_extract", "reference": .string("KvK\u{0}123")],
            ])
            #expect(appoint.errorCode == .badRequest)
            await support.close()

            let after = try await snapshot(client, admin: admin)
            #expect(after == before, "nothing was created or changed")
        }
    }

    /// What a request with a NUL could have changed: users, organisations, the
    /// audit log, the outbox.
    func snapshot(_ client: PortierClient, admin: String) async throws -> [String] {
        let users = try await client.call("user.list", actor: admin)["users"]?.arrayValue ?? []
        let orgs = try await client.call("organisation.list", actor: admin)["organisations"]?.arrayValue ?? []
        let audit = try await client.call("audit.list", actor: admin)["events"]?.arrayValue ?? []
        let outbox = try await client.call("outbox.list")["messages"]?.arrayValue ?? []
        return users.map { "\($0)" } + orgs.map { "\($0)" } + ["audit \(audit.count)", "outbox \(outbox.count)"]
    }
}
