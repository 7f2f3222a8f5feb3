import PortierDomain
import PortierIndex

/// Why a delta could not be read: the caller reloads in full instead.
public enum DeltaOutcome: Sendable {
    case delta(EnvironmentDelta)
    /// The environment no longer exists.
    case gone
    /// Too many changes to be worth applying one by one.
    case tooLarge
}

extension Transaction {
    /// Deltas with more changed keys than this are replaced by a full reload.
    public static let maximumDeltaChanges = 5_000

    /// Everything the index needs of one environment. Call inside `snapshot`, so
    /// the rows and the revision are of one instant. One query per kind of row.
    public func indexSnapshot(_ environment: EnvironmentID) throws -> EnvironmentSnapshot? {
        let e = environment.raw
        guard let rev = try query("SELECT revision FROM environments WHERE environment_id = $1", [e]).first else { return nil }
        let users = try query("SELECT user_id, role, status, email, name FROM users WHERE environment_id = $1", [e]).rows.map(Self.indexedUser)
        let orgs = try query(
            "SELECT organisation_id, name, kvk_number, country, status FROM organisations WHERE environment_id = $1", [e]
        ).rows.map(Self.indexedOrganisation)
        let memberships = try query(
            "SELECT organisation_id, user_environment_id, user_id, role, status FROM memberships WHERE environment_id = $1", [e]
        ).rows.map(Self.indexedMembership)
        let links = try query(
            "SELECT user_id, organisation_environment_id, organisation_id FROM membership_links WHERE environment_id = $1", [e]
        ).rows.map(Self.indexedLink)
        return EnvironmentSnapshot(
            environment: environment, revision: try rev.int64("revision"),
            users: users, organisations: orgs, memberships: memberships, links: links
        )
    }

    /// The rows that changed after `revision`, as they are now. Call inside `snapshot`
    /// (or inside the change itself, before COMMIT: see `Transaction.commit`).
    public func indexDelta(_ environment: EnvironmentID, after revision: Int64) throws -> DeltaOutcome {
        try Self.delta(environment, after: revision, from: query(Self.deltaStatement, [environment.raw, revision, Self.maximumDeltaChanges + 1]).rows)
    }

    /// What changed in an environment after a revision, in one statement (one
    /// round trip, and the last statement before COMMIT can share its round trip:
    /// `PostgresConnection.queryThenCommit`): the environment's revision, the
    /// changed keys, and the current row of each (a key without a row was
    /// deleted). `LATERAL`: one primary-key probe per changed key, never a scan
    /// of a big environment. Parameters: environment, after revision, limit.
    static let deltaStatement = """
        WITH env AS (
            SELECT revision FROM environments WHERE environment_id = $1
        ), changes AS (
            SELECT DISTINCT c.entity, c.key1, c.key2, c.key3 FROM index_changes c, env
            WHERE c.environment_id = $1 AND c.revision > $2 AND c.revision <= env.revision
            LIMIT $3
        )
        SELECT 'revision' AS kind, revision AS k1, NULL::bigint AS k2, NULL::bigint AS k3,
               NULL::text AS a, NULL::text AS b, NULL::text AS c, NULL::text AS d, NULL::text AS e FROM env
        UNION ALL
        SELECT 'change', NULL, NULL, NULL, entity, key1::text, key2::text, key3::text, NULL FROM changes
        UNION ALL
        SELECT 'user', u.user_id, NULL, NULL, u.role, u.status, u.email, u.name, NULL
        FROM changes c, LATERAL (SELECT * FROM users WHERE environment_id = $1 AND user_id = c.key1) u
        WHERE c.entity = 'user'
        UNION ALL
        SELECT 'organisation', o.organisation_id, NULL, NULL, o.name, o.kvk_number, o.country, o.status, NULL
        FROM changes c, LATERAL (SELECT * FROM organisations WHERE environment_id = $1 AND organisation_id = c.key1) o
        WHERE c.entity = 'organisation'
        UNION ALL
        SELECT 'membership', m.organisation_id, m.user_environment_id, m.user_id, m.role, m.status, NULL, NULL, NULL
        FROM changes c, LATERAL (
            SELECT * FROM memberships
            WHERE environment_id = $1 AND organisation_id = c.key1 AND user_environment_id = c.key2 AND user_id = c.key3
        ) m
        WHERE c.entity = 'membership'
        UNION ALL
        SELECT 'link', l.user_id, l.organisation_environment_id, l.organisation_id, NULL, NULL, NULL, NULL, NULL
        FROM changes c, LATERAL (
            SELECT * FROM membership_links
            WHERE environment_id = $1 AND user_id = c.key1 AND organisation_environment_id = c.key2 AND organisation_id = c.key3
        ) l
        WHERE c.entity = 'link'
        """

