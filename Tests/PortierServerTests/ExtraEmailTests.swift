import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

@Suite("Extra email addresses (R-USR-11)")
struct ExtraEmailTests {
    @Test("R-USR-11: an added address is unverified until its token is confirmed; then it identifies the user")
    func addAndVerify() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let added = try await client.call("user.email.add", actor: admin.id, params: ["email": "Invoices@acme.test"])
            #expect(added["email"] == ["email": "Invoices@acme.test", "verified": false])
            // Unverified: not yet an address of the user.
            #expect(try await client.send("user.get", actor: admin.id, params: ["user": "invoices@acme.test"]).errorCode == .notFound)
            let token = try await s.token(for: "invoices@acme.test", kind: "email_verification")
            let verified = try await client.call("user.email.verify", params: ["token": .string(token)])
            #expect(verified.string("email", "user") == admin.id)
            #expect(verified["email"]?.objectValue?["verified"] == true)
            let user = try await client.call("user.get", actor: admin.id, params: ["user": "invoices@acme.test"])
            #expect(user.string("user", "id") == admin.id)
            #expect(user["user"]?.objectValue?["emails"] == [["email": "Invoices@acme.test", "verified": true]])
            #expect(try await client.send("user.email.verify", params: ["token": .string(token)]).errorCode == .expiredToken)
        }
    }

    @Test("R-USR-11, R-ENV-6: a verified extra address belongs to one user on the whole platform")
    func uniqueAcrossPlatform() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let a = try await s.environment("acme.test")
            let b = try await s.environment("other.test")
            #expect(try await client.send("user.email.add", actor: a.id, params: ["email": "admin@other.test"]).errorCode == .conflict)
            // Both may ask for the same new address; the first to verify gets it.
            try await client.call("user.email.add", actor: a.id, params: ["email": "shared@box.test"])
            let tokenA = try await s.token(for: "shared@box.test", kind: "email_verification")
            try await client.call("user.email.add", actor: b.id, params: ["email": "shared@box.test"])
            let tokenB = try await s.token(for: "shared@box.test", kind: "email_verification")
            #expect(tokenA != tokenB)
            try await client.call("user.email.verify", params: ["token": .string(tokenB)])
            #expect(try await client.send("user.email.verify", params: ["token": .string(tokenA)]).errorCode == .conflict)
            // Nobody can sign up with it any more.
            #expect(try await client.send("signup", params: ["email": "shared@box.test"]).errorCode == .conflict)
        }
    }

    @Test("R-USR-11: the primary address cannot be removed; a removed extra address frees it and kills its token")
    func remove() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            #expect(try await client.send("user.email.remove", actor: admin.id, params: ["email": "admin@acme.test"]).errorCode == .badRequest)
            #expect(try await client.send("user.email.remove", actor: admin.id, params: ["email": "never@acme.test"]).errorCode == .notFound)
            try await client.call("user.email.add", actor: admin.id, params: ["email": "pending@box.test"])
            let token = try await s.token(for: "pending@box.test", kind: "email_verification")
            try await client.call("user.email.remove", actor: admin.id, params: ["email": "pending@box.test"])
            #expect(try await client.send("user.email.verify", params: ["token": .string(token)]).errorCode == .expiredToken)
            try await client.call("user.email.add", actor: admin.id, params: ["email": "kept@box.test"])
            try await client.call("user.email.verify", params: ["token": .string(try await s.token(for: "kept@box.test", kind: "email_verification"))])
            try await client.call("user.email.remove", actor: admin.id, params: ["email": "KEPT@box.test"])
            try await s.signup("kept@box.test")
        }
    }

    @Test("R-USR-11: only the user itself manages its addresses; others' extra addresses are hidden from non-administrators")
    func privacy() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let bob = try await s.member("bob@acme.test", as: admin.id)
            try await client.call("user.email.add", actor: admin.id, params: ["email": "admin-extra@acme.test"])
            let seenByBob = try await client.call("user.get", actor: bob.id, params: ["user": .string(admin.id)])
            #expect(seenByBob["user"]?.objectValue?["emails"] == nil)
            let seenByAdmin = try await client.call("user.get", actor: admin.id, params: ["user": .string(admin.id)])
            #expect(seenByAdmin["user"]?.objectValue?["emails"]?.arrayValue?.count == 1)
            // An invited user cannot add addresses: it is not active.
            try await s.invite("carol@acme.test", as: admin.id)
            #expect(try await client.send("user.email.add", actor: "carol@acme.test", params: ["email": "c2@acme.test"]).errorCode == .forbidden)
        }
    }
}
