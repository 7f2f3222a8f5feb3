import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

@Suite("Changes reach the next check (R-USR-5, R-PRM-5), off-boarding (R-USR-10), lookups (R-PRM-4)")
struct AccessChangeTests {
    @Test("R-USR-5, R-PRM-5: after every operation that changes access, the very next check on another connection answers the new truth")
    func nextCheckSeesChange() async throws {
        try await withServer { server in
            let writer = try await server.client()
            let reader = Scenario(try await server.client())
            let s = Scenario(writer)
            let admin = try await s.environment("acme.test")
            try await s.environment("partner.test")
            let ptn = try await s.partners(admin.id, "admin@partner.test")
            let org = try await s.organisation("Acme BV", as: admin.id)
            let bob = try await s.member("bob@acme.test", as: admin.id)

            func step(_ op: String, _ params: JSONObject, as actor: String = admin.id, then user: String, _ permission: String, in organisation: String? = nil, expect: Bool) async throws {
                try await writer.call(op, actor: actor, params: params)
                let (allowed, reason) = try await reader.check(user, permission, in: organisation)
                #expect(allowed == expect, "after \(op): \(user) \(permission) → \(reason)")
            }
            try await step("member.add", ["organisation": .string(org), "user": .string(bob.id)], then: bob.id, "documents.view", in: org, expect: true)
            try await step("member.set_role", ["organisation": .string(org), "user": .string(bob.id), "role": "administrator"], then: bob.id, "members.manage", in: org, expect: true)
            try await step("member.set_role", ["organisation": .string(org), "user": .string(bob.id), "role": "member"], then: bob.id, "members.manage", in: org, expect: false)
            try await step("user.set_role", ["user": .string(bob.id), "role": "administrator"], then: bob.id, "users.invite", expect: true)
            try await step("user.set_role", ["user": .string(bob.id), "role": "advanced"], then: bob.id, "users.invite", expect: false)
            try await step("user.block", ["user": .string(bob.id)], then: bob.id, "documents.view", in: org, expect: false)
            try await step("user.unblock", ["user": .string(bob.id)], then: bob.id, "documents.view", in: org, expect: true)
            try await step("member.remove", ["organisation": .string(org), "user": .string(bob.id)], then: bob.id, "documents.view", in: org, expect: false)
            try await step("member.add", ["organisation": .string(org), "user": "admin@partner.test"], then: "admin@partner.test", "documents.view", in: org, expect: false)
            let request = try await s.inbox("admin@partner.test")[0]
            try await step("inbox.accept", ["request": request["id"]!], as: "admin@partner.test", then: "admin@partner.test", "documents.view", in: org, expect: true)
            try await step("partnership.end", ["partnership": .string(ptn)], then: "admin@partner.test", "documents.view", in: org, expect: false)
            try await step("member.add", ["organisation": .string(org), "user": .string(bob.id)], then: bob.id, "documents.view", in: org, expect: true)
            try await step("user.remove", ["user": .string(bob.id)], then: bob.id, "documents.view", in: org, expect: false)
            await writer.close()
            await reader.client.close()
        }
    }

