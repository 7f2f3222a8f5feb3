import PortierClient
import PortierDomain
import PortierProtocol
import PortierStorage
import PortierTestSupport
import Testing

@Suite("The permission matrix of docs/rules.md §7 (R-PRM-1…3)")
struct PermissionMatrixTests {
    enum Kind: String, CaseIterable { case none, member, administrator, pending }

    struct Case: CustomStringConvertible {
        let partner: Bool
        let role: String
        let status: String
        let membership: Kind
        var id = ""
        var description: String { "\(partner ? "partner" : "own") \(role) \(status) \(membership.rawValue)" }
    }

    /// docs/rules.md §7 written out again, independently of the server's table.
    static func expected(_ permission: String, _ c: Case) -> Bool {
        guard c.status == "active" else { return false }                                   // R-PRM-1
        let activeMember = c.membership == .member || c.membership == .administrator
        switch permission {
        case "users.invite", "users.manage", "organisations.create", "subscriptions.manage", "environment.manage":
            return c.role == "administrator"
        case "partnerships.manage":
            return c.role == "advanced" || c.role == "administrator"
        case "documents.view", "documents.create", "documents.send", "organisation.view":
            return activeMember                                                             // R-PRM-2: no admin shortcut
        case "members.manage":
            return c.membership == .administrator || (!c.partner && c.role == "administrator")
        case "organisation.edit":
            return !c.partner && c.role == "administrator"
        default:
            Issue.record("unknown permission \(permission)")
            return false
        }
    }

    /// One user per role × status × membership kind × own/partner environment,
    /// arranged directly in the database, and the organisation they relate to.
    static func arrange(_ server: TestServer, _ client: PortierClient) async throws -> (cases: [Case], organisation: ScopedID, partnerEnvironment: EnvironmentID) {
        let s = Scenario(client)
        let admin = try await s.environment("acme.test")
        try await s.environment("partner.test")
        try await s.partners("admin@acme.test", "admin@partner.test")
        let org = ScopedID(try await s.organisation("Acme BV", as: admin.id), kind: .organisation)!
        let partnerEnv = try server.database.owner("SELECT environment_id FROM users WHERE email_norm = 'admin@partner.test'").first!.int64("environment_id")

        // Users in every combination, arranged directly in the database.
        var cases: [Case] = []
        for partner in [false, true] {
            for role in ["basic", "advanced", "administrator"] {
                for status in ["invited", "active", "blocked"] {
                    for kind in Kind.allCases where kind != .pending || partner {
                        cases.append(Case(partner: partner, role: role, status: status, membership: kind))
                    }
                }
            }
        }
        for i in cases.indices {
            let env = cases[i].partner ? partnerEnv : org.environment.raw
            let email = "m\(i)@\(cases[i].partner ? "partner" : "acme").test"
            let user = try server.database.owner(
                "INSERT INTO users (environment_id, email, email_norm, role, status) VALUES ($1, $2, $2, $3, $4) RETURNING user_id",
                [env, email, cases[i].role, cases[i].status]
            ).first!.int64("user_id")
            cases[i].id = ScopedID(.user, environment: EnvironmentID(env), raw: user).description
            let kind = cases[i].membership
            guard kind != .none else { continue }
            try server.database.owner(
                "INSERT INTO memberships (environment_id, organisation_id, user_environment_id, user_id, role, status) VALUES ($1, $2, $3, $4, $5, $6)",
                [org.environment.raw, org.raw, env, user, kind == .administrator ? "administrator" : "member", kind == .pending ? "pending" : "active"]
            )
            if cases[i].partner {
                try server.database.owner(
                    "INSERT INTO membership_links (environment_id, user_id, organisation_environment_id, organisation_id) VALUES ($1, $2, $3, $4)",
                    [env, user, org.environment.raw, org.raw]
                )
            }
        }

        return (cases, org, EnvironmentID(partnerEnv))
    }

