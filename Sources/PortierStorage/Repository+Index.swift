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

    /// The rows that changed after `revision`, as they are now. Call inside `snapshot`.
    public func indexDelta(_ environment: EnvironmentID, after revision: Int64) throws -> DeltaOutcome {
        let e = environment.raw
        // The revision and what changed up to it in one round trip: a catch-up
        // follows every commit, so its round trips count.
        let rows = try query(
            """
            SELECT e.revision, c.entity, c.key1, c.key2, c.key3 FROM environments e
            LEFT JOIN LATERAL (
                SELECT DISTINCT entity, key1, key2, key3 FROM index_changes
                WHERE environment_id = e.environment_id AND revision > $2 AND revision <= e.revision LIMIT $3
            ) c ON true
            WHERE e.environment_id = $1
            """,
            [e, revision, Self.maximumDeltaChanges + 1]
        ).rows
        guard let first = rows.first else { return .gone }
        let now = try first.int64("revision")
        var delta = EnvironmentDelta(environment: environment, fromRevision: revision, revision: now)
        guard now > revision else { return .delta(delta) }
        let changes = rows.filter { $0["entity"] != nil }
        guard changes.count <= Self.maximumDeltaChanges else { return .tooLarge }
        var users: [Int64] = [], orgs: [Int64] = []
        var memberships: [EnvironmentDelta.MembershipKey] = [], links: [IndexedLink] = []
        for c in changes {
            let k1 = try c.int64("key1")
            switch try c.string("entity") {
            case "user": users.append(k1)
            case "organisation": orgs.append(k1)
            case "membership":
                memberships.append(.init(organisation: k1, user: UserKey(environment: EnvironmentID(try c.int64("key2")), id: try c.int64("key3"))))
            default:
                links.append(IndexedLink(user: k1, organisation: ScopedID(.organisation, environment: EnvironmentID(try c.int64("key2")), raw: try c.int64("key3"))))
            }
        }
        for id in users { delta.users[id] = .some(nil) }
        if !users.isEmpty {
            for u in try query(
                "SELECT user_id, role, status, email, name FROM users WHERE environment_id = $1 AND user_id = ANY($2::bigint[])",
                [e, BigIntArray(users)]
            ).rows.map(Self.indexedUser) { delta.users[u.id] = u }
        }
        for id in orgs { delta.organisations[id] = .some(nil) }
        if !orgs.isEmpty {
            for o in try query(
                "SELECT organisation_id, name, kvk_number, country, status FROM organisations WHERE environment_id = $1 AND organisation_id = ANY($2::bigint[])",
                [e, BigIntArray(orgs)]
            ).rows.map(Self.indexedOrganisation) { delta.organisations[o.id] = o }
        }
        for key in memberships { delta.memberships[key] = .some(nil) }
        if !memberships.isEmpty {
            for m in try query(
                """
                SELECT m.organisation_id, m.user_environment_id, m.user_id, m.role, m.status
                FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS k(organisation_id, user_environment_id, user_id)
                -- LATERAL: one primary-key probe per changed key, never a scan of a big environment.
                JOIN LATERAL (
                    SELECT * FROM memberships m
                    WHERE m.environment_id = $1 AND m.organisation_id = k.organisation_id
                      AND m.user_environment_id = k.user_environment_id AND m.user_id = k.user_id
                ) m ON true
                """,
                [e, BigIntArray(memberships.map(\.organisation)), BigIntArray(memberships.map(\.user.environment.raw)), BigIntArray(memberships.map(\.user.id))]
            ).rows.map(Self.indexedMembership) {
                delta.memberships[.init(organisation: m.organisation, user: m.user)] = m.facts
            }
        }
        for link in links { delta.links[link] = false }
        if !links.isEmpty {
            for l in try query(
                """
                SELECT l.user_id, l.organisation_environment_id, l.organisation_id FROM membership_links l
                JOIN unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS k(user_id, organisation_environment_id, organisation_id)
                  ON l.user_id = k.user_id AND l.organisation_environment_id = k.organisation_environment_id AND l.organisation_id = k.organisation_id
                WHERE l.environment_id = $1
                """,
                [e, BigIntArray(links.map(\.user)), BigIntArray(links.map(\.organisation.environment.raw)), BigIntArray(links.map(\.organisation.raw))]
            ).rows.map(Self.indexedLink) { delta.links[l] = true }
        }
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
