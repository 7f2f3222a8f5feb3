import PortierDomain

/// An organisation row.
public struct OrganisationRecord: Sendable, Equatable {
    public let environment: EnvironmentID
    public let id: Int64
    public let name: String
    public let kvkNumber: String?
    public let country: String?
    public let status: OrganisationStatus

    public var scopedID: ScopedID { ScopedID(.organisation, environment: environment, raw: id) }

    init(row: Row) throws {
        environment = EnvironmentID(try row.int64("environment_id"))
        id = try row.int64("organisation_id")
        name = try row.string("name")
        kvkNumber = row["kvk_number"]
        country = row["country"]
        status = OrganisationStatus(rawValue: try row.string("status")) ?? .inactive
    }
}

/// A membership row: the user may live in another (partner) environment.
public struct MembershipRecord: Sendable, Equatable {
    public let organisation: ScopedID
    public let user: ScopedID
    public let role: OrganisationRole
    public let status: MembershipStatus

    init(row: Row) throws {
        let env = EnvironmentID(try row.int64("environment_id"))
        organisation = ScopedID(.organisation, environment: env, raw: try row.int64("organisation_id"))
        user = ScopedID(.user, environment: EnvironmentID(try row.int64("user_environment_id")), raw: try row.int64("user_id"))
        role = OrganisationRole(rawValue: try row.string("role")) ?? .member
        status = MembershipStatus(rawValue: try row.string("status")) ?? .pending
    }
}

extension Transaction {
    // MARK: Organisations

    public func insertOrganisation(_ environment: EnvironmentID, name: String, kvkNumber: String?, country: String?) throws -> OrganisationRecord {
        try OrganisationRecord(row: try query(
            "INSERT INTO organisations (environment_id, name, kvk_number, country) VALUES ($1, $2, $3, $4) RETURNING *",
            [environment.raw, name, kvkNumber, country]
        ).first!)
    }

    public func organisation(_ id: ScopedID, lock: Bool = false) throws -> OrganisationRecord? {
        try query(
            // NO KEY UPDATE: an update never changes the key, so the foreign-key
            // checks of membership inserts (KEY SHARE) need not wait for it.
            "SELECT * FROM organisations WHERE environment_id = $1 AND organisation_id = $2" + (lock ? " FOR NO KEY UPDATE" : ""),
            [id.environment.raw, id.raw]
        ).first.map(OrganisationRecord.init(row:))
    }

    public func organisations(_ environment: EnvironmentID) throws -> [OrganisationRecord] {
        try query("SELECT * FROM organisations WHERE environment_id = $1 ORDER BY organisation_id", [environment.raw]).rows.map(OrganisationRecord.init(row:))
    }

    /// Organisations by (environment, id) pairs; every environment must be in scope.
    public func organisations(_ ids: [ScopedID]) throws -> [OrganisationRecord] {
        guard !ids.isEmpty else { return [] }
        return try query(
            """
            SELECT o.* FROM organisations o
            JOIN unnest($1::bigint[], $2::bigint[]) AS k(environment_id, organisation_id)
              ON o.environment_id = k.environment_id AND o.organisation_id = k.organisation_id
            ORDER BY o.environment_id, o.organisation_id
            """,
            [BigIntArray(ids.map(\.environment.raw)), BigIntArray(ids.map(\.raw))]
        ).rows.map(OrganisationRecord.init(row:))
    }

    public func updateOrganisation(_ id: ScopedID, name: String, kvkNumber: String?, country: String?, status: OrganisationStatus) throws -> OrganisationRecord {
        try OrganisationRecord(row: try query(
            """
            UPDATE organisations SET name = $3, kvk_number = $4, country = $5, status = $6
            WHERE environment_id = $1 AND organisation_id = $2 RETURNING *
            """,
            [id.environment.raw, id.raw, name, kvkNumber, country, status.rawValue]
        ).first!)
    }

    // MARK: Memberships

    public func membership(organisation: ScopedID, user: ScopedID, lock: Bool = false) throws -> MembershipRecord? {
        try query(
            """
            SELECT * FROM memberships
            WHERE environment_id = $1 AND organisation_id = $2 AND user_environment_id = $3 AND user_id = $4
            """ + (lock ? " FOR UPDATE" : ""),
            [organisation.environment.raw, organisation.raw, user.environment.raw, user.raw]
        ).first.map(MembershipRecord.init(row:))
    }

    /// Adds a membership; for a partner user also the mirror row in the user's environment.
    public func insertMembership(organisation: ScopedID, user: ScopedID, role: OrganisationRole, status: MembershipStatus) throws -> MembershipRecord {
        let row = try query(
            """
            INSERT INTO memberships (environment_id, organisation_id, user_environment_id, user_id, role, status)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING *
            """,
            [organisation.environment.raw, organisation.raw, user.environment.raw, user.raw, role.rawValue, status.rawValue]
        ).first!
        if user.environment != organisation.environment {
            try query(
                "INSERT INTO membership_links (environment_id, user_id, organisation_environment_id, organisation_id) VALUES ($1, $2, $3, $4)",
                [user.environment.raw, user.raw, organisation.environment.raw, organisation.raw]
            )
        }
        return try MembershipRecord(row: row)
    }

    public func updateMembership(organisation: ScopedID, user: ScopedID, role: OrganisationRole? = nil, status: MembershipStatus? = nil) throws -> MembershipRecord {
        try MembershipRecord(row: try query(
            """
            UPDATE memberships SET role = COALESCE($5, role), status = COALESCE($6, status)
            WHERE environment_id = $1 AND organisation_id = $2 AND user_environment_id = $3 AND user_id = $4 RETURNING *
            """,
            [organisation.environment.raw, organisation.raw, user.environment.raw, user.raw, role?.rawValue, status?.rawValue]
        ).first!)
    }

