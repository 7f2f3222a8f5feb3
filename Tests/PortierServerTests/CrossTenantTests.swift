import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

@Suite("Cross-tenant attempts (R-ENV-1)")
struct CrossTenantTests {
    @Test("R-ENV-1: every user operation naming another environment's user, by id or email, answers not_found and changes nothing")
    func otherEnvironmentsUsers() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.environment("acme.test")
            try await s.environment("other.test")
            let victim = try await s.member("victim@other.test", as: "admin@other.test")
            let invited = try await s.invite("pending@other.test", as: "admin@other.test")
            let before = try server.database.owner("SELECT count(*) AS n, max(revision) AS r FROM environments").first!
            for target in [victim.id, "victim@other.test", invited.id, "pending@other.test"] {
                let attempts: [(String, JSONObject)] = [
                    ("user.get", ["user": .string(target)]),
                    ("user.set_role", ["user": .string(target), "role": "administrator"]),
                    ("user.block", ["user": .string(target)]),
                    ("user.unblock", ["user": .string(target)]),
                    ("user.remove", ["user": .string(target)]),
                    ("user.resend_invitation", ["user": .string(target)]),
                ]
                for (op, params) in attempts {
                    let reply = try await client.send(op, actor: "admin@acme.test", params: params)
                    guard case .failure(let e) = reply.outcome else { Issue.record("\(op) on \(target) succeeded"); continue }
                    #expect(e.code == .notFound, "\(op) \(target)")
                    #expect(!e.message.contains("other.test"), "\(op) must not hint where the user is")
                }
            }
            let after = try server.database.owner("SELECT count(*) AS n, max(revision) AS r FROM environments").first!
            #expect(before["r"] == after["r"])
            let row = try server.database.owner("SELECT role, status FROM users WHERE email_norm = 'victim@other.test'").first
            #expect(row?["role"] == "basic")
            #expect(row?["status"] == "active")
        }
    }

    @Test("R-ENV-1: an id forged with the actor's environment number but another's user number finds nothing")
    func forgedIDs() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            try await s.environment("other.test")
            let victim = try await s.member("victim@other.test", as: "admin@other.test")
            let mine = ScopedID(admin.id, kind: .user)!.environment
            let theirs = ScopedID(victim.id, kind: .user)!
            let forged = ScopedID(.user, environment: mine, raw: theirs.raw).description
            #expect(try await client.send("user.get", actor: admin.id, params: ["user": .string(forged)]).errorCode == .notFound)
            #expect(try await client.send("user.block", actor: admin.id, params: ["user": .string(forged)]).errorCode == .notFound)
        }
    }

    @Test("R-ENV-1: the audit log and user list show only the actor's environment")
    func listsStayHome() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.environment("acme.test")
            try await s.environment("other.test")
            try await s.member("x@other.test", as: "admin@other.test")
            let users = try await client.call("user.list", actor: "admin@acme.test")["users"]!.arrayValue!
            #expect(users.allSatisfy { $0.objectValue!["email"]!.stringValue!.hasSuffix("@acme.test") })
            let events = try await client.call("audit.list", actor: "admin@acme.test")["events"]!.arrayValue!
            #expect(events.allSatisfy { !($0.objectValue!["target"]?.stringValue ?? "").isEmpty })
            #expect(!events.contains { $0.objectValue!["actor_label"]!.stringValue!.hasSuffix("other.test") })
        }
    }
}
