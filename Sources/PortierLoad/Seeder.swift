import Foundation
import PortierDomain
import PortierPasswords
import PortierService
import PortierStorage
import Synchronization

/// Writes a `LoadPlan` into a migrated database, fast: the rows that carry the
/// permission facts (environments, claims, users, organisations, memberships,
/// partnerships) stream in with COPY; the rows the operations would have added
/// around them (email directory, activation tokens and messages, inbox
/// requests, audit events, revisions) are derived from those in SQL.
///
/// Two connections work in parallel, one on the users' side and one on the
/// organisations' side, each in one transaction; a last short transaction sets
/// the revisions. A failed seed may leave one side committed: seed into a fresh
/// database (`portier-load` is a test tool; the manifest is written only on success).
///
/// Runs as a superuser: triggers are off while loading (`session_replication_role
/// = replica`), so the index change log is not filled with millions of rows
/// nobody will read (an index loads a seeded environment in full on first use)
/// and foreign keys are not checked row by row (the plan is consistent by
/// construction; `PortierLoadTests` checks it against the SQL oracle).
public struct Seeder: Sendable {
    let conninfo: String
    public init(conninfo: String) { self.conninfo = conninfo }

    /// Ids the seed will start after.
    static func nextBase(_ connection: PostgresConnection) throws -> IDBase {
        func top(_ table: String, _ column: String, _ sequence: String) throws -> Int64 {
            let row = try connection.query("SELECT GREATEST((SELECT COALESCE(max(\(column)), 0) FROM \(table)), (SELECT last_value FROM \(sequence))) AS top").first!
            return try row.int64("top")
        }
        return IDBase(
            environment: try top("environments", "environment_id", "environment_ids"),
            user: try top("users", "user_id", "user_ids"),
            organisation: try top("organisations", "organisation_id", "organisation_ids"),
            partnership: try top("partnerships", "partnership_id", "partnership_ids")
        )
    }

    /// Seeds `shape`; returns the manifest `run` needs. `progress` gets one line per step.
    public func seed(_ shape: LoadShape, password: String, hashing: PasswordHasher.Parameters = .default,
                     progress: @escaping @Sendable (String) -> Void = { _ in }) throws -> LoadManifest {
        let users = try PostgresConnection(conninfo: conninfo)
        let organisations = try PostgresConnection(conninfo: conninfo)
        let manifest = LoadManifest(shape: shape, base: try Self.nextBase(users), password: password)
        let plan = LoadPlan(manifest)
        let hash = PasswordHasher.hash(password, parameters: hashing)
        let at = Self.timestamp(daysAgo: 30)
        let failures = Mutex<[any Error]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { side in
            let connection = side == 0 ? users : organisations
            do {
                try Self.transaction(connection) {
                    let part = SeedPart(connection: connection, plan: plan, at: at, progress: progress)
                    try part.creators()
                    if side == 0 { try part.usersSide(passwordHash: hash) } else { try part.organisationsSide() }
                }
            } catch {
                failures.withLock { $0.append(error) }
            }
        }
        if let first = failures.withLock({ $0.first }) { throw first }
        try Self.transaction(users) { try SeedPart(connection: users, plan: plan, at: at, progress: progress).finish() }
        try users.execute("ANALYZE")
        return manifest
    }

    private static func transaction(_ connection: PostgresConnection, _ body: () throws -> Void) throws {
        try connection.execute("BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL session_replication_role = replica")
        do {
            try body()
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }

    static func timestamp(daysAgo days: Int) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date().addingTimeInterval(-Double(days) * 86_400))
    }

}

/// One connection's share of a seed.
struct SeedPart {
    let connection: PostgresConnection
    let plan: LoadPlan
    let at: String
    let progress: @Sendable (String) -> Void

    @discardableResult
    func copy(_ table: String, _ columns: String, items: Int, _ write: (Int, inout RowBuffer) -> Void) throws -> Int {
        var next = 0
        return try connection.copy("COPY \(table) (\(columns)) FROM STDIN") { bytes in
            var rows = RowBuffer(bytes: bytes)
            defer { bytes = rows.bytes }
            while next < items, rows.bytes.count < 1 << 20 {
                write(next, &rows)
                next += 1
            }
            return next < items
        }
    }

