import PortierDomain
import PortierStorage
import PortierTestSupport
import Testing

@Suite("Row-level security (R-ENV-1)")
struct RowLevelSecurityTests {
    static let tenantTables = [
        "environments", "users", "user_emails", "tokens", "organisations", "memberships", "membership_links",
        "partnerships", "inbox_requests", "outbox", "audit_events",
    ]

    /// Two environments with a row in every tenant table, made as the owner.
    func seed(_ db: TestDatabase) throws -> (EnvironmentID, EnvironmentID) {
        var ids: [EnvironmentID] = []
        for (n, other) in [(1, 2), (2, 1)] {
            let env = try db.owner("INSERT INTO environments (name) VALUES ($1) RETURNING environment_id", ["env\(n)"]).first!.int64("environment_id")
            ids.append(EnvironmentID(env))
            _ = other
        }
        for (env, partner) in [(ids[0], ids[1]), (ids[1], ids[0])] {
            let e = env.raw
            let user = try db.owner(
                "INSERT INTO users (environment_id, email, email_norm, role, status) VALUES ($1, $2, $2, 'administrator', 'active') RETURNING user_id",
                [e, "u\(e)@e\(e).test"]
            ).first!.int64("user_id")
            try db.owner("INSERT INTO user_emails (environment_id, user_id, email_norm, email) VALUES ($1, $2, $3, $3)", [e, user, "x\(e)@e\(e).test"])
            try db.owner("INSERT INTO tokens (environment_id, user_id, purpose, token_hash, expires_at) VALUES ($1, $2, 'activation', $3, now())", [e, user, ByteaValue([UInt8(e)])])
            let org = try db.owner("INSERT INTO organisations (environment_id, name) VALUES ($1, 'o') RETURNING organisation_id", [e]).first!.int64("organisation_id")
            try db.owner("INSERT INTO memberships (environment_id, organisation_id, user_environment_id, user_id) VALUES ($1, $2, $1, $3)", [e, org, user])
            try db.owner("INSERT INTO membership_links (environment_id, user_id, organisation_environment_id, organisation_id) VALUES ($1, $2, $3, 1)", [e, user, partner.raw])
            try db.owner("INSERT INTO partnerships (environment_id, partnership_id, partner_environment_id, proposer_environment_id, status) VALUES ($1, 1, $2, $1, 'pending')", [e, partner.raw])
            try db.owner("INSERT INTO inbox_requests (environment_id, kind) VALUES ($1, 'partnership')", [e])
            try db.owner("INSERT INTO outbox (environment_id, kind, recipient) VALUES ($1, 'activation', 'x')", [e])
            try db.owner("INSERT INTO audit_events (environment_id, actor_label, op) VALUES ($1, 'x', 'seed')", [e])
        }
        return (ids[0], ids[1])
    }

    @Test("R-ENV-1: scoped to environment A, no tenant table shows a row of B")
    func isolation() async throws {
        let db = try await TestDatabase.create()
        let (a, b) = try seed(db)
        let pool = db.makePool(size: 1)
        defer { Task { await pool.shutdown() } }
        for table in Self.tenantTables {
            let (own, foreign, all) = try await pool.transaction(environments: [a]) { tx in
                (
                    try tx.query("SELECT count(*) AS n FROM \(table) WHERE environment_id = $1", [a.raw]).first!.int64("n"),
                    try tx.query("SELECT count(*) AS n FROM \(table) WHERE environment_id = $1", [b.raw]).first!.int64("n"),
                    try tx.query("SELECT count(*) AS n FROM \(table)").first!.int64("n")
                )
            }
            #expect(own >= 1, "\(table) shows A its own rows")
            #expect(foreign == 0, "\(table) leaks B's rows to A")
            #expect(all == own, "\(table) shows rows beyond A")
        }
    }

    @Test("R-ENV-1: with no environment set, tenant tables show nothing")
    func noEnvironment() async throws {
        let db = try await TestDatabase.create()
        _ = try seed(db)
        let pool = db.makePool(size: 1)
        defer { Task { await pool.shutdown() } }
        for table in Self.tenantTables {
            let n = try await pool.transaction { tx in try tx.query("SELECT count(*) AS n FROM \(table)").first!.int64("n") }
            #expect(n == 0, "\(table) visible without an environment")
        }
    }

    @Test("R-ENV-1: scoped to A, writing a row of B is refused by the database")
    func writeCheck() async throws {
        let db = try await TestDatabase.create()
        let (a, b) = try seed(db)
        let pool = db.makePool(size: 1)
        defer { Task { await pool.shutdown() } }
        await #expect {
            try await pool.transaction(environments: [a]) { tx in
                try tx.query("INSERT INTO organisations (environment_id, name) VALUES ($1, 'intruder')", [b.raw])
            }
        } throws: { ($0 as? DatabaseError)?.kind == .permissionDenied }
        let updated = try await pool.transaction(environments: [a]) { tx in
            try tx.query("UPDATE users SET name = 'x' WHERE environment_id = $1", [b.raw]).affectedRows
        }
        #expect(updated == 0)
        #expect(try db.owner("SELECT count(*) AS n FROM organisations WHERE name = 'intruder'").first!.int64("n") == 0)
    }

    @Test("R-ENV-1: the application role owns nothing and cannot bypass RLS")
    func applicationRole() async throws {
        let db = try await TestDatabase.create()
        let pool = db.makePool(size: 1)
        defer { Task { await pool.shutdown() } }
        let row = try await pool.transaction { tx in
            try tx.query("""
                SELECT current_user AS who, r.rolsuper, r.rolbypassrls,
                       (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid) AS owned
                FROM pg_roles r WHERE r.rolname = current_user
                """).first!
        }
        #expect(row["who"] == Schema.applicationRole)
        #expect(row["rolsuper"] == "f")
        #expect(row["rolbypassrls"] == "f")
        #expect(row["owned"] == "0")
    }

    @Test("R-OUT-1: the mailer role reads every outbox and nothing else")
    func mailer() async throws {
        let db = try await TestDatabase.create()
        _ = try seed(db)
        let pool = db.makePool(size: 1)
        defer { Task { await pool.shutdown() } }
        let messages = try await pool.transaction { tx in
            try tx.becomeMailer()
            return try tx.pendingMessages(after: 0, limit: 10)
        }
        #expect(Set(messages.map(\.environment)).count == 2)
        await #expect(throws: DatabaseError.self) {
            try await pool.transaction { tx in
                try tx.becomeMailer()
                try tx.query("SELECT count(*) FROM users")
            }
        }
    }
}