    @Test("R-PRM-1, R-PRM-2, R-PRM-3: every role × status × membership kind × permission answers as docs/rules.md §7 says, in check and check.bulk alike")
    func matrix() async throws {
        try await withClient { server, client in
            let (cases, org, _) = try await Self.arrange(server, client)
            let s = Scenario(client)
            var items: [JSONValue] = []
            var expectations: [(Case, String, Bool)] = []
            for c in cases {
                for permission in Permission.allCases.map(\.rawValue) {
                    var item: JSONObject = ["user": .string(c.id), "permission": .string(permission)]
                    if Permission(rawValue: permission)!.rule.scope == .organisation { item["organisation"] = .string(org.description) }
                    items.append(.object(item))
                    expectations.append((c, permission, Self.expected(permission, c)))
                }
            }
            let results = try await client.call("check.bulk", params: ["checks": .array(items)])["results"]!.arrayValue!
            #expect(results.count == expectations.count)
            for ((c, permission, allowed), result) in zip(expectations, results) {
                let o = result.objectValue!
                #expect(o["allowed"] == .bool(allowed), "\(c) \(permission): \(o)")
                // The reasons R-PRM-3 names.
                if c.status == "blocked" { #expect(o["reason"] == "blocked") }
                if c.status == "invited" { #expect(o["reason"] == "not_activated") }
            }
            // A sample through single checks gives the same answers as the bulk.
            for (index, ((c, permission, allowed), bulk)) in zip(expectations, results).enumerated() where index % 7 == 0 {
                let org = Permission(rawValue: permission)!.rule.scope == .organisation ? org.description : nil
                let (single, reason) = try await s.check(c.id, permission, in: org)
                #expect(single == allowed, "\(c) \(permission)")
                #expect(bulk.objectValue?["reason"] == .string(reason))
            }
        }
    }

    @Test("R-PRM-3: the reasons say why: member, org_administrator, env_administrator, not_member, pending_membership, unknown_user, unknown_organisation")
    func reasons() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            try await s.environment("partner.test")
            try await s.partners(admin.id, "admin@partner.test")
            let org = try await s.organisation("Acme BV", as: admin.id)
            let other = try await s.organisation("Other BV", as: admin.id)
            let bob = try await s.member("bob@acme.test", as: admin.id)
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(org), "user": .string(bob.id)])
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(org), "user": "admin@partner.test"])
            #expect(try await s.check(bob.id, "documents.view", in: org) == (true, "member"))
            #expect(try await s.check(admin.id, "documents.view", in: org) == (true, "org_administrator"))
            // R-PRM-2: an environment administrator is not a member of what they did not join.
            try await client.call("member.remove", actor: admin.id, params: ["organisation": .string(other), "user": .string(admin.id)])
            #expect(try await s.check(admin.id, "documents.view", in: other) == (false, "not_member"))
            #expect(try await s.check(admin.id, "members.manage", in: other) == (true, "env_administrator"))
            #expect(try await s.check(admin.id, "organisation.edit", in: other) == (true, "env_administrator"))
            #expect(try await s.check("admin@partner.test", "documents.view", in: org) == (false, "pending_membership"))
            #expect(try await s.check("nobody@acme.test", "documents.view", in: org) == (false, "unknown_user"))
            #expect(try await s.check("usr_999999_1", "users.invite") == (false, "unknown_user"))
            #expect(try await s.check(bob.id, "documents.view", in: "org_1_999999") == (false, "unknown_organisation"))
            #expect(try await s.check(bob.id, "users.invite") == (false, "insufficient_role"))
        }
    }

    @Test("R-PRM-3: an unknown permission, or a missing organisation for an organisation-scoped one, is bad_request")
    func badRequests() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let org = try await s.organisation("Acme BV", as: admin.id)
            let cases: [JSONObject] = [
                ["user": .string(admin.id), "permission": "documents.fly", "organisation": .string(org)],
                ["user": .string(admin.id), "permission": "documents.view"],
                ["user": .string(admin.id), "permission": "documents.view", "organisation": "acme"],
                ["user": "bob", "permission": "users.invite"],
                ["user": .string(admin.id)],
            ]
            for params in cases {
                #expect(try await client.send("check", params: params).errorCode == .badRequest, "\(params)")
            }
            #expect(try await client.send("check.bulk", params: ["checks": []]).errorCode == .badRequest)
            #expect(try await client.send("check.bulk", params: ["checks": [["user": .string(admin.id), "permission": "nope"]]]).errorCode == .badRequest)
            #expect(try await client.send("lookup.organisations", params: ["user": .string(admin.id), "permission": "users.invite"]).errorCode == .badRequest)
        }
    }
}