    /// Reads the rows of `deltaStatement`.
    static func delta(_ environment: EnvironmentID, after revision: Int64, from rows: [Row]) throws -> DeltaOutcome {
        // UNION ALL promises no order: each row is read for what it is.
        guard let revisionRow = rows.first(where: { $0["kind"] == "revision" }) else { return .gone }
        let now = try revisionRow.int64("k1")
        var delta = EnvironmentDelta(environment: environment, fromRevision: revision, revision: now)
        guard now > revision else { return .delta(delta) }
        var changes = 0
        for row in rows {
            switch row["kind"] {
            case "revision": continue
            case "change":
                changes += 1
                let k1 = Int64(try row.string("b")) ?? 0
                func key(_ column: String) throws -> Int64 { Int64(try row.string(column)) ?? 0 }
                // A changed key without a row was deleted; its row, if read, wins whichever comes first.
                switch try row.string("a") {
                case "user":
                    if delta.users.index(forKey: k1) == nil { delta.users[k1] = .some(nil) }
                case "organisation":
                    if delta.organisations.index(forKey: k1) == nil { delta.organisations[k1] = .some(nil) }
                case "membership":
                    let k = EnvironmentDelta.MembershipKey(organisation: k1, user: UserKey(environment: EnvironmentID(try key("c")), id: try key("d")))
                    if delta.memberships.index(forKey: k) == nil { delta.memberships[k] = .some(nil) }
                default:
                    let link = IndexedLink(user: k1, organisation: ScopedID(.organisation, environment: EnvironmentID(try key("c")), raw: try key("d")))
                    if delta.links[link] == nil { delta.links[link] = false }
                }
            case "user":
                let user = IndexedUser(
                    id: try row.int64("k1"), role: EnvironmentRole(rawValue: try row.string("a")) ?? .basic,
                    status: UserStatus(rawValue: try row.string("b")) ?? .invited, email: try row.string("c"), name: try row.string("d"))
                delta.users[user.id] = user
            case "organisation":
                let org = IndexedOrganisation(
                    id: try row.int64("k1"), name: try row.string("a"), kvkNumber: row["b"], country: row["c"],
                    status: OrganisationStatus(rawValue: try row.string("d")) ?? .inactive)
                delta.organisations[org.id] = org
            case "membership":
                let k = EnvironmentDelta.MembershipKey(organisation: try row.int64("k1"), user: UserKey(environment: EnvironmentID(try row.int64("k2")), id: try row.int64("k3")))
                delta.memberships[k] = MemberFacts(role: OrganisationRole(rawValue: try row.string("a")) ?? .member,
                                                   status: MembershipStatus(rawValue: try row.string("b")) ?? .pending)
            default:
                let link = IndexedLink(user: try row.int64("k1"), organisation: ScopedID(.organisation, environment: EnvironmentID(try row.int64("k2")), raw: try row.int64("k3")))
                delta.links[link] = true
            }
        }
        guard changes <= maximumDeltaChanges else { return .tooLarge }
        return .delta(delta)
    }

    /// Current revisions of the given environments (those that still exist).
    public func revisions(_ environments: [EnvironmentID]) throws -> [EnvironmentID: Int64] {
        var out: [EnvironmentID: Int64] = [:]
        for row in try query(
            "SELECT environment_id, revision FROM environments WHERE environment_id = ANY($1::bigint[])",
            [BigIntArray(environments.map(\.raw))]
        ).rows {
            out[EnvironmentID(try row.int64("environment_id"))] = try row.int64("revision")
        }
        return out
    }

    /// Deletes change-log rows older than `seconds`. Needs `becomeJanitor()`.
    public func pruneIndexChanges(olderThanSeconds seconds: Int64) throws -> Int {
        try query("DELETE FROM index_changes WHERE created_at < now() - make_interval(secs => $1)", [seconds]).affectedRows
    }

    private static func indexedUser(_ r: Row) throws -> IndexedUser {
        IndexedUser(
            id: try r.int64("user_id"),
            role: EnvironmentRole(rawValue: try r.string("role")) ?? .basic,
            status: UserStatus(rawValue: try r.string("status")) ?? .invited,
            email: try r.string("email"), name: try r.string("name")
        )
    }

    private static func indexedOrganisation(_ r: Row) throws -> IndexedOrganisation {
        IndexedOrganisation(
            id: try r.int64("organisation_id"), name: try r.string("name"), kvkNumber: r["kvk_number"], country: r["country"],
            status: OrganisationStatus(rawValue: try r.string("status")) ?? .inactive
        )
    }

    private static func indexedMembership(_ r: Row) throws -> IndexedMembership {
        IndexedMembership(
            organisation: try r.int64("organisation_id"),
            user: UserKey(environment: EnvironmentID(try r.int64("user_environment_id")), id: try r.int64("user_id")),
            facts: MemberFacts(
                role: OrganisationRole(rawValue: try r.string("role")) ?? .member,
                status: MembershipStatus(rawValue: try r.string("status")) ?? .pending
            )
        )
    }

    private static func indexedLink(_ r: Row) throws -> IndexedLink {
        IndexedLink(
            user: try r.int64("user_id"),
            organisation: ScopedID(.organisation, environment: EnvironmentID(try r.int64("organisation_environment_id")), raw: try r.int64("organisation_id"))
        )
    }
}
