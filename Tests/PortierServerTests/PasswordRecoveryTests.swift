import Foundation
import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

/// R-USR-14 (password recovery) and R-USR-15 (password change), through the socket.
@Suite("Password recovery and change (R-USR-14, R-USR-15)")
struct PasswordRecoveryTests {
    static let newPassword = "a brand new passphrase"

    func forgot(_ client: PortierClient, _ email: String) async throws -> Reply {
        try await client.send("user.password.forgot", params: ["email": .string(email)])
    }

    func reset(_ client: PortierClient, _ token: String, _ password: String = newPassword) async throws -> Reply {
        try await client.send("user.password.reset", params: ["token": .string(token), "password": .string(password)])
    }

    func login(_ client: PortierClient, _ email: String, _ password: String, from: String? = nil) async throws -> ErrorCode? {
        var params: JSONObject = ["email": .string(email), "password": .string(password)]
        if let from { params["client"] = .string(from) }
        return try await client.send("user.authenticate", params: params).errorCode
    }

    /// Every unacknowledged message of `kind` to `to`, oldest first.
    func messages(_ client: PortierClient, to: String, kind: String) async throws -> [JSONObject] {
        let page = try await client.call("outbox.list", params: ["limit": 1000])
        return (page["messages"]?.arrayValue ?? []).compactMap(\.objectValue)
            .filter { $0["to"]?.stringValue?.lowercased() == to.lowercased() && $0["kind"]?.stringValue == kind }
    }

