import Foundation
import Logging
import Synchronization
import PortierClient
import PortierDomain
import PortierEmbeddedPostgres
import PortierProtocol
import PortierStorage
import PortierTestSupport
import Testing

/// A private cluster this test may stop and start without disturbing the others.
func privateCluster() throws -> (EmbeddedPostgres, TestDatabase, String) {
    let state = "/tmp/po-\(UInt32.random(in: 0...UInt32.max))"
    let pg = try EmbeddedPostgres(stateDirectory: state, logger: TestDatabase.logger)
    try pg.start()
    try DatabaseAdmin.createDatabaseIfMissing(maintenanceConninfo: pg.conninfo(database: "postgres"), name: "portier")
    _ = try Migrator.migrate(conninfo: pg.conninfo(database: "portier"), logger: TestDatabase.logger)
    return (pg, TestDatabase(ownerConninfo: pg.conninfo(database: "portier"), name: "portier"), state)
}

@Suite("Database outage (docs/reliability.md)")
struct DatabaseOutageTests {
    @Test("PostgreSQL stops: requests that need it get unavailable within 1 s, checks from the index keep working; it returns: service resumes within 5 s and nothing acknowledged is lost")
    func outage() async throws {
        let (pg, database, state) = try privateCluster()
        defer { pg.stop(); try? FileManager.default.removeItem(atPath: state) }
        let lines = Mutex<[String]>.Shared()
        let logger = Logger(label: "outage") { _ in
            var handler = CapturingLogHandler(lines: lines)
            handler.logLevel = .info
            return handler
        }
        let server = try await TestServer.start(database: database, logger: logger)
        defer { Task { await server.stop() } }
        let client = try await server.client()
        let s = Scenario(client)
        let admin = try await s.environment("outage.test")
        let org = try await s.organisation("Outage BV", as: admin.id)
        var acknowledged: [String] = []
        for i in 0..<5 {
            let email = "before\(i)@outage.test"
            try await s.invite(email, as: admin.id)
            acknowledged.append(email)
        }
        #expect(try await s.checkLoading(admin.id, "documents.view", in: org) == (true, "org_administrator"))

        pg.stop()

        // Checks by id are answered from the loaded index.
        #expect(try await s.check(admin.id, "documents.view", in: org) == (true, "org_administrator"))
        // Anything that needs PostgreSQL fails fast and clearly, and changes nothing.
        for (op, params, consistency) in [
            ("user.invite", ["email": "during@outage.test"] as JSONObject, nil as Consistency?),
            ("check", ["user": .string(admin.id), "permission": "documents.view", "organisation": .string(org)], .full),
            ("user.list", [:], nil),
        ] {
            let start = ContinuousClock.now
            let reply = try await client.send(op, actor: op == "check" ? nil : admin.id, params: params, consistency: consistency)
            let elapsed = ContinuousClock.now - start
            guard case .failure(let error) = reply.outcome else { Issue.record("\(op) succeeded during the outage"); continue }
            #expect(error.code == .unavailable, "\(op): \(error)")
            #expect(elapsed < .seconds(1), "\(op) took \(elapsed)")
        }
        // Each refusal is logged as a failed request, with its op and code (docs/reliability.md).
        let failed = lines.value.withLock { $0.filter { $0.contains("request failed") && $0.contains(#""code": unavailable"#) } }
        for op in ["user.invite", "check", "user.list"] {
            #expect(failed.contains { $0.contains(#""op": \#(op),"#) || $0.contains(#""op": \#(op)]"#) }, "\(op) not logged: \(failed)")
        }

        try pg.start()
        let back = ContinuousClock.now
        var resumed = false
        while ContinuousClock.now - back < .seconds(5) {
            if case .success = try await client.send("user.invite", actor: admin.id, params: ["email": "after@outage.test"]).outcome {
                resumed = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(resumed, "service did not resume within 5 s")

        // Every acknowledged invitation is there with its audit event and message; the refused one is not.
        for email in acknowledged {
            #expect(try database.owner("SELECT count(*) AS n FROM users WHERE email_norm = $1", [email]).first!.int64("n") == 1)
            #expect(try database.owner("SELECT count(*) AS n FROM audit_events WHERE op = 'user.invite' AND details->>'email' = $1", [email]).first!.int64("n") == 1)
            #expect(try database.owner("SELECT count(*) AS n FROM outbox WHERE kind = 'activation' AND recipient = $1", [email]).first!.int64("n") == 1)
        }
        #expect(try database.owner("SELECT count(*) AS n FROM users WHERE email_norm = 'during@outage.test'").first!.int64("n") == 0)
        await client.close()
    }
}
