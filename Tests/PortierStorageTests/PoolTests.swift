import PortierDomain
import PortierStorage
import PortierTestSupport
import Synchronization
import Testing

@Suite("Connection pool and transactions")
struct PoolTests {
    @Test("a transaction that throws leaves nothing behind")
    func rollback() async throws {
        let db = try await TestDatabase.create()
        let pool = db.makePool(size: 2)
        defer { Task { await pool.shutdown() } }
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await pool.transaction { tx in
                _ = try tx.createEnvironment(name: "doomed", claim: "doomed.test", activationDeadlineSeconds: 60)
                throw Boom()
            }
        }
        #expect(try db.owner("SELECT count(*) AS n FROM environments").first!.int64("n") == 0)
        #expect(try db.owner("SELECT count(*) AS n FROM domain_claims").first!.int64("n") == 0)
    }

    @Test("SQLSTATE 23505 surfaces as a unique violation naming its constraint")
    func uniqueViolation() async throws {
        let db = try await TestDatabase.create()
        let pool = db.makePool(size: 1)
        defer { Task { await pool.shutdown() } }
        try await pool.transaction { tx in _ = try tx.createEnvironment(name: "a", claim: "a.test", activationDeadlineSeconds: 60) }
        await #expect {
            try await pool.transaction { tx in _ = try tx.createEnvironment(name: "b", claim: "a.test", activationDeadlineSeconds: 60) }
        } throws: { error in
            guard let e = error as? DatabaseError else { return false }
            return e.kind == .uniqueViolation && e.constraint == "domain_claims_pkey" && e.portierError.code == .conflict
        }
    }

    @Test("a connection killed by the server is replaced without failing the next request")
    func reconnect() async throws {
        let db = try await TestDatabase.create()
        let pool = db.makePool(size: 1)
        defer { Task { await pool.shutdown() } }
        let pid = try await pool.withConnection { $0.backendPID }
        try db.owner("SELECT pg_terminate_backend($1)", [Int64(pid)])
        try await Task.sleep(for: .milliseconds(100))
        let n = try await pool.transaction { tx in try tx.query("SELECT 1 AS n").first!.int64("n") }
        #expect(n == 1)
        let newPID = try await pool.withConnection { $0.backendPID }
        #expect(newPID != pid)
    }

    @Test("more concurrent transactions than connections all complete")
    func bounded() async throws {
        let db = try await TestDatabase.create()
        let pool = db.makePool(size: 2)
        defer { Task { await pool.shutdown() } }
        let total = try await withThrowingTaskGroup(of: Int64.self) { group in
            for i in 0..<50 {
                group.addTask { try await pool.transaction { tx in try tx.query("SELECT $1::bigint AS n", [Int64(i)]).first!.int64("n") } }
            }
            return try await group.reduce(0, +)
        }
        #expect(total == (0..<50).reduce(0, +))
        let connections = try db.owner("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND usename = 'postgres' AND pid <> pg_backend_pid()", [db.name]).first!.int64("n")
        #expect(connections <= 2)
    }

    @Test("an unreachable database is a connection error, mapped to unavailable")
    func unreachable() async throws {
        let pool = ConnectionPool(configuration: DatabaseConfiguration(conninfo: "host=/nonexistent port=1 connect_timeout=1", poolSize: 1), logger: TestDatabase.logger)
        defer { Task { await pool.shutdown() } }
        await #expect {
            try await pool.transaction { tx in try tx.query("SELECT 1") }
        } throws: { ($0 as? DatabaseError)?.portierError.code == .unavailable }
    }

    @Test("openAll opens the whole pool at start, and later requests reuse those connections")
    func openAll() async throws {
        let db = try await TestDatabase.create()
        let pool = db.makePool(size: 3)
        defer { Task { await pool.shutdown() } }
        #expect(await pool.openAll() == 3)
        #expect(pool.usage.open == 3 && pool.usage.idle == 3)
        let backends = try db.owner("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [db.name]).first!.int64("n")
        #expect(backends == 3)
        _ = try await pool.transaction { tx in try tx.query("SELECT 1") }
        #expect(pool.usage.open == 3)
    }

    @Test("a request with priority, or a read (ReadLane), is served before the requests already waiting for a connection",
          arguments: [false, true])
    func priorityFirst(asRead: Bool) async throws {
        let db = try await TestDatabase.create()
        let pool = db.makePool(size: 1)
        defer { Task { await pool.shutdown() } }
        final class Order: Sendable { let served = Mutex<[String]>([]) }
        let order = Order()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Hold the only connection until everybody queues behind it (2 s: on a
            // loaded machine half a second ran out before the fourth queued).
            group.addTask { _ = try await pool.transaction { tx in try tx.query("SELECT pg_sleep(2)") } }
            try await waitUntil("the only connection in use") { pool.usage.idle == 0 && pool.usage.open > 0 }
            for i in 0..<3 {
                group.addTask { try await pool.transaction { _ in order.served.withLock { $0.append("plain \(i)") } } }
                try await waitUntil("\(i + 1) waiting") { pool.usage.waiting >= i + 1 }
            }
            group.addTask {
                if asRead {
                    try await ReadLane.$isRead.withValue(true) { try await pool.transaction { _ in order.served.withLock { $0.append("priority") } } }
                } else {
                    try await pool.transaction(priority: true) { _ in order.served.withLock { $0.append("priority") } }
                }
            }
            try await waitUntil("4 waiting, or one served") { pool.usage.waiting >= 4 || !order.served.withLock({ $0.isEmpty }) }
            #expect(order.served.withLock { $0.isEmpty }, "the connection was released before every request queued")
            try await group.waitForAll()
        }
        #expect(order.served.withLock { $0 }.first == "priority", "\(order.served.withLock { $0 })")
        #expect(order.served.withLock { $0 }.dropFirst() == ["plain 0", "plain 1", "plain 2"])
    }

    @Test("R-USR-8: transactions locking one environment take turns without holding connections; other environments' requests are not stuck behind them")
    func environmentTurns() async throws {
        let db = try await TestDatabase.create()
        let pool = db.makePool(size: 2)
        defer { Task { await pool.shutdown() } }
        let hot = try await pool.transaction { tx in try tx.createEnvironment(name: "hot", claim: "hot.test", activationDeadlineSeconds: 60) }
        /// What the racing tasks saw: the order they finished in, the most lock holders at once.
        final class Seen: Sendable {
            let finished = Mutex<[String]>([])
            let busiest = Mutex(0)
        }
        let seen = Seen()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<6 {
                group.addTask {
                    try await pool.transaction(environments: [hot], locking: hot) { tx in
                        // Who else holds this environment's row lock now: nobody may.
                        let holders = try tx.query("""
                            SELECT count(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                            WHERE c.relname = 'environments' AND l.mode = 'RowShareLock' AND l.pid <> pg_backend_pid() AND l.granted
                              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                            """).first!.int64("n")
                        seen.busiest.withLock { $0 = max($0, Int(holders) + 1) }
                        try tx.query("SELECT pg_sleep(0.2)")
                    }
                    seen.finished.withLock { $0.append("hot \(i)") }
                }
            }
            // All six are in: one holds the turn, five wait for it without a connection.
            let start = ContinuousClock.now
            while pool.turnUsage.waiting < 5, ContinuousClock.now - start < .seconds(5) { try await Task.sleep(for: .milliseconds(5)) }
            #expect(pool.turnUsage.waiting == 5)
            #expect(pool.turnUsage.held == 1)
            try await pool.transaction { tx in try tx.query("SELECT 1") }
            seen.finished.withLock { $0.append("other") }
            try await group.waitForAll()
        }
        let order = seen.finished.withLock { $0 }
        // Without turns the five waiters would queue for the two connections ahead of it.
        #expect(order.firstIndex(of: "other")! <= 1, "\(order)")
        #expect(seen.busiest.withLock { $0 } == 1)
        #expect(pool.turnUsage.held == 0 && pool.turnUsage.waiting == 0)
    }
}

