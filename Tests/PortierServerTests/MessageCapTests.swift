import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

/// R-USR-16: nobody can flood a stranger's mailbox through Portier.
@Suite("R-USR-16: messages per recipient are capped")
struct MessageCapTests {
    func outboxCount(_ client: PortierClient, to: String, kind: String? = nil) async throws -> Int {
        let messages = try await client.call("outbox.list", params: ["limit": 1000])["messages"]?.arrayValue ?? []
        return messages.filter {
            $0.objectValue?["to"]?.stringValue?.lowercased() == to && (kind == nil || $0.objectValue?["kind"]?.stringValue == kind)
        }.count
    }

    @Test("R-USR-16: past the cap, resends and invitations to one address are rate_limited and write nothing, across environments")
    func invitations() async throws {
        try await withClient(configure: { _, s in s.messagesPerRecipientPerHour = 3 }) { server, client in
            let s = Scenario(client)
            // Every message written, withdrawn ones included (a resend withdraws the older link).
            func written() throws -> Int64 {
                try server.database.owner("SELECT count(*) AS n FROM outbox WHERE lower(recipient) = 'victim@gmail.com'").first!.int64("n")
            }
            let a = try await s.environment("a-corp.test").id
            let b = try await s.environment("b-corp.test").id
            let victim = try await s.invite("victim@gmail.com", as: a).id
            try await client.call("user.resend_invitation", actor: a, params: ["user": .string(victim)])
            try await client.call("user.resend_invitation", actor: a, params: ["user": .string(victim)])
            #expect(try written() == 3)
            #expect(try await outboxCount(client, to: "victim@gmail.com") == 1, "the older links were withdrawn")
            #expect(try await client.send("user.resend_invitation", actor: a, params: ["user": .string(victim)]).errorCode == .rateLimited)
            #expect(try await client.send("user.invite", actor: b, params: ["email": "VICTIM@gmail.com"]).errorCode == .conflict)
            #expect(try await client.send("signup", params: ["email": "victim2@gmail.com"]).isSuccess)
            #expect(try written() == 3, "nothing written past the cap")
            #expect(try await outboxCount(client, to: "victim@gmail.com") == 1)
        }
    }

    @Test("R-USR-16: partnership proposals from many senders count against the recipient's total (four times the per-sender cap); the recipient's own messages do not")
    func proposals() async throws {
        try await withClient(configure: { _, s in s.messagesPerRecipientPerHour = 1 }) { _, client in
            let s = Scenario(client)
            let target = try await s.environment("target.test")  // its own activation: not counted in the total
            var codes: [ErrorCode?] = []
            for i in 0..<5 {
                let proposer = try await s.environment("p\(i).test").id
                codes.append(try await client.send("partnership.propose", actor: proposer, params: ["email": .string(target.string("email")!)]).errorCode)
            }
            #expect(codes == [nil, nil, nil, nil, .rateLimited], "four senders fill the total of 4")
            #expect(try await client.send("user.password.forgot", params: ["email": "admin@target.test"]).isSuccess)
            #expect(try await outboxCount(client, to: "admin@target.test", kind: "password_reset") == 1, "the person's own reset is not refused by the total")
        }
    }

    @Test("R-USR-16: a third party that invites, resends and revokes five times cannot block the owner's own sign-up")
    func thirdPartyCannotBlockSignup() async throws {
        try await withClient(configure: { _, s in s.messagesPerRecipientPerHour = 5 }) { _, client in
            let s = Scenario(client)
            let a = try await s.environment("a-corp.test").id
            let founder = try await s.invite("founder@startup.test", as: a).id
            for _ in 0..<4 { try await client.call("user.resend_invitation", actor: a, params: ["user": .string(founder)]) }
            #expect(try await client.send("user.resend_invitation", actor: a, params: ["user": .string(founder)]).errorCode == .rateLimited,
                    "A's own allowance is spent")
            try await client.call("user.remove", actor: a, params: ["user": .string(founder)])
            let signup = try await client.send("signup", params: ["email": "founder@startup.test"])
            #expect(signup.isSuccess, "the owner's sign-up goes ahead")
        }
    }

    @Test("R-USR-16: five forgot calls on an administrator's address do not block proposals to that environment or a partner's work")
    func forgotCannotBlockPartners() async throws {
        try await withClient(configure: { _, s in s.messagesPerRecipientPerHour = 5 }) { _, client in
            let s = Scenario(client)
            let target = try await s.environment("target.test")
            for _ in 0..<5 { #expect(try await client.send("user.password.forgot", params: ["email": "admin@target.test"]).isSuccess) }
            let proposer = try await s.environment("bookkeepers.test").id
            #expect(try await client.send("partnership.propose", actor: proposer, params: ["email": .string(target.string("email")!)]).isSuccess)
        }
    }

    @Test("R-USR-16, R-ENV-8: past the hourly notice limit, domain_join notices become one summary; sign-ups are never refused")
    func domainJoinCoalesced() async throws {
        try await withClient(configure: { _, s in s.domainJoinNoticesPerHour = 3 }) { _, client in
            let s = Scenario(client)
            try await s.environment("busy.test")
            for i in 0..<8 { #expect(try await client.send("signup", params: ["email": .string("p\(i)@busy.test")]).isSuccess) }
            let notices = try await outboxCount(client, to: "admin@busy.test", kind: "domain_join")
            // joins 1–2 notified one by one (the admin's own sign-up counts as the first), then one summary
            #expect(notices == 3, "\(notices)")
        }
    }
}
