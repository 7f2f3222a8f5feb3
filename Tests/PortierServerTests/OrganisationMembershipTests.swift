import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

@Suite("Organisations and memberships (R-ORG-1…3, R-MEM-1…5)")
struct OrganisationMembershipTests {
    @Test("R-ORG-1: only an administrator creates organisations; the creator becomes its organisation administrator")
    func create() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let bob = try await s.member("bob@acme.test", role: "advanced", as: admin.id)
            #expect(try await client.send("organisation.create", actor: bob.id, params: ["name": "Nope BV"]).errorCode == .forbidden)
            let org = try await client.call("organisation.create", actor: admin.id, params: ["name": " Acme BV ", "kvk_number": "12345678", "country": "nl"])
            #expect(org["organisation"]?.objectValue?["status"] == "inactive")
            #expect(org["organisation"]?.objectValue?["name"] == "Acme BV")
            #expect(org["organisation"]?.objectValue?["country"] == "NL")
            let members = try await client.call("member.list", actor: admin.id, params: ["organisation": .string(org.string("organisation", "id")!)])
            #expect(members["memberships"]?.arrayValue?.first?.objectValue?["role"] == "administrator")
            #expect(members["memberships"]?.arrayValue?.first?.objectValue?["user"] == .string(admin.id))
        }
    }

    @Test("R-ORG-2: the KvK number is exactly 8 digits; organisations start inactive and take members only once active")
    func validationAndActivation() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            for bad in ["1234567", "123456789", "1234567a", "12 345 678"] {
                #expect(try await client.send("organisation.create", actor: admin.id, params: ["name": "X", "kvk_number": .string(bad)]).errorCode == .badRequest, "\(bad)")
            }
            #expect(try await client.send("organisation.create", actor: admin.id, params: ["name": "X", "country": "Netherlands"]).errorCode == .badRequest)
            #expect(try await client.send("organisation.create", actor: admin.id, params: ["name": "  "]).errorCode == .badRequest)
            let org = try await s.organisation("Acme BV", as: admin.id, activate: false)
            let bob = try await s.member("bob@acme.test", as: admin.id)
            #expect(try await client.send("member.add", actor: admin.id, params: ["organisation": .string(org), "user": .string(bob.id)]).errorCode == .invalidState)
            try await client.call("organisation.activate", actor: admin.id, params: ["organisation": .string(org)])
            #expect(try await client.send("organisation.activate", actor: admin.id, params: ["organisation": .string(org)]).errorCode == .invalidState)
            let added = try await client.call("member.add", actor: admin.id, params: ["organisation": .string(org), "user": .string(bob.id)])
            #expect(added["membership"]?.objectValue?["status"] == "active")
        }
    }

    @Test("R-ORG-3: only environment administrators edit details, audited before and after; null clears a field")
    func update() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let org = try await s.organisation("Acme BV", as: admin.id)
            let bob = try await s.member("bob@acme.test", as: admin.id)
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(org), "user": .string(bob.id), "role": "administrator"])
            #expect(try await client.send("organisation.update", actor: bob.id, params: ["organisation": .string(org), "name": "Mine"]).errorCode == .forbidden)
            let updated = try await client.call("organisation.update", actor: admin.id, params: ["organisation": .string(org), "kvk_number": "87654321", "name": "Acme Holding"])
            #expect(updated["organisation"]?.objectValue?["kvk_number"] == "87654321")
            let cleared = try await client.call("organisation.update", actor: admin.id, params: ["organisation": .string(org), "kvk_number": nil])
            #expect(cleared["organisation"]?.objectValue?["kvk_number"] == .null)
            let event = try await client.call("audit.list", actor: admin.id)["events"]!.arrayValue!.map { $0.objectValue! }.first { $0["op"] == "organisation.update" }
            #expect(event?["details"]?.objectValue?["after"] == ["kvk_number": nil])
            #expect(event?["details"]?.objectValue?["before"] == ["kvk_number": "87654321"])
        }
    }

    @Test("R-MEM-1, R-MEM-5: an organisation administrator manages only its own organisation; env administrators manage all; nobody else")
    func whoManages() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let one = try await s.organisation("One BV", as: admin.id)
            let two = try await s.organisation("Two BV", as: admin.id)
            let orgAdmin = try await s.member("oa@acme.test", as: admin.id)
            let plain = try await s.member("plain@acme.test", as: admin.id)
            let target = try await s.member("target@acme.test", as: admin.id)
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(one), "user": .string(orgAdmin.id), "role": "administrator"])
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(one), "user": .string(plain.id)])
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(two), "user": .string(orgAdmin.id)])
            // R-MEM-5: an organisation administrator who is a basic user of the environment.
            try await client.call("member.add", actor: orgAdmin.id, params: ["organisation": .string(one), "user": .string(target.id)])
            try await client.call("member.set_role", actor: orgAdmin.id, params: ["organisation": .string(one), "user": .string(target.id), "role": "administrator"])
            try await client.call("member.remove", actor: orgAdmin.id, params: ["organisation": .string(one), "user": .string(target.id)])
            // ...but not of the other organisation, where it is a plain member.
            #expect(try await client.send("member.add", actor: orgAdmin.id, params: ["organisation": .string(two), "user": .string(target.id)]).errorCode == .forbidden)
            #expect(try await client.send("member.add", actor: plain.id, params: ["organisation": .string(one), "user": .string(target.id)]).errorCode == .forbidden)
            #expect(try await client.send("member.remove", actor: plain.id, params: ["organisation": .string(one), "user": .string(orgAdmin.id)]).errorCode == .forbidden)
            // The environment administrator manages both.
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(two), "user": .string(target.id)])
            #expect(try await client.send("member.add", actor: admin.id, params: ["organisation": .string(two), "user": .string(target.id)]).errorCode == .conflict)
        }
    }

    @Test("R-MEM-2, R-MEM-4: a same-environment member has access at once; removal ends it at once and keeps the account")
    func accessAtOnce() async throws {
        try await withServer { server in
            let writer = try await server.client()
            let reader = try await server.client()
            let s = Scenario(writer)
            let admin = try await s.environment("acme.test")
            let org = try await s.organisation("Acme BV", as: admin.id)
            let bob = try await s.member("bob@acme.test", as: admin.id)
            #expect(try await Scenario(reader).check(bob.id, "documents.send", in: org).0 == false)
            try await writer.call("member.add", actor: admin.id, params: ["organisation": .string(org), "user": .string(bob.id)])
            #expect(try await Scenario(reader).check(bob.id, "documents.send", in: org) == (true, "member"))
            try await writer.call("member.remove", actor: admin.id, params: ["organisation": .string(org), "user": .string(bob.id)])
            #expect(try await Scenario(reader).check(bob.id, "documents.send", in: org) == (false, "not_member"))
            #expect(try await writer.send("user.get", actor: admin.id, params: ["user": .string(bob.id)]).isSuccess)
            await writer.close()
            await reader.close()
        }
    }

    @Test("organisation.get and member.list are for members and environment administrators; list shows what the actor may see")
    func visibility() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let one = try await s.organisation("One BV", as: admin.id)
            _ = try await s.organisation("Two BV", as: admin.id)
            let bob = try await s.member("bob@acme.test", as: admin.id)
            #expect(try await client.send("organisation.get", actor: bob.id, params: ["organisation": .string(one)]).errorCode == .forbidden)
            #expect(try await client.send("member.list", actor: bob.id, params: ["organisation": .string(one)]).errorCode == .forbidden)
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(one), "user": .string(bob.id)])
            #expect(try await client.send("organisation.get", actor: bob.id, params: ["organisation": .string(one)]).isSuccess)
            let bobs = try await client.call("organisation.list", actor: bob.id)["organisations"]!.arrayValue!
            #expect(bobs.map { $0.objectValue!.id } == [one])
            let admins = try await client.call("organisation.list", actor: admin.id, params: ["limit": 1])
            #expect(admins["organisations"]?.arrayValue?.count == 1)
            #expect(admins["next_cursor"] != nil)
        }
    }

    @Test("R-ENV-1: organisation and member operations on another environment's organisation answer not_found")
    func crossTenant() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let other = try await s.environment("other.test")
            let theirs = try await s.organisation("Theirs BV", as: other.id)
            let attempts: [(String, JSONObject)] = [
                ("organisation.get", ["organisation": .string(theirs)]),
                ("organisation.activate", ["organisation": .string(theirs)]),
                ("organisation.update", ["organisation": .string(theirs), "name": "Mine"]),
                ("member.add", ["organisation": .string(theirs), "user": .string(admin.id)]),
                ("member.set_role", ["organisation": .string(theirs), "user": .string(other.id), "role": "member"]),
                ("member.remove", ["organisation": .string(theirs), "user": .string(other.id)]),
                ("member.list", ["organisation": .string(theirs)]),
            ]
            for (op, params) in attempts {
                #expect(try await client.send(op, actor: admin.id, params: params).errorCode == .notFound, "\(op)")
            }
            // Their user cannot be added to our organisation without a partnership.
            let ours = try await s.organisation("Ours BV", as: admin.id)
            #expect(try await client.send("member.add", actor: admin.id, params: ["organisation": .string(ours), "user": .string(other.id)]).errorCode == .notFound)
            #expect(try await client.send("member.add", actor: admin.id, params: ["organisation": .string(ours), "user": "admin@other.test"]).errorCode == .notFound)
        }
    }
}