@Suite("Index change log")
struct ChangeLogTests {
    @Test("R-PRM-5: changed rows are logged with the revision that committed them; a forgotten bump is made before COMMIT")
    func stamped() async throws {
        let db = try await TestDatabase.create()
        let pool = db.makePool(size: 1)
        defer { Task { await pool.shutdown() } }
        let env = try await pool.transaction { tx in
            let env = try tx.createEnvironment(name: "e", claim: nil, activationDeadlineSeconds: 60)
            _ = try tx.insertUser(environment: env, email: try EmailAddress("a@e.test"), name: "", role: .administrator)
            _ = try tx.bumpRevision(env)
            return env
        }
        let first = try db.owner("SELECT entity, revision FROM index_changes WHERE environment_id = $1", [env.raw]).rows
        #expect(first.map { $0["entity"] } == ["user"])
        #expect(first.map { $0["revision"] } == ["1"])
        // No explicit bump: the safety net bumps and stamps.
        try await pool.transaction(environments: [env]) { tx in
            _ = try tx.insertOrganisation(env, name: "o", kvkNumber: nil, country: nil)
        }
        let second = try db.owner("SELECT revision FROM index_changes WHERE environment_id = $1 AND entity = 'organisation'", [env.raw]).first
        #expect(second?["revision"] == "2")
        // A delta after revision 1 holds exactly the organisation.
        let outcome = try await pool.snapshot(environments: [env]) { tx in try tx.indexDelta(env, after: 1) }
        guard case .delta(let delta) = outcome else { Issue.record("no delta"); return }
        #expect(delta.revision == 2)
        #expect(delta.organisations.count == 1)
        #expect(delta.users.isEmpty)
    }

