import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

@Suite("Activation and authentication (R-USR-2, R-USR-4)")
struct CredentialsTests {
    @Test("R-USR-2: the token and a password make the user active; the token then is used up")
    func activation() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.signup("alice@acme.test")
            let token = try await s.token(for: "alice@acme.test")
            let user = try await client.call("user.activate", params: ["token": .string(token), "password": .string(Scenario.password)])
            #expect(user.string("user", "status") == "active")
            let again = try await client.send("user.activate", params: ["token": .string(token), "password": "another password"])
            #expect(again.errorCode == .expiredToken)
            let stored = try server.database.owner("SELECT password_hash FROM users").first?["password_hash"]
            #expect(stored?.hasPrefix("scrypt$") == true)
            #expect(stored?.contains(Scenario.password) == false)
        }
    }

    @Test("R-USR-2: tokens are stored only as hashes")
    func hashedTokens() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.signup("alice@acme.test")
            let token = try await s.token(for: "alice@acme.test")
            let hashes = try server.database.owner("SELECT encode(token_hash, 'hex') AS h FROM tokens").rows.compactMap { $0["h"] }
            #expect(hashes.count == 1)
            #expect(hashes.first?.count == 64)
            #expect(!hashes.contains { $0.contains(token) })
        }
    }

    @Test("R-USR-2: unknown, malformed and expired tokens get expired_token and change nothing")
    func badTokens() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let signup = try await s.signup("alice@acme.test")
            let token = try await s.token(for: "alice@acme.test")
            let env = ScopedID(signup.string("user", "id")!, kind: .user)!.environment
            let forged = "\(env.raw).AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            for bad in [forged, "garbage", "999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ""] {
                let reply = try await client.send("user.activate", params: ["token": .string(bad), "password": .string(Scenario.password)])
                #expect(reply.errorCode == .expiredToken, "\(bad)")
            }
            try server.database.owner("UPDATE tokens SET expires_at = now() - interval '1 second'")
            let expired = try await client.send("user.activate", params: ["token": .string(token), "password": .string(Scenario.password)])
            guard case .failure(let e) = expired.outcome else { Issue.record("expired token accepted"); return }
            #expect(e.code == .expiredToken)
            #expect(e.message.contains("expired"))
            #expect(try server.database.owner("SELECT status FROM users").first?["status"] == "invited")
        }
    }

    @Test("R-USR-2: a too-short password is a bad_request and leaves the token usable")
    func weakPassword() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.signup("alice@acme.test")
            let token = try await s.token(for: "alice@acme.test")
            let reply = try await client.send("user.activate", params: ["token": .string(token), "password": "short"])
            #expect(reply.errorCode == .badRequest)
            let ok = try await client.send("user.activate", params: ["token": .string(token), "password": .string(Scenario.password)])
            #expect(ok.isSuccess)
        }
    }

    @Test("R-USR-2: two concurrent activations with one token: exactly one wins")
    func concurrentActivation() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.signup("alice@acme.test")
            let token = try await s.token(for: "alice@acme.test")
            let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await client.send("user.activate", params: ["token": .string(token), "password": .string(Scenario.password)]).isSuccess
                    }
                }
                return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
            }
            #expect(wins == 1)
        }
    }

    @Test("R-USR-4: an active user with the right password authenticates; email case does not matter")
    func authenticates() async throws {
        try await withClient { _, client in
            try await Scenario(client).activeUser("alice@acme.test")
            let r = try await client.call("user.authenticate", params: ["email": "ALICE@acme.test", "password": .string(Scenario.password)])
            #expect(r.string("user", "email") == "alice@acme.test")
            #expect(r.string("environment", "name") == "acme.test")
        }
    }

    @Test("R-USR-4: wrong password, unknown email and invited users all get invalid_credentials")
    func sameErrorForAllWrongCases() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.activeUser("alice@acme.test")
            try await s.signup("bob@acme.test")
            let cases: [(String, String)] = [
                ("alice@acme.test", "wrong password"), ("nobody@acme.test", Scenario.password), ("bob@acme.test", Scenario.password),
            ]
            var messages = Set<String>()
            for (email, password) in cases {
                let reply = try await client.send("user.authenticate", params: ["email": .string(email), "password": .string(password)])
                guard case .failure(let e) = reply.outcome else { Issue.record("\(email) authenticated"); continue }
                #expect(e.code == .invalidCredentials)
                messages.insert(e.message)
            }
            #expect(messages.count == 1)
        }
    }

    @Test("R-USR-4: an unknown email costs a password hash too, so timing does not tell which emails exist")
    func unknownEmailCostsAHash() async throws {
        // Parameters costly enough that the hash dominates a request, even in a debug build.
        try await withClient(configure: { _, settings in settings.passwordHashing = .init(log2N: 13, blockSize: 8, parallelism: 1) }) { _, client in
            let s = Scenario(client)
            try await s.activeUser("alice@acme.test")
            // The fastest of several: what the work costs, without the machine's
            // other load; known and unknown alternate, so a busy stretch of the
            // machine slows both alike.
            func attempt(_ email: String) async throws -> Duration {
                let start = ContinuousClock.now
                _ = try await client.send("user.authenticate", params: ["email": .string(email), "password": "not the password"])
                return ContinuousClock.now - start
            }
            var knownTimes: [Duration] = []
            var unknownTimes: [Duration] = []
            for _ in 0..<7 {
                knownTimes.append(try await attempt("alice@acme.test"))
                unknownTimes.append(try await attempt("nobody@acme.test"))
            }
            let known = knownTimes.min()!
            let unknown = unknownTimes.min()!
            #expect(known > .milliseconds(5), "the hash is too cheap to compare: \(known)")
            #expect(unknown > known / 2, "unknown email answered in \(unknown), a known one in \(known)")
        }
    }

    @Test("R-USR-4: a blocked user with the right password gets blocked; with a wrong one, invalid_credentials")
    func blockedUser() async throws {
        try await withClient { server, client in
            try await Scenario(client).activeUser("alice@acme.test")
            try server.database.owner("UPDATE users SET status = 'blocked'")
            let right = try await client.send("user.authenticate", params: ["email": "alice@acme.test", "password": .string(Scenario.password)])
            #expect(right.errorCode == .blocked)
            let wrong = try await client.send("user.authenticate", params: ["email": "alice@acme.test", "password": "not the password"])
            #expect(wrong.errorCode == .invalidCredentials)
        }
    }

    @Test("R-USR-4: a removed user gets invalid_credentials")
    func removedUser() async throws {
        try await withClient { server, client in
            try await Scenario(client).activeUser("alice@acme.test")
            try server.database.owner("DELETE FROM email_directory")
            try server.database.owner("DELETE FROM users")
            let reply = try await client.send("user.authenticate", params: ["email": "alice@acme.test", "password": .string(Scenario.password)])
            #expect(reply.errorCode == .invalidCredentials)
        }
    }
}
