import Foundation
import PortierClient
import PortierDomain
import PortierProtocol
import PortierStorage
import PortierTestSupport
import Testing

/// R-SEC-2: waits for the database are bounded. A test-held row lock makes the
/// requests wait; the timeouts answer `unavailable` and nothing is changed.
@Suite("R-SEC-2: statement, lock and connection-wait timeouts")
struct DatabaseTimeoutTests {
    /// Holds the environment row of `admin`'s environment locked until `release`.
    func lockEnvironment(of admin: String, server: TestServer) throws -> PostgresConnection {
        let env = ScopedID(admin, kind: .user)!.environment
        let blocker = try PostgresConnection(conninfo: server.database.ownerConninfo)
        try blocker.execute("BEGIN")
        try blocker.query("SELECT 1 FROM environments WHERE environment_id = $1 FOR UPDATE", [env.raw])
        return blocker
    }

    @Test("R-SEC-2: a change waiting past the lock timeout gets unavailable and creates nothing")
    func lockTimeout() async throws {
        try await withServer(configureDatabase: { $0.lockTimeout = .milliseconds(300) }) { server in
            let client = try await server.client()
            let s = Scenario(client)
            let admin = try await s.environment("locked.test").id
            let blocker = try lockEnvironment(of: admin, server: server)
            let reply = try await client.send("user.invite", actor: admin, params: ["email": "late@locked.test"])
            #expect(reply.errorCode == .unavailable)
            try blocker.execute("ROLLBACK")
            let users = try await client.call("user.list", actor: admin)["users"]?.arrayValue ?? []
            #expect(users.count == 1, "the invitation was not created")
            #expect(try await client.send("user.invite", actor: admin, params: ["email": "late@locked.test"]).isSuccess)
            await client.close()
        }
    }

    @Test("R-SEC-2: a statement running past the statement timeout gets unavailable")
    func statementTimeout() async throws {
        try await withServer(configureDatabase: {
            $0.statementTimeout = .milliseconds(300)
            $0.lockTimeout = .seconds(30)
        }) { server in
            let client = try await server.client()
            let s = Scenario(client)
            let admin = try await s.environment("slow.test").id
            let blocker = try lockEnvironment(of: admin, server: server)
            let reply = try await client.send("user.invite", actor: admin, params: ["email": "late@slow.test"])
            #expect(reply.errorCode == .unavailable)
            try blocker.execute("ROLLBACK")
            await client.close()
        }
    }

    @Test("R-SEC-2: a request waiting past the connection-wait timeout gets unavailable; others proceed once connections are free")
    func connectionWaitTimeout() async throws {
        try await withServer(configureDatabase: {
            $0.poolSize = 1
            $0.connectionWaitTimeout = .milliseconds(300)
            $0.lockTimeout = .seconds(30)
        }) { server in
            let client = try await server.client()
            let s = Scenario(client)
            let admin = try await s.environment("busy.test").id
            let blocker = try lockEnvironment(of: admin, server: server)
            // The invitation takes the pool's only connection and waits for the lock.
            let held = Task { try await client.send("user.invite", actor: admin, params: ["email": "held@busy.test"]) }
            try await waitUntil("every connection in use") { server.service.pool.usage.idle == 0 && server.service.pool.usage.open > 0 }
            let waiting = try await client.send("user.get", actor: admin, params: ["user": .string(admin)])
            #expect(waiting.errorCode == .unavailable)
            try blocker.execute("COMMIT")
            #expect(try await held.value.isSuccess)
            #expect(try await client.send("user.get", actor: admin, params: ["user": .string(admin)]).isSuccess)
            await client.close()
        }
    }

    @Test("a request whose client disconnected stops waiting for a database connection")
    func cancelledWhenClientLeaves() async throws {
        try await withServer(configureDatabase: {
            $0.poolSize = 1
            $0.connectionWaitTimeout = .seconds(60)
            $0.lockTimeout = .seconds(60)
        }) { server in
            let client = try await server.client()
            let s = Scenario(client)
            let admin = try await s.environment("gone.test").id
            let blocker = try lockEnvironment(of: admin, server: server)
            let held = Task { try await client.send("user.invite", actor: admin, params: ["email": "held@gone.test"]) }
            try await waitUntil("every connection in use") { server.service.pool.usage.idle == 0 && server.service.pool.usage.open > 0 }
            let leaver = try await server.client()
            try await leaver.sendRaw(FrameCounter.frame(#"{"id":1,"op":"user.get","actor":"\#(admin)","params":{"user":"\#(admin)"}}"#))
            try await waitUntil("a request waiting") { server.service.pool.usage.waiting > 0 }
            await leaver.close()
            var waited = 0
            while server.service.pool.usage.waiting > 0, waited < 500 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            #expect(server.service.pool.usage.waiting == 0, "the abandoned request left the queue")
            try blocker.execute("COMMIT")
            #expect(try await held.value.isSuccess)
            await client.close()
        }
    }
}
