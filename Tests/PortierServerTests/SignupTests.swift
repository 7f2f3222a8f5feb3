import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

@Suite("Sign-up and environments (R-ENV-2…8)")
struct SignupTests {
    @Test("R-ENV-2: an unclaimed domain creates an environment; the user is its administrator; the domain is claimed")
    func createsEnvironment() async throws {
        try await withClient { server, client in
            let r = try await Scenario(client).signup("alice@acme.test", name: "Alice")
            #expect(r.string("joined") == "created")
            #expect(r.string("user", "role") == "administrator")
            #expect(r.string("user", "status") == "invited")
            #expect(r.string("user", "name") == "Alice")
            #expect(r["environment"]?.objectValue?["domains"] == ["acme.test"])
            let claim = try server.database.owner("SELECT status FROM domain_claims WHERE domain = 'acme.test'").first
            #expect(claim?["status"] == "pending")
        }
    }

    @Test("R-ENV-3: a claimed domain joins its environment as basic with no memberships")
    func joinsEnvironment() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let first = try await s.signup("alice@acme.test")
            let second = try await s.signup("bob@acme.test")
            #expect(second.string("joined") == "existing")
            #expect(second.string("user", "role") == "basic")
            #expect(second.string("environment", "id") == first.string("environment", "id"))
            let memberships = try server.database.owner("SELECT count(*) AS n FROM memberships").first!.int64("n")
            #expect(memberships == 0)
        }
    }

    @Test("R-ENV-8: the administrators get a domain_join message when someone joins by domain")
    func domainJoinMessage() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.activeUser("alice@acme.test")
            try await s.signup("bob@acme.test")
            let messages = try await client.call("outbox.list")["messages"]!.arrayValue!.map { $0.objectValue! }
            let joins = messages.filter { $0["kind"] == "domain_join" }
            #expect(joins.count == 1)
            #expect(joins.first?["to"] == "alice@acme.test")
            #expect(joins.first?["details"]?.objectValue?["email"] == "bob@acme.test")
        }
    }

    @Test("R-ENV-4: shared mail domains create a new environment per sign-up and claim nothing")
    func sharedDomains() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let a = try await s.signup("ann@gmail.com")
            let b = try await s.signup("ben@GMAIL.com")
            #expect(a.string("joined") == "created")
            #expect(b.string("joined") == "created")
            #expect(a.string("environment", "id") != b.string("environment", "id"))
            #expect(b.string("user", "role") == "administrator")
            #expect(a["environment"]?.objectValue?["domains"] == [])
            #expect(try server.database.owner("SELECT count(*) AS n FROM domain_claims").first!.int64("n") == 0)
        }
    }

    @Test("R-ENV-4: every domain of the shipped lists, their subdomains and public suffixes claim nothing")
    func sharedFromTheShippedLists() async throws {
        // One server for all of them: a server per domain would hold 14 pools at once.
        try await withClient { server, client in
            let s = Scenario(client)
            for domain in ["yahoo.fr", "gmx.at", "laposte.net", "libero.it", "t-online.de", "orange.fr", "telenet.be", "skynet.be",
                           "qq.com", "mailinator.com", "yopmail.com", "mail.gmail.com", "github.io", "co.uk"] {
                let a = try await s.signup("ann@\(domain)")
                try await s.activate("ann@\(domain)")
                let b = try await s.signup("ben@\(domain)")
                #expect(a.string("environment", "id") != b.string("environment", "id"), "a later user of \(domain) joined a stranger's environment")
                #expect(b.string("joined") == "created", "\(domain)")
            }
            #expect(try server.database.owner("SELECT count(*) AS n FROM domain_claims").first!.int64("n") == 0)
        }
    }

    @Test("R-ENV-9: café.nl and xn--caf-dma.nl are one domain and one address: claims, sign-up, uniqueness, login; results in ASCII")
    func internationalDomain() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let anna = try await s.signup("anna@café.nl")
            #expect(anna.string("user", "email") == "anna@xn--caf-dma.nl")
            #expect(anna["environment"]?.objectValue?["domains"] == ["xn--caf-dma.nl"])
            try await s.activate("anna@xn--caf-dma.nl")
            let bert = try await s.signup("bert@XN--CAF-DMA.nl")
            #expect(bert.string("joined") == "existing")
            #expect(bert.string("environment", "id") == anna.string("environment", "id"))
            let cees = try await s.signup("cees@CAFÉ.NL")
            #expect(cees.string("environment", "id") == anna.string("environment", "id"))
            #expect(try await client.send("signup", params: ["email": "anna@xn--caf-dma.nl"]).errorCode == .conflict, "the same address")
            let login = try await client.send("user.authenticate", params: ["email": "Anna@Café.nl", "password": .string(Scenario.password)])
            #expect(login.isSuccess, "\(login)")
            #expect(try await client.send("signup", params: ["email": "änna@café.nl"]).errorCode == .badRequest)
        }
    }

    @Test("R-ENV-4: a claim on a domain that later becomes shared is kept, still joins, and is reported at start")
    func claimOnNewlySharedDomain() async throws {
        let first = try await TestServer.start()
        let client = try await first.client()
        try await Scenario(client).activeUser("ceo@soon-shared.test")
        #expect(await first.service.reportSharedMailDomains().isEmpty)
        await client.close()
        await first.stop()
        // The next start has the domain on its shared list.
        let second = try await TestServer.start(database: first.database) { _, service in
            service.sharedMailDomains = try! SharedMailDomains(additions: ["soon-shared.test"])
        }
        let reported = await second.service.reportSharedMailDomains()
        #expect(reported.map(\.domain) == ["soon-shared.test"])
        #expect(try second.database.owner("SELECT count(*) AS n FROM domain_claims WHERE domain = 'soon-shared.test'").first!.int64("n") == 1, "the claim is kept")
        await second.stop()
    }

    @Test("R-ENV-4: the shared list can be extended in configuration")
    func configuredSharedDomain() async throws {
        try await withClient(configure: { _, service in
            service.sharedMailDomains = try! SharedMailDomains(additions: ["mail.example"])
        }) { _, client in
            let s = Scenario(client)
            let a = try await s.signup("a@mail.example")
            let b = try await s.signup("b@mail.example")
            #expect(a.string("environment", "id") != b.string("environment", "id"))
        }
    }

    @Test("R-ENV-5: domains and emails compare case-insensitively and trimmed")
    func caseInsensitive() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let a = try await s.signup("  Alice@ACME.test ")
            let b = try await s.signup("bob@acme.TEST")
            #expect(a.string("environment", "id") == b.string("environment", "id"))
            #expect(a.string("user", "email") == "Alice@ACME.test")
        }
    }

    @Test("R-ENV-5: an invalid email is rejected with bad_request and creates nothing")
    func invalidEmail() async throws {
        try await withClient { server, client in
            for bad in ["nobody", "a@b", "x@@y.test", ""] {
                let reply = try await client.send("signup", params: ["email": .string(bad)])
                guard case .failure(let e) = reply.outcome else { Issue.record("accepted \(bad)"); continue }
                #expect(e.code == .badRequest)
            }
            let reply = try await client.send("signup", params: ["email": 5])
            guard case .failure(let e) = reply.outcome else { Issue.record("accepted a number"); return }
            #expect(e.code == .badRequest)
            #expect(try server.database.owner("SELECT count(*) AS n FROM environments").first!.int64("n") == 0)
        }
    }

    @Test("R-ENV-6: an address belongs to at most one user, whatever its case")
    func uniqueEmail() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.signup("ann@gmail.com")
            for again in ["ann@gmail.com", "ANN@gmail.com"] {
                let reply = try await client.send("signup", params: ["email": .string(again)])
                guard case .failure(let e) = reply.outcome else { Issue.record("second account for \(again)"); continue }
                #expect(e.code == .conflict)
            }
            #expect(try server.database.owner("SELECT count(*) AS n FROM users").first!.int64("n") == 1)
        }
    }

    @Test("R-ENV-6: concurrent sign-ups with one email make one user")
    func concurrentSameEmail() async throws {
        try await withClient { server, client in
            let codes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<8 { group.addTask { try await client.send("signup", params: ["email": "dup@gmail.com"]).isSuccess } }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(codes.filter { $0 }.count == 1)
            #expect(try server.database.owner("SELECT count(*) AS n FROM users").first!.int64("n") == 1)
        }
    }

    @Test("R-ENV-5: concurrent first sign-ups on one domain make one environment claiming it")
    func concurrentSameDomain() async throws {
        try await withClient { server, client in
            let envs = try await withThrowingTaskGroup(of: String?.self) { group in
                for i in 0..<8 {
                    group.addTask { try await Scenario(client).signup("user\(i)@race.test").string("environment", "id") }
                }
                return try await group.reduce(into: Set<String?>()) { $0.insert($1) }
            }
            #expect(envs.count == 1)
            #expect(try server.database.owner("SELECT count(*) AS n FROM environments").first!.int64("n") == 1)
            let admins = try server.database.owner("SELECT count(*) AS n FROM users WHERE role = 'administrator'").first!.int64("n")
            #expect(admins == 1)
        }
    }

    @Test("R-ENV-7: the claim is confirmed when a user on the domain activates")
    func claimConfirmedOnActivation() async throws {
        try await withClient { server, client in
            try await Scenario(client).activeUser("alice@acme.test")
            let row = try server.database.owner("SELECT status FROM domain_claims WHERE domain = 'acme.test'").first
            #expect(row?["status"] == "confirmed")
            #expect(try server.database.owner("SELECT count(*) AS n FROM unactivated_environments").first!.int64("n") == 0)
        }
    }

    @Test("R-ENV-7: a colleague who activates before the creator's window has passed stays basic; the creator can still activate")
    func colleagueStaysBasicWithinTheWindow() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.signup("creator@acme.test")
            try await s.signup("bob@acme.test")
            let bob = try await s.activate("bob@acme.test")
            #expect(bob["role"] == "basic", "an automatically added user has no rights")
            let claim = try server.database.owner("SELECT status FROM domain_claims WHERE domain = 'acme.test'").first
            #expect(claim?["status"] == "confirmed", "Bob's activation proved control of the domain")
            // The window is still open: the janitor promotes nobody.
            #expect(try await server.service.purgeUnactivatedEnvironments() == 0)
            #expect(try server.database.owner("SELECT role FROM users WHERE email = 'bob@acme.test'").first?["role"] == "basic")
            let creator = try await s.activate("creator@acme.test")
            #expect(creator["role"] == "administrator")
            #expect(try server.database.owner("SELECT count(*) AS n FROM audit_events WHERE op = 'user.set_role'").first!.int64("n") == 0)
        }
    }

    @Test("R-ENV-7: when the creator's window passes without the creator, the earliest activated colleague becomes administrator, audited")
    func colleaguePromotedWhenTheWindowPasses() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.signup("creator@acme.test")
            try await s.signup("bob@acme.test")
            try await s.signup("carol@acme.test")
            let bob = try await s.activate("bob@acme.test")
            _ = try await s.activate("carol@acme.test")
            try server.database.owner("UPDATE unactivated_environments SET deadline = now() - interval '1 second'")
            #expect(try await server.service.purgeUnactivatedEnvironments() == 0, "the environment stays: a colleague activated")
            let env = try await client.call("environment.get", actor: bob["id"]!.stringValue!)
            #expect(env["environment"]?.objectValue?["domain_claims"] == [["domain": "acme.test", "status": "confirmed"]])
            #expect(env["environment"]?.objectValue?["administrators"] == [bob["id"]!], "Bob activated first")
            let audit = try server.database.owner(
                "SELECT actor_label, details->'after'->>'role' AS role FROM audit_events WHERE op = 'user.set_role'"
            ).rows
            #expect(audit.count == 1)
            #expect(audit.first?["actor_label"] == "system")
            #expect(audit.first?["role"] == "administrator")
            #expect(try server.database.owner("SELECT count(*) AS n FROM unactivated_environments").first!.int64("n") == 0)
            let check = try await client.call("check", params: ["user": bob["id"]!, "permission": "users.invite"])
            #expect(check["allowed"] == true, "the index saw the promotion")
        }
    }

    @Test("R-ENV-7: an activation after the window passed settles it: the earliest activated colleague is promoted, not the one activating now")
    func lateActivationPromotesTheEarliest() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.signup("creator@acme.test")
            try await s.signup("alice@acme.test")
            let alice = try await s.activate("alice@acme.test")
            #expect(alice["role"] == "basic")
            try await s.signup("bob@acme.test")
            try server.database.owner("UPDATE unactivated_environments SET deadline = now() - interval '1 second'")
            let bob = try await s.activate("bob@acme.test")
            #expect(bob["role"] == "basic", "Bob activated after Alice")
            let env = try await client.call("environment.get", actor: alice.id)
            #expect(env["environment"]?.objectValue?["administrators"] == [.string(alice.id)])
        }
    }

    @Test("R-ENV-7: a colleague activating after the window passed (before the janitor ran) becomes administrator at once")
    func colleagueActivatingAfterTheWindow() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.signup("creator@acme.test")
            try await s.signup("bob@acme.test")
            try server.database.owner("UPDATE unactivated_environments SET deadline = now() - interval '1 second'")
            let bob = try await s.activate("bob@acme.test")
            #expect(bob["role"] == "administrator")
            #expect(try server.database.owner("SELECT count(*) AS n FROM unactivated_environments").first!.int64("n") == 0)
        }
    }

    @Test("R-ENV-10: a sub-domain belongs to its parent's claim: a sign-up on it joins that environment, its activation confirms the claim, and nobody else invites there")
    func subDomainsBelongToTheClaim() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let first = try await s.signup("a@alpha.test")
            let zed = try await s.signup("zed@sub.alpha.test")
            #expect(zed.string("joined") == "existing", "sales of a claimed domain join it")
            #expect(zed.string("environment", "id") == first.string("environment", "id"))
            #expect(try server.database.owner("SELECT count(*) AS n FROM domain_claims").first!.int64("n") == 1, "no claim of sub.alpha.test")
            _ = try await s.activate("zed@sub.alpha.test")
            #expect(try server.database.owner("SELECT status FROM domain_claims WHERE domain = 'alpha.test'").first?["status"] == "confirmed",
                    "an address on a sub-domain proves control of the claim")
            let other = try await s.environment("other.test")
            let invite = try await client.send("user.invite", actor: other.id, params: ["email": "x@deep.sales.alpha.test"])
            #expect(invite.errorCode == .conflict, "no other environment invites on a claimed domain's sub-domains")
        }
    }

    @Test("R-ENV-10: once another environment confirms the domain, resending an earlier invitation to it is refused (conflict) and sends nothing")
    func resendStopsAtConfirmation() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let a = try await s.environment("a-corp.test")
            let ceo = try await s.invite("ceo@newcorp.test", as: a.id)
            try await client.call("user.resend_invitation", actor: a.id, params: ["user": .string(ceo.id)])
            // newcorp's own environment confirms its domain (through a colleague: the CEO's address is held by A's invitation).
            try await s.activeUser("cfo@newcorp.test")
            func written() throws -> Int64 {
                try server.database.owner("SELECT count(*) AS n FROM outbox WHERE recipient = 'ceo@newcorp.test'").first!.int64("n")
            }
            let before = try written()
            let resend = try await client.send("user.resend_invitation", actor: a.id, params: ["user": .string(ceo.id)])
            #expect(resend.errorCode == .conflict)
            #expect(try written() == before, "nothing sent")
        }
    }

    @Test("R-ENV-7: past the window with nobody activated, the environment is deleted and the domain is free")
    func unactivatedEnvironmentsExpire() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let first = try await s.signup("alice@acme.test")
            try await s.signup("bob@acme.test")
            try await s.activeUser("carol@other.test")
            try server.database.owner("UPDATE unactivated_environments SET deadline = now() - interval '1 second'")
            #expect(try await server.service.purgeUnactivatedEnvironments() == 1)
            #expect(try server.database.owner("SELECT count(*) AS n FROM domain_claims WHERE domain = 'acme.test'").first!.int64("n") == 0)
            #expect(try server.database.owner("SELECT count(*) AS n FROM email_directory WHERE email_norm LIKE '%acme.test'").first!.int64("n") == 0)
            #expect(try server.database.owner("SELECT count(*) AS n FROM users").first!.int64("n") == 1)
            let again = try await s.signup("alice@acme.test")
            #expect(again.string("joined") == "created")
            #expect(again.string("environment", "id") != first.string("environment", "id"))
        }
    }

    @Test("R-ENV-7: a sign-up on an expired, never-activated claim starts afresh even before the purge runs")
    func expiredClaimAtSignup() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let first = try await s.signup("alice@acme.test")
            try server.database.owner("UPDATE unactivated_environments SET deadline = now() - interval '1 second'")
            let bob = try await s.signup("bob@acme.test")
            #expect(bob.string("joined") == "created")
            #expect(bob.string("user", "role") == "administrator")
            #expect(bob.string("environment", "id") != first.string("environment", "id"))
        }
    }

    @Test("R-AUD-1, R-OUT-1: a sign-up writes its audit event and activation message in the same transaction, and bumps the revision")
    func signupAuditAndRevision() async throws {
        try await withClient { server, client in
            let reply = try await client.send("signup", params: ["email": "alice@acme.test"])
            guard case .success(let result, let revision) = reply.outcome else { Issue.record("signup failed"); return }
            let env = result.string("environment", "id")!
            #expect(revision == "\(env):1")
            let events = try server.database.owner("SELECT op, actor_label, target FROM audit_events").rows
            #expect(events.map { $0["op"] } == ["signup"])
            #expect(events.first?["target"] == result.string("user", "id"))
            let second = try await client.send("signup", params: ["email": "bob@acme.test"])
            guard case .success(_, let revision2) = second.outcome else { Issue.record("second signup failed"); return }
            #expect(revision2 == "\(env):2")
        }
    }
}

extension Reply {
    var isSuccess: Bool { if case .success = outcome { true } else { false } }
    var errorCode: ErrorCode? { if case .failure(let e) = outcome { e.code } else { nil } }
    var result: JSONObject? { if case .success(let result, _) = outcome { result } else { nil } }
}