    @Test("R-PRM-5: a change returns its commit report (revision, and the delta read before COMMIT after the caller's revision); its NOTIFY names the committing pool")
    func commitReport() async throws {
        let db = try await TestDatabase.create()
        let pool = db.makePool(size: 1)
        defer { Task { await pool.shutdown() } }
        let env = try await pool.transaction { tx in
            let env = try tx.createEnvironment(name: "e", claim: nil, activationDeadlineSeconds: 60)
            _ = try tx.bumpRevision(env)
            return env
        }
        let heard = Mutex<[RevisionNotice]>([])
        let listener = RevisionListener(conninfo: db.ownerConninfo, logger: TestDatabase.logger,
                                        onRevision: { notice in heard.withLock { $0.append(notice) } }, onConnected: {})
        listener.start()
        try await waitUntil("listening", timeout: .seconds(10)) { listener.backendPID != 0 }
        let (value, report) = try await pool.change(environments: [env], deltasAfter: { $0 == env ? 1 : nil }) { tx in
            try tx.insertOrganisation(env, name: "o", kvkNumber: nil, country: nil)
        }
        #expect(value.name == "o")
        #expect(report.revisions == [RevisionToken(environment: env, revision: 2)])
        #expect(report.deltas[env]?.revision == 2)
        #expect(report.deltas[env]?.organisations.count == 1)
        // Without deltasAfter nothing is read; a read-only transaction reports nothing.
        let plain = try await pool.change(environments: [env]) { tx in _ = try tx.insertOrganisation(env, name: "p", kvkNumber: nil, country: nil) }
        #expect(plain.report.revisions.map(\.revision) == [3] && plain.report.deltas.isEmpty)
        let read = try await pool.change(environments: [env]) { tx in _ = try tx.query("SELECT 1") }
        #expect(read.report.revisions.isEmpty)
        try await waitUntil("both notices", timeout: .seconds(10)) { heard.withLock { $0.count } >= 2 }
        await listener.stop()
        #expect(heard.withLock { $0 }.map(\.token.revision) == [2, 3])
        #expect(heard.withLock { $0 }.allSatisfy { $0.instance == pool.instance && !pool.instance.isEmpty })
        // Another pool is another instance; a plain SQL write names none.
        #expect(db.makePool(size: 1).instance != pool.instance)
        #expect(RevisionNotice("env_4:7")?.instance == "")
        #expect(RevisionNotice("env_4:7 abc") == RevisionNotice("env_4:7 abc"))
        #expect(RevisionNotice("garbage x") == nil)
    }

    @Test("the janitor prunes old log rows across environments and nothing else")
    func prune() async throws {
        let db = try await TestDatabase.create()
        let pool = db.makePool(size: 1)
        defer { Task { await pool.shutdown() } }
        for name in ["a", "b"] {
            try await pool.transaction { tx in
                let env = try tx.createEnvironment(name: name, claim: nil, activationDeadlineSeconds: 60)
                _ = try tx.insertUser(environment: env, email: try EmailAddress("x@\(name).test"), name: "", role: .basic)
                _ = try tx.bumpRevision(env)
            }
        }
        try db.owner("UPDATE index_changes SET created_at = now() - interval '2 hours'")
        let pruned = try await pool.transaction { tx in
            try tx.becomeJanitor()
            return try tx.pruneIndexChanges(olderThanSeconds: 3600)
        }
        #expect(pruned == 2)
        await #expect(throws: DatabaseError.self) {
            try await pool.transaction { tx in
                try tx.becomeJanitor()
                try tx.query("SELECT count(*) FROM users")
            }
        }
    }
}