    /// Environments, claims and users, then what the operations derive from users.
    func usersSide(passwordHash: String) throws {
        let envs = plan.environments
        var n = try copy("environments", "environment_id, name, revision, created_at", items: envs.count) { i, r in
            let e = envs[i]
            r.field(e.id.raw); r.tab(); r.field(e.domain); r.tab(); r.field(0); r.tab(); r.field(at); r.end()
        }
        progress("environments: \(n)")
        n = try copy("domain_claims", "domain, environment_id, status, claimed_at, confirmed_at", items: envs.count) { i, r in
            let e = envs[i]
            r.field(e.domain); r.tab(); r.field(e.id.raw); r.tab(); r.field("confirmed"); r.tab(); r.field(at); r.tab(); r.field(at); r.end()
        }
        progress("domain claims: \(n)")
        n = try copy("users", "environment_id, user_id, email, email_norm, name, role, status, password_hash, created_at, activated_at", items: envs.count) { i, r in
            let e = envs[i]
            for k in 0..<e.userCount {
                let u = e.user(at: k)
                let email = e.email(ofUser: u.id)
                r.field(e.id.raw); r.tab(); r.field(u.id); r.tab(); r.field(email); r.tab(); r.field(email); r.tab()
                r.field("User "); r.field(u.id); r.tab(); r.field(u.role.rawValue); r.tab(); r.field(u.status.rawValue); r.tab()
                if u.status == .invited { r.null(); r.tab(); r.field(at); r.tab(); r.null() } else { r.field(passwordHash); r.tab(); r.field(at); r.tab(); r.field(at) }
                r.end()
            }
        }
        progress("users: \(n)")
        try deriveFromUsers()
    }

    /// Organisations, memberships and partnerships, then what the operations derive from them.
    func organisationsSide() throws {
        let envs = plan.environments
        var n = try copy("organisations", "environment_id, organisation_id, name, kvk_number, country, status, created_at", items: envs.count) { i, r in
            let e = envs[i]
            for j in 0..<e.organisationCount {
                let id = e.firstOrganisation + Int64(j)
                r.field(e.id.raw); r.tab(); r.field(id); r.tab(); r.field("Organisation "); r.field(id); r.tab()
                r.field(String(format: "%08lld", id % 100_000_000)); r.tab(); r.field("NL"); r.tab(); r.field("active"); r.tab(); r.field(at); r.end()
            }
        }
        progress("organisations: \(n)")
        n = try copy("memberships", "environment_id, organisation_id, user_environment_id, user_id, role, status, created_at", items: envs.count) { i, r in
            let e = envs[i]
            for k in 0..<e.userCount {
                let u = e.user(at: k)
                let role = u.organisationAdministrator ? "administrator" : "member"
                for offset in e.membershipOffsets(ofUserAt: k) {
                    r.field(e.id.raw); r.tab(); r.field(e.firstOrganisation + Int64(offset)); r.tab(); r.field(e.id.raw); r.tab(); r.field(u.id); r.tab()
                    r.field(role); r.tab(); r.field("active"); r.tab(); r.field(at); r.end()
                }
            }
            for p in plan.partnerMembers[i] ?? [] {
                r.field(e.id.raw); r.tab(); r.field(p.organisation); r.tab(); r.field(envs[p.userEnvironment].id.raw); r.tab(); r.field(p.user); r.tab()
                r.field("member"); r.tab(); r.field("active"); r.tab(); r.field(at); r.end()
            }
        }
        progress("memberships: \(n)")
        let partnerMembers = plan.partnerMembers.flatMap { client, members in members.map { (client, $0) } }
        n = try copy("membership_links", "environment_id, user_id, organisation_environment_id, organisation_id, created_at", items: partnerMembers.count) { i, r in
            let (client, p) = partnerMembers[i]
            r.field(envs[p.userEnvironment].id.raw); r.tab(); r.field(p.user); r.tab(); r.field(envs[client].id.raw); r.tab(); r.field(p.organisation); r.tab(); r.field(at); r.end()
        }
        progress("membership links: \(n)")
        n = try copy("partnerships", "environment_id, partnership_id, partner_environment_id, proposer_environment_id, status, created_at, changed_at", items: plan.partnerships.count) { i, r in
            let p = plan.partnerships[i]
            let (a, c) = (envs[p.accountant].id.raw, envs[p.client].id.raw)
            for (side, other) in [(a, c), (c, a)] {
                r.field(side); r.tab(); r.field(p.id); r.tab(); r.field(other); r.tab(); r.field(a); r.tab(); r.field("active"); r.tab(); r.field(at); r.tab(); r.field(at); r.end()
            }
        }
        progress("partnerships: \(n / 2) (both sides)")
        try deriveFromOrganisations()
    }
}
