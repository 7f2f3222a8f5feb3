import PortierClient
import PortierProtocol
import PortierTestSupport
import Testing

/// R-SEC-3 (names people read) and R-SEC-5 (bounded client keys), through the socket.
@Suite("R-SEC-3, R-SEC-5: readable names, bounded client keys")
struct ReadableNameTests {
    static let unreadable = ["Acme\u{202E}\nBV", "Acme\u{202E}BV", "Acme\nBV", "Acme\tBV", "Acme\u{2066}BV\u{2069}", "Acme\u{7}BV", "Acme\u{85}BV"]

    @Test("R-SEC-3: user and organisation names with control characters or bidirectional overrides are bad_request and change nothing")
    func unreadableNamesRefused() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            for name in Self.unreadable {
                #expect(try await client.send("signup", params: ["email": "x@other.test", "name": .string(name)]).errorCode == .badRequest, "\(name.debugDescription)")
                #expect(try await client.send("user.invite", actor: admin.id, params: ["email": "y@acme.test", "name": .string(name)]).errorCode == .badRequest)
                #expect(try await client.send("organisation.create", actor: admin.id, params: ["name": .string(name)]).errorCode == .badRequest)
            }
            let users = try server.database.owner("SELECT count(*) AS n FROM users").first!.int64("n")
            #expect(users == 1, "nothing was created")
            let org = try await client.call("organisation.create", actor: admin.id, params: ["name": "  Acme   Café BV  "])
            #expect(org.string("organisation", "name") == "Acme Café BV", "spaces trimmed and folded; letters of any script kept")
            let id = org.string("organisation", "id")!
            #expect(try await client.send("organisation.update", actor: admin.id, params: ["organisation": .string(id), "name": "Acme\u{202E}BV"]).errorCode == .badRequest)
        }
    }

    @Test("R-SEC-5: a client key longer than 256 bytes is bad_request; 256 bytes are accepted")
    func clientKeyBounded() async throws {
        try await withClient { _, client in
            try await Scenario(client).activeUser("alice@acme.test")
            let long = try await client.send("user.authenticate", params: ["email": "alice@acme.test", "password": "wrong password here", "client": .string(String(repeating: "k", count: 257))])
            #expect(long.errorCode == .badRequest)
            let fits = try await client.send("user.authenticate", params: ["email": "alice@acme.test", "password": "wrong password here", "client": .string(String(repeating: "k", count: 256))])
            #expect(fits.errorCode == .invalidCredentials)
        }
    }
}
