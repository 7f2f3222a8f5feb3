import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

@Suite("Partnerships and the inbox (R-PTN-1…3, R-MEM-3)")
struct PartnershipTests {
    @Test("R-PTN-1, R-MEM-3, R-PTN-2: propose → accept → add → pending → accept → access → end → no access")
    func fullFlow() async throws {
        try await withServer { server in
            let client = try await server.client()
            let checker = try await server.client()
            let s = Scenario(client)
            let c = Scenario(checker)
            let acme = try await s.environment("acme.test")
            try await s.environment("partner.test")
            let pat = try await s.member("pat@partner.test", role: "advanced", as: "admin@partner.test")
            let org = try await s.organisation("Acme BV", as: acme.id)

            // R-PTN-1: the proposal reaches the other side's advanced users and administrators.
            let proposal = try await client.call("partnership.propose", actor: acme.id, params: ["email": "pat@partner.test"])
            let ptn = proposal.string("partnership", "id")!
            #expect(proposal.string("partnership", "status") == "pending")
            #expect(try await s.inbox(pat.id).map { $0["kind"] } == ["partnership"])
            #expect(try await s.inbox("admin@partner.test").count == 1)
            let messages = try await client.call("outbox.list", params: ["limit": 1000])["messages"]!.arrayValue!.map { $0.objectValue! }
            #expect(Set(messages.filter { $0["kind"] == "partnership_request" }.map { $0["to"]!.stringValue! }) == ["pat@partner.test", "admin@partner.test"])
            // Not yet active: partner users cannot be added.
            #expect(try await client.send("member.add", actor: acme.id, params: ["organisation": .string(org), "user": .string(pat.id)]).errorCode == .notFound)
            // The proposer cannot accept its own proposal.
            #expect(try await client.send("partnership.accept", actor: acme.id, params: ["partnership": .string(ptn)]).errorCode == .forbidden)
            try await client.call("partnership.accept", actor: pat.id, params: ["partnership": .string(ptn)])
            #expect(try await s.inbox(pat.id).isEmpty)

            // R-MEM-3: pending until the partner user accepts.
            let added = try await client.call("member.add", actor: acme.id, params: ["organisation": .string(org), "user": "pat@partner.test"])
            #expect(added.string("membership", "status") == "pending")
            #expect(try await c.check(pat.id, "documents.view", in: org) == (false, "pending_membership"))
            let request = try await s.inbox(pat.id)
            #expect(request.map { $0["kind"] } == ["membership"])
            #expect(request.first?["organisation"] == .string(org))
            let membershipMessages = try await client.call("outbox.list", params: ["limit": 1000])["messages"]!.arrayValue!
            #expect(membershipMessages.contains { $0.objectValue!["kind"] == "membership_request" && $0.objectValue!["to"] == "pat@partner.test" })
            // Only the addressee answers it.
            #expect(try await client.send("inbox.accept", actor: "admin@partner.test", params: ["request": request[0]["id"]!]).errorCode == .notFound)
            try await client.call("inbox.accept", actor: pat.id, params: ["request": request[0]["id"]!])
            #expect(try await client.send("inbox.accept", actor: pat.id, params: ["request": request[0]["id"]!]).errorCode == .invalidState)
            #expect(try await c.check(pat.id, "documents.view", in: org) == (true, "member"))
            let patsOrgs = try await client.call("organisation.list", actor: pat.id)["organisations"]!.arrayValue!
            #expect(patsOrgs.map { $0.objectValue!.id } == [org])

            // R-PTN-2: ending the partnership ends the membership at once, audited.
            try await client.call("partnership.end", actor: pat.id, params: ["partnership": .string(ptn)])
            #expect(try await c.check(pat.id, "documents.view", in: org) == (false, "not_member"))
            #expect(try await client.call("member.list", actor: acme.id, params: ["organisation": .string(org)])["memberships"]!.arrayValue!.count == 1)
            let events = try await client.call("audit.list", actor: acme.id)["events"]!.arrayValue!.map { $0.objectValue! }
            #expect(events.contains { $0["op"] == "member.remove" && $0["details"]?.objectValue?["reason"] == "partnership.end" })
            #expect(events.contains { $0["op"] == "partnership.end" })
            await client.close()
            await checker.close()
        }
    }