    /// Deletes a membership, its mirror, and cancels a pending request about it.
    public func deleteMembership(organisation: ScopedID, user: ScopedID) throws {
        try query(
            "DELETE FROM memberships WHERE environment_id = $1 AND organisation_id = $2 AND user_environment_id = $3 AND user_id = $4",
            [organisation.environment.raw, organisation.raw, user.environment.raw, user.raw]
        )
        try query(
            "DELETE FROM membership_links WHERE environment_id = $1 AND user_id = $2 AND organisation_environment_id = $3 AND organisation_id = $4",
            [user.environment.raw, user.raw, organisation.environment.raw, organisation.raw]
        )
        try query(
            """
            UPDATE inbox_requests SET status = 'cancelled', answered_at = now()
            WHERE environment_id = $1 AND addressee_user_id = $2 AND kind = 'membership'
              AND organisation_environment_id = $3 AND organisation_id = $4 AND status = 'pending'
            """,
            [user.environment.raw, user.raw, organisation.environment.raw, organisation.raw]
        )
    }

    /// The organisation's memberships ordered by user (environment, id); a page
    /// of them with `after` (a user) and `limit`.
    public func memberships(organisation: ScopedID, after: ScopedID? = nil, limit: Int? = nil) throws -> [MembershipRecord] {
        try query(
            """
            SELECT * FROM memberships WHERE environment_id = $1 AND organisation_id = $2
              AND (user_environment_id, user_id) > ($3, $4)
            ORDER BY user_environment_id, user_id LIMIT $5
            """,
            [organisation.environment.raw, organisation.raw, after?.environment.raw ?? -1, after?.raw ?? -1, limit]
        ).rows.map(MembershipRecord.init(row:))
    }

    /// Memberships of a user in its own environment's organisations.
    public func ownMemberships(user: ScopedID) throws -> [MembershipRecord] {
        try query(
            "SELECT * FROM memberships WHERE environment_id = $1 AND user_environment_id = $1 AND user_id = $2 ORDER BY organisation_id",
            [user.environment.raw, user.raw]
        ).rows.map(MembershipRecord.init(row:))
    }

    /// Organisations of partner environments the user belongs to (mirror rows).
    public func partnerOrganisationLinks(user: ScopedID) throws -> [ScopedID] {
        try query(
            "SELECT organisation_environment_id, organisation_id FROM membership_links WHERE environment_id = $1 AND user_id = $2 ORDER BY 1, 2",
            [user.environment.raw, user.raw]
        ).rows.map { ScopedID(.organisation, environment: EnvironmentID(try $0.int64("organisation_environment_id")), raw: try $0.int64("organisation_id")) }
    }

    /// Memberships of `user` in partner organisations, read where they live (those environments in scope).
    public func partnerMemberships(user: ScopedID, organisations: [ScopedID]) throws -> [MembershipRecord] {
        guard !organisations.isEmpty else { return [] }
        return try query(
            """
            SELECT m.* FROM memberships m
            JOIN unnest($1::bigint[], $2::bigint[]) AS k(environment_id, organisation_id)
              ON m.environment_id = k.environment_id AND m.organisation_id = k.organisation_id
            WHERE m.user_environment_id = $3 AND m.user_id = $4
            """,
            [BigIntArray(organisations.map(\.environment.raw)), BigIntArray(organisations.map(\.raw)), user.environment.raw, user.raw]
        ).rows.map(MembershipRecord.init(row:))
    }

    /// Users by (environment, id) pairs; every environment must be in scope.
    public func users(_ ids: [ScopedID]) throws -> [UserRecord] {
        guard !ids.isEmpty else { return [] }
        return try query(
            """
            SELECT u.* FROM users u
            JOIN unnest($1::bigint[], $2::bigint[]) AS k(environment_id, user_id)
              ON u.environment_id = k.environment_id AND u.user_id = k.user_id
            ORDER BY u.environment_id, u.user_id
            """,
            [BigIntArray(ids.map(\.environment.raw)), BigIntArray(ids.map(\.raw))]
        ).rows.map(UserRecord.init(row:))
    }

    /// Removes every membership that depended on the partnership between `a` and `b`
    /// (both in scope): users of one in organisations of the other. Returns them.
    public func deleteCrossMemberships(_ a: EnvironmentID, _ b: EnvironmentID) throws -> [MembershipRecord] {
        let removed = try query(
            """
            DELETE FROM memberships
            WHERE (environment_id = $1 AND user_environment_id = $2) OR (environment_id = $2 AND user_environment_id = $1)
            RETURNING *
            """,
            [a.raw, b.raw]
        ).rows.map(MembershipRecord.init(row:))
        try query(
            """
            DELETE FROM membership_links
            WHERE (environment_id = $1 AND organisation_environment_id = $2) OR (environment_id = $2 AND organisation_environment_id = $1)
            """,
            [a.raw, b.raw]
        )
        try query(
            """
            UPDATE inbox_requests SET status = 'cancelled', answered_at = now()
            WHERE kind = 'membership' AND status = 'pending'
              AND ((environment_id = $1 AND organisation_environment_id = $2) OR (environment_id = $2 AND organisation_environment_id = $1))
            """,
            [a.raw, b.raw]
        )
        return removed
    }
}