    @Test("R-USR-10, R-MEM-6: off-boarding removes every membership, own and partner, then the user, in one request")
    func offboard() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            try await s.environment("partner.test")
            try await s.partners(admin.id, "admin@partner.test")
            let ours = try await s.organisation("Ours BV", as: admin.id)
            let theirs = try await s.organisation("Theirs BV", as: "admin@partner.test")
            let bob = try await s.member("bob@acme.test", as: admin.id)
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(ours), "user": .string(bob.id)])
            try await client.call("member.add", actor: "admin@partner.test", params: ["organisation": .string(theirs), "user": .string(bob.id)])
            try await client.call("inbox.accept", actor: bob.id, params: ["request": try await s.inbox(bob.id)[0]["id"]!])
            #expect(try await s.check(bob.id, "documents.view", in: theirs).0)
            try await client.call("user.offboard", actor: admin.id, params: ["user": .string(bob.id)])
            #expect(try server.database.owner("SELECT count(*) AS n FROM memberships WHERE user_id = $1", [ScopedID(bob.id, kind: .user)!.raw]).first!.int64("n") == 0)
            #expect(try await s.check(bob.id, "documents.view", in: theirs) == (false, "unknown_user"))
            #expect(try await client.send("user.authenticate", params: ["email": "bob@acme.test", "password": .string(Scenario.password)]).errorCode == .invalidCredentials)
            let theirEvents = try await client.call("audit.list", actor: "admin@partner.test")["events"]!.arrayValue!.map { $0.objectValue! }
            #expect(theirEvents.contains { $0["op"] == "member.remove" && $0["details"]?.objectValue?["reason"] == "user.offboard" })
        }
    }

    @Test("R-USR-10, R-USR-8: the last administrator is off-boarded only with a successor, who becomes administrator in the same transaction")
    func offboardLastAdministrator() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let bob = try await s.member("bob@acme.test", as: admin.id)
            #expect(try await client.send("user.offboard", actor: admin.id, params: ["user": .string(admin.id)]).errorCode == .lastAdministrator)
            #expect(try await client.send("user.offboard", actor: admin.id, params: ["user": .string(admin.id), "successor": .string(admin.id)]).errorCode == .badRequest)
            let carol = try await s.invite("carol@acme.test", as: admin.id)
            #expect(try await client.send("user.offboard", actor: admin.id, params: ["user": .string(admin.id), "successor": .string(carol.id)]).errorCode == .invalidState)
            try await client.call("user.offboard", actor: admin.id, params: ["user": .string(admin.id), "successor": "bob@acme.test"])
            let env = try await client.call("environment.get", actor: bob.id)["environment"]!.objectValue!
            #expect(env["administrators"] == [.string(bob.id)])
            let events = try await client.call("audit.list", actor: bob.id)["events"]!.arrayValue!.map { $0.objectValue!["op"]!.stringValue! }
            #expect(Array(events.prefix(2)) == ["user.offboard", "user.set_role"])
        }
    }

    @Test("R-PRM-4: lookups answer both directions, own and partner environments, and agree with check")
    func lookups() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            try await s.environment("partner.test")
            try await s.partners(admin.id, "admin@partner.test")
            let one = try await s.organisation("One BV", as: admin.id)
            let two = try await s.organisation("Two BV", as: admin.id)
            let theirs = try await s.organisation("Theirs BV", as: "admin@partner.test")
            let bob = try await s.member("bob@acme.test", as: admin.id)
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(one), "user": .string(bob.id), "role": "administrator"])
            try await client.call("member.add", actor: "admin@partner.test", params: ["organisation": .string(theirs), "user": .string(bob.id)])
            try await client.call("inbox.accept", actor: bob.id, params: ["request": try await s.inbox(bob.id)[0]["id"]!])
            try await client.call("member.remove", actor: admin.id, params: ["organisation": .string(two), "user": .string(admin.id)])

            func orgs(_ user: String, _ permission: String) async throws -> Set<String> {
                Set(try await client.call("lookup.organisations", params: ["user": .string(user), "permission": .string(permission)])["organisations"]!.arrayValue!.map { $0.objectValue!.id })
            }
            func users(_ org: String, _ permission: String) async throws -> Set<String> {
                Set(try await client.call("lookup.users", params: ["organisation": .string(org), "permission": .string(permission)])["users"]!.arrayValue!.map { $0.objectValue!.id })
            }
            #expect(try await orgs(bob.id, "documents.view") == [one, theirs])
            #expect(try await orgs(bob.id, "members.manage") == [one])
            #expect(try await orgs(admin.id, "documents.view") == [one])
            #expect(try await orgs(admin.id, "organisation.edit") == [one, two])
            #expect(try await users(one, "documents.view") == [admin.id, bob.id])
            #expect(try await users(one, "members.manage") == [admin.id, bob.id])
            #expect(try await users(two, "documents.view") == [])
            #expect(try await users(two, "members.manage") == [admin.id])
            let partnerAdmin = try await client.call("user.get", actor: "admin@partner.test", params: ["user": "admin@partner.test"]).string("user", "id")!
            #expect(try await users(theirs, "documents.view") == [partnerAdmin, bob.id])
            // They agree with check, item by item.
            for org in [one, two, theirs] {
                for permission in ["documents.view", "members.manage", "organisation.edit"] {
                    for user in [admin.id, bob.id, partnerAdmin] {
                        let allowed = try await s.check(user, permission, in: org).0
                        #expect(allowed == (try await users(org, permission)).contains(user), "\(user) \(permission) \(org)")
                        #expect(allowed == (try await orgs(user, permission)).contains(org), "\(user) \(permission) \(org)")
                    }
                }
            }
            try await client.call("user.block", actor: admin.id, params: ["user": .string(bob.id)])
            #expect(try await orgs(bob.id, "documents.view").isEmpty)
            #expect(try await users(one, "documents.view") == [admin.id])
        }
    }
}
