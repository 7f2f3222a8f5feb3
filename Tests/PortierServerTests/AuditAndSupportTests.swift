import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

@Suite("Audit log and support (R-AUD-1, R-SUP-1)")
struct AuditAndSupportTests {
    @Test("R-AUD-1: every change is in the log, newest first, saying who did what to whom; pages with next_cursor")
    func auditLog() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let bob = try await s.member("bob@acme.test", as: admin.id)
            try await client.call("user.set_role", actor: admin.id, params: ["user": .string(bob.id), "role": "advanced"])
            try await client.call("user.block", actor: admin.id, params: ["user": .string(bob.id)])
            var events: [JSONObject] = []
            var cursor: String?
            repeat {
                var params: JSONObject = ["limit": 2]
                if let cursor { params["cursor"] = .string(cursor) }
                let page = try await client.call("audit.list", actor: admin.id, params: params)
                events += page["events"]!.arrayValue!.map { $0.objectValue! }
                cursor = page["next_cursor"]?.stringValue
            } while cursor != nil
            #expect(events.map { $0["op"]!.stringValue! } == ["user.block", "user.set_role", "user.activate", "user.invite", "user.activate", "signup"])
            let ids = events.map { ScopedID($0.id, kind: .event)!.raw }
            #expect(ids == ids.sorted(by: >))
            let block = events[0]
            #expect(block["actor"] == .string(admin.id))
            #expect(block["target"] == .string(bob.id))
            #expect(block["details"]?.objectValue?["before"] == ["status": "active"])
            #expect(block["details"]?.objectValue?["after"] == ["status": "blocked"])
        }
    }

    @Test("R-SUP-1: support appoints an administrator with a verification method and reference, audited with both")
    func appoint() async throws {
        try await withServer { server in
            let client = try await server.client()
            let support = try await server.client(support: true)
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let bob = try await s.member("bob@acme.test", as: admin.id)
            let env = bob["environment"]!.stringValue!
            let params: JSONObject = ["environment": .string(env), "user": "bob@acme.test",
                                      "verification": ["method": "kvk_extract", "reference": "KvK 12345678 dated 2026-11-20"]]
            // Only on the support socket.
            #expect(try await client.send("support.appoint_admin", params: params).errorCode == .forbidden)
            let result = try await support.call("support.appoint_admin", params: params)
            #expect(result.string("user", "role") == "administrator")
            let events = try await client.call("audit.list", actor: bob.id)["events"]!.arrayValue!.map { $0.objectValue! }
            let event = events.first { $0["op"] == "support.appoint_admin" }
            #expect(event?["actor"] == .null)
            #expect(event?["actor_label"]?.stringValue?.hasPrefix("support:") == true)
            #expect(event?["details"]?.objectValue?["verification"] == ["method": "kvk_extract", "reference": "KvK 12345678 dated 2026-11-20"])
            await client.close()
            await support.close()
        }
    }

    @Test("R-SUP-1: an unknown method, an empty reference, a user of another environment are refused and change nothing")
    func refused() async throws {
        try await withServer { server in
            let client = try await server.client()
            let support = try await server.client(support: true)
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            try await s.environment("other.test")
            let env = admin["environment"]!.stringValue!
            let cases: [(JSONObject, ErrorCode)] = [
                (["environment": .string(env), "user": "admin@acme.test", "verification": ["method": "phone call", "reference": "x"]], .badRequest),
                (["environment": .string(env), "user": "admin@acme.test", "verification": ["method": "known_email", "reference": "   "]], .badRequest),
                (["environment": .string(env), "user": "admin@acme.test"], .badRequest),
                (["environment": .string(env), "user": "admin@other.test", "verification": ["method": "known_email", "reference": "mail"]], .notFound),
                (["environment": "env_999999", "user": "admin@acme.test", "verification": ["method": "known_email", "reference": "mail"]], .notFound),
                (["environment": .string(env), "user": "admin@acme.test", "verification": ["method": "known_email", "reference": "mail"]], .invalidState),
            ]
            for (params, code) in cases {
                #expect(try await support.send("support.appoint_admin", params: params).errorCode == code, "\(params)")
            }
            #expect(try server.database.owner("SELECT count(*) AS n FROM audit_events WHERE op = 'support.appoint_admin'").first!.int64("n") == 0)
            await client.close()
            await support.close()
        }
    }

    @Test("R-SUP-1: when the only administrator is blocked by support's choice of person, appointing unblocks that person")
    func appointBlocked() async throws {
        try await withServer { server in
            let client = try await server.client()
            let support = try await server.client(support: true)
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let bob = try await s.member("bob@acme.test", as: admin.id)
            try await client.call("user.block", actor: admin.id, params: ["user": .string(bob.id)])
            let result = try await support.call("support.appoint_admin", params: [
                "environment": bob["environment"]!, "user": .string(bob.id),
                "verification": ["method": "known_email", "reference": "reply from bob@acme.test"],
            ])
            #expect(result.string("user", "status") == "active")
            #expect(result.string("user", "role") == "administrator")
            await client.close()
            await support.close()
        }
    }

    @Test("R-SUP-1: organisations named in the appointment (active or not) get the user as organisation administrator; other administrators get admin_appointed; another environment's organisation is not_found and changes nothing")
    func appointWithOrganisations() async throws {
        try await withServer { server in
            let client = try await server.client()
            let support = try await server.client(support: true)
            let s = Scenario(client)
            let admin = try await s.environment("linked.test")
            let second = try await s.member("second@linked.test", role: "administrator", as: admin.id)
            let bob = try await s.member("bob@linked.test", as: admin.id)
            let active = try await s.organisation("Linked BV", as: admin.id)
            let draft = try await s.organisation("Linked Draft BV", as: admin.id, activate: false)
            let memberOf = try await s.organisation("Linked Member BV", as: admin.id)
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(memberOf), "user": .string(bob.id)])
            let foreignAdmin = try await s.environment("foreign.test")
            let foreign = try await s.organisation("Foreign BV", as: foreignAdmin.id)
            let env = bob["environment"]!
            let verification: JSONValue = ["method": "known_email", "reference": "reply from bob@linked.test"]
            // Another environment's organisation: not_found, nothing written.
            let refused = try await support.send("support.appoint_admin", params: [
                "environment": env, "user": .string(bob.id), "verification": verification, "organisations": [.string(active), .string(foreign)],
            ])
            #expect(refused.errorCode == .notFound)
            for bad: JSONValue in ["org_1", [1], ["not an id"]] {
                let reply = try await support.send("support.appoint_admin", params: ["environment": env, "user": .string(bob.id), "verification": verification, "organisations": bad])
                #expect(reply.errorCode == .badRequest, "\(bad)")
            }
            #expect(try await s.check(bob.id, "members.manage", in: active).0 == false)
            let result = try await support.call("support.appoint_admin", params: [
                "environment": env, "user": .string(bob.id), "verification": verification,
                "organisations": [.string(active), .string(draft), .string(memberOf)],
            ])
            #expect(result.string("user", "role") == "administrator")
            for org in [active, draft, memberOf] {
                let members = try await client.call("member.list", actor: admin.id, params: ["organisation": .string(org)])["memberships"]!.arrayValue!
                let own = members.compactMap(\.objectValue).first { $0["user"]?.stringValue == bob.id }
                #expect(own?["role"] == "administrator" && own?["status"] == "active", "\(org): \(members)")
            }
            let notices = try await client.call("outbox.list", params: ["limit": 1000])["messages"]!.arrayValue!.compactMap(\.objectValue)
                .filter { $0["kind"] == "admin_appointed" }
            #expect(Set(notices.compactMap { $0["to"]?.stringValue }) == ["admin@linked.test", "second@linked.test"], "\(notices)")
            #expect(notices.first?["details"]?.objectValue?["user"]?.stringValue == bob.id || notices.first?["user"]?.stringValue == bob.id, "\(notices)")
            _ = second
            await client.close()
            await support.close()
        }
    }
}
