import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

@Suite("User administration (R-USR-1, 3, 5, 6, 7, 12, 13)")
struct UserAdministrationTests {
    @Test("R-USR-1: an administrator invites; the user is invited with the role asked (default basic) and gets an activation link")
    func invite() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.environment("acme.test")
            let bob = try await s.invite("bob@acme.test", role: "advanced", as: "admin@acme.test")
            #expect(bob["status"] == "invited")
            #expect(bob["role"] == "advanced")
            let carol = try await client.call("user.invite", actor: "admin@acme.test", params: ["email": "carol@elsewhere.test"])
            #expect(carol.string("user", "role") == "basic")
            #expect(!(try await s.token(for: "bob@acme.test")).isEmpty)
            let activated = try await s.activate("bob@acme.test")
            #expect(activated["status"] == "active")
            #expect(activated["role"] == "advanced")
            let bad = try await client.send("user.invite", actor: "admin@acme.test", params: ["email": "x@acme.test", "role": "owner"])
            #expect(bad.errorCode == .badRequest)
            #expect(try server.database.owner("SELECT count(*) AS n FROM users WHERE email_norm = 'x@acme.test'").first!.int64("n") == 0)
        }
    }

    @Test("R-USR-1, R-ENV-6: inviting an address that already has an account is a conflict")
    func inviteExisting() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.environment("acme.test")
            try await s.signup("someone@gmail.com")
            let reply = try await client.send("user.invite", actor: "admin@acme.test", params: ["email": "SOMEONE@gmail.com"])
            #expect(reply.errorCode == .conflict)
        }
    }

    @Test("R-USR-12: basic and advanced users cannot invite, remove, block, unblock or change roles")
    func forbiddenForNonAdministrators() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.environment("acme.test")
            let target = try await s.member("target@acme.test", as: "admin@acme.test")
            for role in ["basic", "advanced"] {
                let actor = try await s.member("\(role)@acme.test", role: role, as: "admin@acme.test")
                let attempts: [(String, JSONObject)] = [
                    ("user.invite", ["email": "new@acme.test"]),
                    ("user.set_role", ["user": .string(target.id), "role": "administrator"]),
                    ("user.set_role", ["user": .string(actor.id), "role": "administrator"]),
                    ("user.block", ["user": .string(target.id)]),
                    ("user.unblock", ["user": .string(target.id)]),
                    ("user.remove", ["user": .string(target.id)]),
                    ("user.resend_invitation", ["user": .string(target.id)]),
                    ("audit.list", [:]),
                ]
                for (op, params) in attempts {
                    let reply = try await client.send(op, actor: actor.id, params: params)
                    #expect(reply.errorCode == .forbidden, "\(role) \(op)")
                }
            }
            let roles = try server.database.owner("SELECT role, status FROM users WHERE email_norm = 'target@acme.test'").first
            #expect(roles?["role"] == "basic")
            #expect(roles?["status"] == "active")
        }
    }

    @Test("R-USR-3: a resent invitation's new token works and the earlier one stops working")
    func resend() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.environment("acme.test")
            let bob = try await s.invite("bob@acme.test", as: "admin@acme.test")
            let first = try await s.token(for: "bob@acme.test")
            try await client.call("user.resend_invitation", actor: "admin@acme.test", params: ["user": .string(bob.id)])
            let second = try await s.token(for: "bob@acme.test")
            #expect(first != second)
            let old = try await client.send("user.activate", params: ["token": .string(first), "password": .string(Scenario.password)])
            guard case .failure(let e) = old.outcome else { Issue.record("superseded token worked"); return }
            #expect(e.code == .expiredToken)
            #expect(e.message.contains("replaced"))
            #expect(try await client.send("user.activate", params: ["token": .string(second), "password": .string(Scenario.password)]).isSuccess)
            let again = try await client.send("user.resend_invitation", actor: "admin@acme.test", params: ["user": .string(bob.id)])
            #expect(again.errorCode == .invalidState)
        }
    }

    @Test("R-USR-13: past the hourly invitation limit, user.invite is rate_limited and creates nothing")
    func rateLimit() async throws {
        try await withClient(configure: { _, service in service.invitationsPerHour = 3 }) { server, client in
            let s = Scenario(client)
            try await s.environment("acme.test")
            for i in 0..<3 { try await s.invite("u\(i)@acme.test", as: "admin@acme.test") }
            let reply = try await client.send("user.invite", actor: "admin@acme.test", params: ["email": "u3@acme.test"])
            #expect(reply.errorCode == .rateLimited)
            #expect(try server.database.owner("SELECT count(*) AS n FROM users WHERE email_norm = 'u3@acme.test'").first!.int64("n") == 0)
            // Another environment has its own budget.
            try await s.environment("other.test")
            try await s.invite("v@other.test", as: "admin@other.test")
        }
    }

    @Test("R-USR-13: concurrent invitations cannot race past the limit")
    func rateLimitRace() async throws {
        try await withClient(configure: { _, service in service.invitationsPerHour = 5 }) { server, client in
            try await Scenario(client).environment("acme.test")
            let successes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<20 {
                    group.addTask { try await client.send("user.invite", actor: "admin@acme.test", params: ["email": .string("r\(i)@acme.test")]).isSuccess }
                }
                return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
            }
            #expect(successes == 5)
            #expect(try server.database.owner("SELECT count(*) AS n FROM users WHERE status = 'invited'").first!.int64("n") == 5)
        }
    }

    @Test("R-USR-13: pending invitations are listed with status invited and revoked with user.remove")
    func listAndRevokeInvitations() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.environment("acme.test")
            let bob = try await s.invite("bob@acme.test", as: "admin@acme.test")
            try await s.member("carol@acme.test", as: "admin@acme.test")
            let invited = try await client.call("user.list", actor: "admin@acme.test", params: ["status": "invited"])
            #expect(invited["users"]?.arrayValue?.map { $0.objectValue!.id } == [bob.id])
            let token = try await s.token(for: "bob@acme.test")
            try await client.call("user.remove", actor: "admin@acme.test", params: ["user": .string(bob.id)])
            let after = try await client.call("user.list", actor: "admin@acme.test", params: ["status": "invited"])
            #expect(after["users"]?.arrayValue?.isEmpty == true)
            let activation = try await client.send("user.activate", params: ["token": .string(token), "password": .string(Scenario.password)])
            #expect(activation.errorCode == .expiredToken)
        }
    }

    @Test("user.list filters by role and status and pages without gaps; user.get by id or email")
    func listAndGet() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            var ids = [admin.id]
            for i in 0..<5 { ids.append(try await s.member("m\(i)@acme.test", role: i % 2 == 0 ? "advanced" : "basic", as: admin.id).id) }
            var seen: [String] = []
            var cursor: String?
            repeat {
                var params: JSONObject = ["limit": 2]
                if let cursor { params["cursor"] = .string(cursor) }
                let page = try await client.call("user.list", actor: "m1@acme.test", params: params)
                seen += page["users"]!.arrayValue!.map { $0.objectValue!.id }
                cursor = page["next_cursor"]?.stringValue
            } while cursor != nil
            #expect(seen == ids)
            let advanced = try await client.call("user.list", actor: admin.id, params: ["role": "advanced"])
            #expect(advanced["users"]?.arrayValue?.count == 3)
            let byEmail = try await client.call("user.get", actor: "m1@acme.test", params: ["user": "M0@acme.test"])
            #expect(byEmail.string("user", "id") == ids[1])
            #expect(try await client.send("user.list", actor: admin.id, params: ["status": "gone"]).errorCode == .badRequest)
        }
    }

    @Test("R-USR-5: a role change takes effect at once and is audited with before and after")
    func setRole() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.environment("acme.test")
            let bob = try await s.member("bob@acme.test", as: "admin@acme.test")
            let reply = try await client.send("user.set_role", actor: "admin@acme.test", params: ["user": .string(bob.id), "role": "administrator"])
            guard case .success(let result, let revision) = reply.outcome else { Issue.record("set_role failed"); return }
            #expect(result.string("user", "role") == "administrator")
            #expect(revision != nil)
            // Bob acts as administrator on the very next request, without logging in again.
            try await s.invite("carol@acme.test", as: bob.id)
            let env = try await client.call("environment.get", actor: bob.id)
            #expect(env["environment"]?.objectValue?["warnings"] == [])
            let events = try await client.call("audit.list", actor: bob.id)["events"]!.arrayValue!.map { $0.objectValue! }
            let change = events.first { $0["op"] == "user.set_role" }
            #expect(change?["target"] == .string(bob.id))
            #expect(change?["details"]?.objectValue?["before"] == ["role": "basic"])
            #expect(change?["details"]?.objectValue?["after"] == ["role": "administrator"])
        }
    }

    @Test("R-USR-6: a blocked user cannot act or log in until unblocked; invited users cannot be blocked")
    func blockAndUnblock() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.environment("acme.test")
            let bob = try await s.member("bob@acme.test", as: "admin@acme.test")
            let blocked = try await client.call("user.block", actor: "admin@acme.test", params: ["user": .string(bob.id)])
            #expect(blocked.string("user", "status") == "blocked")
            #expect(try await client.send("environment.get", actor: bob.id).errorCode == .forbidden)
            #expect(try await client.send("user.authenticate", params: ["email": "bob@acme.test", "password": .string(Scenario.password)]).errorCode == .blocked)
            #expect(try await client.send("user.block", actor: "admin@acme.test", params: ["user": .string(bob.id)]).errorCode == .invalidState)
            try await client.call("user.unblock", actor: "admin@acme.test", params: ["user": .string(bob.id)])
            #expect(try await client.send("environment.get", actor: bob.id).isSuccess)
            #expect(try await client.send("user.unblock", actor: "admin@acme.test", params: ["user": .string(bob.id)]).errorCode == .invalidState)
            let carol = try await s.invite("carol@acme.test", as: "admin@acme.test")
            #expect(try await client.send("user.block", actor: "admin@acme.test", params: ["user": .string(carol.id)]).errorCode == .invalidState)
        }
    }

    @Test("R-USR-7, R-MEM-6: removing a user ends every membership, own and partner, and the user cannot log in; the audit keeps it")
    func remove() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.environment("acme.test")
            try await s.environment("partner.test")
            let bob = try await s.member("bob@acme.test", as: "admin@acme.test")
            let bobID = ScopedID(bob.id, kind: .user)!
            // Memberships are made by later operations; arrange them directly here.
            let partnerEnv = try server.database.owner("SELECT environment_id FROM users WHERE email_norm = 'admin@partner.test'").first!.int64("environment_id")
            let ownOrg = try server.database.owner("INSERT INTO organisations (environment_id, name, status) VALUES ($1, 'Own', 'active') RETURNING organisation_id", [bobID.environment.raw]).first!.int64("organisation_id")
            let partnerOrg = try server.database.owner("INSERT INTO organisations (environment_id, name, status) VALUES ($1, 'Theirs', 'active') RETURNING organisation_id", [partnerEnv]).first!.int64("organisation_id")
            try server.database.owner("INSERT INTO memberships (environment_id, organisation_id, user_environment_id, user_id) VALUES ($1, $2, $1, $3)", [bobID.environment.raw, ownOrg, bobID.raw])
            try server.database.owner("INSERT INTO memberships (environment_id, organisation_id, user_environment_id, user_id) VALUES ($1, $2, $3, $4)", [partnerEnv, partnerOrg, bobID.environment.raw, bobID.raw])
            try server.database.owner("INSERT INTO membership_links (environment_id, user_id, organisation_environment_id, organisation_id) VALUES ($1, $2, $3, $4)", [bobID.environment.raw, bobID.raw, partnerEnv, partnerOrg])

            try await client.call("user.remove", actor: "admin@acme.test", params: ["user": .string(bob.id)])
            #expect(try server.database.owner("SELECT count(*) AS n FROM memberships").first!.int64("n") == 0)
            #expect(try server.database.owner("SELECT count(*) AS n FROM membership_links").first!.int64("n") == 0)
            #expect(try await client.send("user.authenticate", params: ["email": "bob@acme.test", "password": .string(Scenario.password)]).errorCode == .invalidCredentials)
            #expect(try await client.send("user.get", actor: "admin@acme.test", params: ["user": .string(bob.id)]).errorCode == .notFound)
            let ownEvents = try await client.call("audit.list", actor: "admin@acme.test")["events"]!.arrayValue!.map { $0.objectValue! }
            #expect(ownEvents.contains { $0["op"] == "user.remove" && $0["target"] == .string(bob.id) })
            #expect(ownEvents.contains { $0["op"] == "member.remove" })
            let partnerEvents = try await client.call("audit.list", actor: "admin@partner.test")["events"]!.arrayValue!.map { $0.objectValue! }
            #expect(partnerEvents.contains { $0["op"] == "member.remove" && $0["details"]?.objectValue?["user"] == .string(bob.id) })
            // The address is free again.
            try await s.invite("bob@acme.test", as: "admin@acme.test")
        }
    }
}
