import Foundation
import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

/// R-ENV-10 and R-USR-2: squatting by invitation.
@Suite("Domains belong to their company (R-ENV-10, R-USR-2)")
struct DomainOwnershipTests {
    @Test("R-ENV-10: inviting or adding an address on another environment's confirmed domain is conflict; its own environment may")
    func confirmedDomain() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let acme = try await s.environment("acme.test").id  // activated: acme.test is confirmed
            let squatter = try await s.environment("squat.test").id
            let invite = try await client.send("user.invite", actor: squatter, params: ["email": "cfo@acme.test"])
            #expect(invite.errorCode == .conflict)
            let extra = try await client.send("user.email.add", actor: squatter, params: ["email": "billing@ACME.test"])
            #expect(extra.errorCode == .conflict)
            #expect(try await client.send("user.invite", actor: acme, params: ["email": "cfo@acme.test"]).isSuccess)
            #expect(try await client.send("user.invite", actor: squatter, params: ["email": "someone@gmail.com"]).isSuccess,
                    "shared mail domains are nobody's")
        }
    }

    @Test("R-USR-2: an invitation that expired without activation no longer holds its address: sign-up releases it, audited")
    func expiredInvitationReleased() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let squatter = try await s.environment("squat.test").id
            let invited = try await s.invite("cfo@victim.test", as: squatter).id
            #expect(try await client.send("signup", params: ["email": "cfo@victim.test"]).errorCode == .conflict, "still live")
            // The invitation's lifetime passes (without waiting for it).
            try server.database.owner(
                "UPDATE tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1 AND purpose = 'activation'",
                [ScopedID(invited, kind: .user)!.raw])
            let signup = try await client.call("signup", params: ["email": "cfo@victim.test"])
            #expect(signup["joined"] == "created")
            let users = try await client.call("user.list", actor: squatter)["users"]?.arrayValue ?? []
            #expect(!users.contains { $0.objectValue?["email"] == "cfo@victim.test" })
            let events = try await client.call("audit.list", actor: squatter)["events"]?.arrayValue ?? []
            #expect(events.contains { $0.objectValue?["op"] == "user.invitation_expired" })
        }
    }
}
