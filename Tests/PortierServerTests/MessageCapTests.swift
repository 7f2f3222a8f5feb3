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

    @Test("R-USR-16: partnership proposals count against their recipients' caps")
    func proposals() async throws {
        try await withClient(configure: { _, s in s.messagesPerRecipientPerHour = 2 }) { _, client in
            let s = Scenario(client)
            let target = try await s.environment("target.test")
            var codes: [ErrorCode?] = []
            for i in 0..<3 {
                let proposer = try await s.environment("p\(i).test").id
                codes.append(try await client.send("partnership.propose", actor: proposer, params: ["email": .string(target.string("email")!)]).errorCode)
            }
            // The administrator's own activation message counts too: 1 + 1 proposal = the cap.
            #expect(codes == [nil, .rateLimited, .rateLimited])
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