    @Test("decline paths: a declined proposal makes no partnership; a declined membership request leaves no membership")
    func declines() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let acme = try await s.environment("acme.test")
            let partner = try await s.environment("partner.test")
            let org = try await s.organisation("Acme BV", as: acme.id)
            let first = try await client.call("partnership.propose", actor: acme.id, params: ["environment": partner["environment"]!])
            let proposal = try await s.inbox(partner.id)[0]
            try await client.call("inbox.decline", actor: partner.id, params: ["request": proposal["id"]!])
            #expect(try await client.call("partnership.list", actor: acme.id)["partnerships"]!.arrayValue!.first?.objectValue?["status"] == "declined")
            #expect(try await client.send("partnership.accept", actor: partner.id, params: ["partnership": .string(first.string("partnership", "id")!)]).errorCode == .invalidState)
            #expect(try await client.send("member.add", actor: acme.id, params: ["organisation": .string(org), "user": .string(partner.id)]).errorCode == .notFound)
            // A new proposal is possible after a decline.
            try await s.partners(acme.id, "admin@partner.test")
            try await client.call("member.add", actor: acme.id, params: ["organisation": .string(org), "user": .string(partner.id)])
            let request = try await s.inbox(partner.id)[0]
            try await client.call("inbox.decline", actor: partner.id, params: ["request": request["id"]!])
            #expect(try await s.check(partner.id, "documents.view", in: org) == (false, "not_member"))
            #expect(try await client.call("member.list", actor: acme.id, params: ["organisation": .string(org)])["memberships"]!.arrayValue!.count == 1)
            // Answered requests cannot be answered again.
            #expect(try await client.send("inbox.accept", actor: partner.id, params: ["request": request["id"]!]).errorCode == .invalidState)
        }
    }

    @Test("R-PTN-1: basic users cannot propose, answer or end partnerships, nor see proposals")
    func basicUsers() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let acme = try await s.environment("acme.test")
            try await s.environment("partner.test")
            let basic = try await s.member("basic@acme.test", as: acme.id)
            let theirBasic = try await s.member("basic@partner.test", as: "admin@partner.test")
            #expect(try await client.send("partnership.propose", actor: basic.id, params: ["email": "admin@partner.test"]).errorCode == .forbidden)
            let ptn = try await client.call("partnership.propose", actor: acme.id, params: ["email": "admin@partner.test"]).string("partnership", "id")!
            #expect(try await s.inbox(theirBasic.id).isEmpty)
            #expect(try await client.send("partnership.accept", actor: theirBasic.id, params: ["partnership": .string(ptn)]).errorCode == .forbidden)
            #expect(try await client.send("partnership.end", actor: basic.id, params: ["partnership": .string(ptn)]).errorCode == .forbidden)
            #expect(try await client.send("partnership.list", actor: basic.id).errorCode == .forbidden)
        }
    }

    @Test("R-PTN-3: no partnership with oneself, no second live one per pair")
    func onePerPair() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let acme = try await s.environment("acme.test")
            try await s.environment("partner.test")
            #expect(try await client.send("partnership.propose", actor: acme.id, params: ["environment": acme["environment"]!]).errorCode == .badRequest)
            #expect(try await client.send("partnership.propose", actor: acme.id, params: ["email": "admin@acme.test"]).errorCode == .badRequest)
            try await client.call("partnership.propose", actor: acme.id, params: ["email": "admin@partner.test"])
            #expect(try await client.send("partnership.propose", actor: acme.id, params: ["email": "admin@partner.test"]).errorCode == .conflict)
            #expect(try await client.send("partnership.propose", actor: "admin@partner.test", params: ["email": "admin@acme.test"]).errorCode == .conflict)
            #expect(try await client.send("partnership.propose", actor: acme.id, params: ["environment": "env_999999"]).errorCode == .notFound)
        }
    }

    @Test("R-PTN-3: both environments proposing to each other at the same instant make one partnership, 30 times out of 30")
    func proposalRace() async throws {
        try await withServer { server in
            let one = try await server.client()
            let two = try await server.client()
            let s = Scenario(one)
            for round in 0..<30 {
                let a = try await s.environment("a\(round).test")
                let b = try await s.environment("b\(round).test")
                async let x = one.send("partnership.propose", actor: a.id, params: ["email": .string("admin@b\(round).test")])
                async let y = two.send("partnership.propose", actor: b.id, params: ["email": .string("admin@a\(round).test")])
                let replies = try await [x, y]
                #expect(replies.filter(\.isSuccess).count == 1, "round \(round)")
                #expect(replies.filter { $0.errorCode == .conflict }.count == 1, "round \(round)")
                let rows = try server.database.owner(
                    "SELECT count(DISTINCT partnership_id) AS n FROM partnerships WHERE environment_id = $1",
                    [ScopedID(a.id, kind: .user)!.environment.raw]
                ).first!.int64("n")
                #expect(rows == 1, "round \(round)")
            }
            await one.close()
            await two.close()
        }
    }
}
