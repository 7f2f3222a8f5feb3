import Crypto
import Foundation
import Logging
import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Synchronization
import Testing

/// Keeps every log line (message and metadata) at trace level.
struct CapturingLogHandler: LogHandler {
    let lines: Mutex<[String]>.Shared
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        lines.value.withLock { $0.append("\(event.level) \(event.message) \(all)") }
    }
}

extension Mutex where Value == [String] {
    /// A reference to share one mutex between copies of a value type.
    final class Shared: Sendable {
        let value = Mutex<[String]>([])
    }
}

@Suite("Secrets stay secret (R-USR-2, R-USR-4, docs/rules.md §12)")
struct SecretsTests {
    @Test("R-USR-4, R-USR-2: passwords, tokens and their hashes appear in no log line (trace level), error message or audit detail")
    func noSecretsAnywhere() async throws {
        let lines = Mutex<[String]>.Shared()
        let logger = Logger(label: "secrets") { _ in CapturingLogHandler(lines: lines) }
        let database = try await TestDatabase.create()
        let server = try await TestServer.start(database: database, logger: logger)
        defer { Task { await server.stop() } }
        let client = try await server.client()
        let s = Scenario(client)
        var secrets: [String] = [Scenario.password, "wrong-password-123"]
        var replies: [String] = []

        try await s.signup("admin@secret.test")
        let adminToken = try await s.token(for: "admin@secret.test")
        secrets.append(adminToken)
        let admin = try await client.call("user.activate", params: ["token": .string(adminToken), "password": .string(Scenario.password)])["user"]!.objectValue!
        try await s.invite("bob@secret.test", as: admin.id)
        let first = try await s.token(for: "bob@secret.test")
        try await client.call("user.resend_invitation", actor: admin.id, params: ["user": "bob@secret.test"])
        let second = try await s.token(for: "bob@secret.test")
        secrets += [first, second]
        // Failures that involve secrets: a used token, a revoked one, a wrong password, a short one.
        for (op, params) in [
            ("user.activate", ["token": .string(adminToken), "password": .string(Scenario.password)] as JSONObject),
            ("user.activate", ["token": .string(first), "password": .string(Scenario.password)]),
            ("user.activate", ["token": .string(second), "password": "short"]),
            ("user.authenticate", ["email": "admin@secret.test", "password": "wrong-password-123"]),
            ("user.authenticate", ["email": "nobody@secret.test", "password": "wrong-password-123"]),
        ] {
            let reply = try await client.send(op, params: params)
            if case .failure(let error) = reply.outcome { replies.append(error.message) } else { Issue.record("\(op) succeeded") }
        }
        try await client.call("user.activate", params: ["token": .string(second), "password": .string(Scenario.password)])
        try await client.call("user.authenticate", params: ["email": "bob@secret.test", "password": .string(Scenario.password)])
        try await client.call("user.email.add", actor: admin.id, params: ["email": "extra@secret.test"])
        let verification = try await s.token(for: "extra@secret.test", kind: "email_verification")
        secrets.append(verification)
        try await client.call("user.email.verify", actor: admin.id, params: ["token": .string(verification)])

        // What is stored: the password hashes, the token hashes (hex and base64).
        for row in try database.owner("SELECT password_hash FROM users WHERE password_hash IS NOT NULL").rows {
            secrets.append(try row.string("password_hash"))
        }
        for token in secrets.filter({ $0.count > 20 && !$0.hasPrefix("scrypt$") }) {
            let digest = Data(SHA256.hash(data: Data(token.utf8)))
            secrets += [digest.map { String(format: "%02x", $0) }.joined(), digest.base64EncodedString()]
        }
        for row in try database.owner("SELECT encode(token_hash, 'hex') AS h FROM tokens").rows {
            secrets.append(try row.string("h"))
        }
        let audit = try database.owner("SELECT details::text AS d FROM audit_events").rows.map { try $0.string("d") }

        let logged = lines.value.withLock { $0 }
        // The server logs little by design (nothing per request at any level but
        // failures); the capture must at least have seen it start.
        #expect(logged.contains { $0.contains("listening") }, "the log capture saw nothing")
        for secret in secrets {
            for line in logged where line.contains(secret) { Issue.record("a secret is in the log: \(line)") }
            for message in replies where message.contains(secret) { Issue.record("a secret is in an error message: \(message)") }
            for details in audit where details.contains(secret) { Issue.record("a secret is in an audit detail: \(details)") }
        }
        await client.close()
    }
}
