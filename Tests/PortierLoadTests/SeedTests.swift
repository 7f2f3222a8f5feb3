import PortierClient
import PortierDomain
import PortierLoad
import PortierProtocol
import PortierTestSupport
import Testing

/// A small shape with many accountants, so partnerships and partner memberships occur.
let smallShape = LoadShape(environments: 12, users: 240, organisations: 60, memberships: 500, seed: 42, accountantShare: 0.3, partnershipsPerAccountant: 2)

func seeded(_ shape: LoadShape = smallShape) async throws -> (TestDatabase, LoadPlan) {
    let database = try await TestDatabase.create()
    let manifest = try Seeder(conninfo: database.ownerConninfo).seed(shape, password: "load-password", hashing: .testing)
    return (database, LoadPlan(manifest))
}

@Suite("portier-load seed: data as the operations would have made it")
struct SeedTests {
    @Test("R-PRM-1, R-MEM-2, R-MEM-3, R-PRM-5: every check in seeded environments equals the plan, the index and the SQL oracle")
    func checksAgreeWithTheOracle() async throws {
        let (database, plan) = try await seeded()
        #expect(plan.partnerships.count > 0)
        let totals = plan.totals
        #expect(try database.owner("SELECT count(*) AS n FROM users").first!.int64("n") == Int64(totals.users))
        #expect(try database.owner("SELECT count(*) AS n FROM memberships").first!.int64("n") == Int64(totals.memberships))
        let server = try await TestServer.start(database: database)
        defer { Task { await server.stop() } }
        let client = try await server.client()
        var compared = 0
        for env in plan.environments {
            for u in 0..<env.userCount {
                let user = env.firstUser + Int64(u)
                let userRef = "usr_\(env.id.raw)_\(user)"
                // Organisations of its own environment and, for accountants, of their clients.
                var organisations = (0..<env.organisationCount).map { (env.index, env.firstOrganisation + Int64($0)) }
                for (client, members) in plan.partnerMembers where members.contains(where: { $0.user == user }) {
                    organisations.append((client, plan.environments[client].firstOrganisation))
                }
                for (orgEnv, org) in organisations {
                    let orgRef = "org_\(plan.environments[orgEnv].id.raw)_\(org)"
                    for permission in [Permission.documentsView, .membersManage, .organisationEdit] {
                        let params: JSONObject = ["user": .string(userRef), "permission": .string(permission.rawValue), "organisation": .string(orgRef)]
                        let expected = plan.decide(permission, user: user, organisation: (orgEnv, org))
                        let index = try await client.call("check", params: params)
                        let sql = try await client.call("check", params: params, consistency: .full)
                        #expect(index["allowed"]?.boolValue == expected.allowed && index["reason"]?.stringValue == expected.reason.rawValue,
                                "\(permission.rawValue) \(userRef) \(orgRef): index \(index), plan \(expected)")
                        #expect(sql == index, "\(permission.rawValue) \(userRef) \(orgRef): SQL \(sql), index \(index)")
                        compared += 1
                    }
                }
            }
        }
        #expect(compared > 1000)
    }

    @Test("R-USR-8, R-ENV-5, R-ENV-6, R-AUD-1: seeded rows keep the invariants the operations keep")
    func invariants() async throws {
        let (database, plan) = try await seeded()
        // Every environment has an active administrator and a confirmed claim on its domain.
        let withoutAdmin = try database.owner("""
            SELECT count(*) AS n FROM environments e WHERE NOT EXISTS
              (SELECT 1 FROM users u WHERE u.environment_id = e.environment_id AND u.role = 'administrator' AND u.status = 'active')
            """).first!.int64("n")
        #expect(withoutAdmin == 0)
        #expect(try database.owner("SELECT count(*) AS n FROM domain_claims WHERE status = 'confirmed'").first!.int64("n") == Int64(plan.environments.count))
        // Every address is in the directory, once.
        #expect(try database.owner("SELECT count(*) AS n FROM users u LEFT JOIN email_directory d USING (email_norm) WHERE d.user_id IS DISTINCT FROM u.user_id").first!.int64("n") == 0)
        // Partnerships: both sides, one per pair; partner memberships mirrored in the user's environment.
        #expect(try database.owner("SELECT count(*) AS n FROM partnerships").first!.int64("n") == Int64(2 * plan.partnerships.count))
        #expect(try database.owner("""
            SELECT count(*) AS n FROM memberships m WHERE m.user_environment_id <> m.environment_id AND NOT EXISTS
              (SELECT 1 FROM membership_links l WHERE l.environment_id = m.user_environment_id AND l.user_id = m.user_id
                 AND l.organisation_environment_id = m.environment_id AND l.organisation_id = m.organisation_id)
            """).first!.int64("n") == 0)
        // Every member of an organisation belongs to an existing user; every change is audited and counted in the revision.
        #expect(try database.owner("SELECT count(*) AS n FROM memberships m LEFT JOIN users u ON u.environment_id = m.user_environment_id AND u.user_id = m.user_id WHERE u.user_id IS NULL").first!.int64("n") == 0)
        #expect(try database.owner("""
            SELECT count(*) AS n FROM environments e
            WHERE e.revision <> (SELECT count(*) FROM audit_events a WHERE a.environment_id = e.environment_id) OR e.revision = 0
            """).first!.int64("n") == 0)
        // Sequences continue after the seeded ids: the operations can create more.
        let server = try await TestServer.start(database: database)
        defer { Task { await server.stop() } }
        let client = try await server.client()
        let env = plan.environments[0]
        let invited = try await client.call("user.invite", actor: "usr_\(env.id.raw)_\(env.firstUser)", params: ["email": .string("new@\(env.domain)")])
        #expect(invited["user"]?.objectValue?["id"]?.stringValue != nil)
        let login = try await client.send("user.authenticate", params: ["email": .string(env.email(ofUser: env.firstUser)), "password": "load-password"])
        if case .failure(let error) = login.outcome { Issue.record("seeded administrator cannot log in: \(error)") }
    }
}