    @Test("R-USR-14: forgot answers {} for every address; only an active user's primary address gets a password_reset message")
    func forgotRevealsNothing() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("forgot.test").id
            try await s.invite("invited@forgot.test", as: admin)
            let blocked = try await s.member("blocked@forgot.test", as: admin).id
            try await client.call("user.block", actor: admin, params: ["user": .string(blocked)])
            try await client.call("user.email.add", actor: admin, params: ["email": "second@elsewhere.test"])
            for email in ["admin@forgot.test", "ADMIN@Forgot.Test", "nobody@forgot.test", "invited@forgot.test", "blocked@forgot.test",
                          "second@elsewhere.test", "ghost@nowhere.test"] {
                let reply = try await forgot(client, email)
                #expect(reply.isSuccess && reply.result == [:], "\(email): \(reply)")
            }
            #expect(try await messages(client, to: "admin@forgot.test", kind: "password_reset").count == 2)
            for email in ["nobody@forgot.test", "invited@forgot.test", "blocked@forgot.test", "second@elsewhere.test", "ghost@nowhere.test"] {
                #expect(try await messages(client, to: email, kind: "password_reset").isEmpty, "\(email)")
            }
            #expect(try await forgot(client, "not an address").errorCode == .badRequest)
        }
    }

    @Test("R-USR-14: a reset token works once, sets the password, and kills every other outstanding one (several may be outstanding)")
    func resetIsSingleUseAndKillsTheOthers() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.activeUser("ann@reset.test")
            _ = try await forgot(client, "ann@reset.test")
            _ = try await forgot(client, "ann@reset.test")
            let tokens = try await messages(client, to: "ann@reset.test", kind: "password_reset").compactMap { $0["token"]?.stringValue }
            #expect(tokens.count == 2 && tokens[0] != tokens[1])
            // Asking again did not kill the first link.
            let done = try await reset(client, tokens[0])
            #expect(done.isSuccess, "\(done)")
            #expect(done.result?["user"]?.objectValue?["email"]?.stringValue == "ann@reset.test")
            #expect(try await login(client, "ann@reset.test", Self.newPassword) == nil)
            #expect(try await login(client, "ann@reset.test", Scenario.password) == .invalidCredentials)
            #expect(try await reset(client, tokens[0], "yet another passphrase").errorCode == .expiredToken, "single use")
            #expect(try await reset(client, tokens[1], "yet another passphrase").errorCode == .expiredToken, "killed by the reset")
            #expect(try await messages(client, to: "ann@reset.test", kind: "password_reset").isEmpty, "the killed link's message was withdrawn")
            #expect(try await reset(client, "1.made-up-token-\(String(repeating: "x", count: 30))").errorCode == .expiredToken)
            #expect(try await reset(client, "garbage").errorCode == .expiredToken)
        }
    }

    @Test("R-USR-14: reset tokens expire after their lifetime")
    func resetTokensExpire() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            try await s.activeUser("eve@expire.test")
            _ = try await forgot(client, "eve@expire.test")
            let token = try await s.token(for: "eve@expire.test", kind: "password_reset")
            try server.database.owner("UPDATE tokens SET expires_at = now() - interval '1 second' WHERE purpose = 'password_reset'")
            #expect(try await reset(client, token).errorCode == .expiredToken)
            #expect(try await login(client, "eve@expire.test", Scenario.password) == nil)
        }
    }

    @Test("R-USR-14, R-USR-4: a completed reset clears the address's login throttling")
    func resetClearsThrottling() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.activeUser("tom@throttled.test")
            for _ in 0..<10 { #expect(try await login(client, "tom@throttled.test", "wrong password!", from: "10.1.1.1") == .invalidCredentials) }
            #expect(try await login(client, "tom@throttled.test", Scenario.password, from: "10.1.1.1") == .rateLimited)
            _ = try await forgot(client, "tom@throttled.test")
            #expect(try await reset(client, try await s.token(for: "tom@throttled.test", kind: "password_reset")).isSuccess)
            #expect(try await login(client, "tom@throttled.test", Self.newPassword, from: "10.1.1.1") == nil)
        }
    }

    @Test("R-USR-14: a user blocked after asking cannot reset; the password stays")
    func blockedUserCannotReset() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("blocked-reset.test").id
            let bea = try await s.member("bea@blocked-reset.test", as: admin).id
            _ = try await forgot(client, "bea@blocked-reset.test")
            let token = try await s.token(for: "bea@blocked-reset.test", kind: "password_reset")
            try await client.call("user.block", actor: admin, params: ["user": .string(bea)])
            #expect(try await reset(client, token).errorCode == .blocked)
            try await client.call("user.unblock", actor: admin, params: ["user": .string(bea)])
            #expect(try await login(client, "bea@blocked-reset.test", Scenario.password) == nil, "nothing changed")
        }
    }

    @Test("R-USR-16, R-USR-14: past the recipient's cap forgot still answers {} and writes nothing")
    func forgotPastTheCap() async throws {
        try await withClient(configure: { _, settings in settings.messagesPerRecipientPerHour = 2 }) { _, client in
            let s = Scenario(client)
            try await s.signup("cap@capped-reset.test")  // one message: the activation
            try await s.activate("cap@capped-reset.test")
            for _ in 0..<3 { #expect(try await forgot(client, "cap@capped-reset.test").isSuccess) }
            // The resets have an allowance of their own (the activation is another sender's): 2, then nothing.
            #expect(try await messages(client, to: "cap@capped-reset.test", kind: "password_reset").count == 2)
        }
    }

    @Test("R-USR-14: forgot takes its floor time for known and unknown addresses alike")
    func forgotTiming() async throws {
        try await withClient(configure: { _, settings in settings.passwordForgotFloor = .milliseconds(300) }) { _, client in
            let s = Scenario(client)
            try await s.activeUser("tim@timing.test")
            let clock = ContinuousClock()
            for email in ["tim@timing.test", "nobody@timing.test"] {
                let start = clock.now
                #expect(try await forgot(client, email).isSuccess)
                #expect(clock.now - start >= .milliseconds(300), "\(email)")
            }
        }
    }

    @Test("R-USR-15: change needs the current password; a wrong one counts towards throttling; a change kills reset tokens; audited")
    func change() async throws {
        // Without a `client`, failures count against the address alone (its limit set to 10 here).
        try await withClient(configure: { _, settings in settings.loginFailuresPerAddress = 10 }) { _, client in
            let s = Scenario(client)
            let cy = try await s.activeUser("cy@change.test").id
            _ = try await forgot(client, "cy@change.test")
            let token = try await s.token(for: "cy@change.test", kind: "password_reset")
            let wrong = try await client.send("user.password.change", actor: cy, params: ["current_password": "not my password", "new_password": .string(Self.newPassword)])
            #expect(wrong.errorCode == .invalidCredentials)
            let short = try await client.send("user.password.change", actor: cy, params: ["current_password": .string(Scenario.password), "new_password": "short"])
            #expect(short.errorCode == .badRequest)
            let changed = try await client.send("user.password.change", actor: cy, params: ["current_password": .string(Scenario.password), "new_password": .string(Self.newPassword)])
            #expect(changed.isSuccess && changed.result == [:], "\(changed)")
            #expect(try await login(client, "cy@change.test", Self.newPassword) == nil)
            #expect(try await reset(client, token, "one more passphrase").errorCode == .expiredToken, "the change killed the reset link")
            #expect(try await client.send("user.password.change", params: ["current_password": "x", "new_password": "y"]).errorCode == .badRequest, "needs an actor")
            let events = try await client.call("audit.list", actor: cy, params: [:])["events"]?.arrayValue ?? []
            let ops = Set(events.compactMap { $0.objectValue?["op"]?.stringValue })
            #expect(ops.isSuperset(of: ["user.password.forgot", "user.password.change"]), "\(ops)")
            // Wrong current passwords count like failed logins (R-USR-4).
            for _ in 0..<9 {
                _ = try await client.send("user.password.change", actor: cy, params: ["current_password": "not my password", "new_password": .string(Self.newPassword)])
            }
            let limited = try await client.send("user.password.change", actor: cy, params: ["current_password": .string(Self.newPassword), "new_password": "another passphrase"])
            #expect(limited.errorCode == .rateLimited)
            #expect(try await login(client, "cy@change.test", Self.newPassword) == .rateLimited)
        }
    }

    @Test("§11: revoking an invitation withdraws its activation message; acknowledging a withdrawn message is not an error")
    func withdrawnInvitations() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("withdraw.test").id
            let dan = try await s.invite("dan@withdraw.test", as: admin).id
            let first = try await messages(client, to: "dan@withdraw.test", kind: "activation")
            #expect(first.count == 1)
            try await client.call("user.resend_invitation", actor: admin, params: ["user": .string(dan)])
            let second = try await messages(client, to: "dan@withdraw.test", kind: "activation")
            #expect(second.count == 1 && second[0]["id"] != first[0]["id"], "only the new message is left")
            try await client.call("user.remove", actor: admin, params: ["user": .string(dan)])
            #expect(try await messages(client, to: "dan@withdraw.test", kind: "activation").isEmpty)
            let ack = try await client.send("outbox.ack", params: ["ids": [first[0]["id"]!, second[0]["id"]!]])
            #expect(ack.isSuccess, "\(ack)")
        }
    }

    @Test("§11: every timestamp is RFC 3339 in UTC (outbox created_at, audit at)")
    func timestamps() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("times.test").id
            let pattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
            try await s.invite("t@times.test", as: admin)
            let message = try await messages(client, to: "t@times.test", kind: "activation")[0]
            #expect(message["created_at"]?.stringValue?.wholeMatch(of: pattern) != nil, "\(message)")
            let events = try await client.call("audit.list", actor: admin, params: [:])["events"]?.arrayValue ?? []
            #expect(!events.isEmpty)
            for event in events { #expect(event.objectValue?["at"]?.stringValue?.wholeMatch(of: pattern) != nil, "\(event)") }
        }
    }
}
