import PortierDomain

/// An extra email address of a user (R-USR-11).
public struct ExtraEmailRecord: Sendable, Equatable {
    public let email: String
    public let emailNorm: String
    public let verified: Bool

    public init(email: String, emailNorm: String, verified: Bool) {
        self.email = email
        self.emailNorm = emailNorm
        self.verified = verified
    }
}

/// An audit event as `audit.list` shows it.
public struct AuditEventRecord: Sendable {
    public let id: Int64
    public let at: String
    public let actorUserID: Int64?
    public let actorLabel: String
    public let op: String
    public let target: String?
    public let details: String
}

extension Transaction {
    // MARK: Users

    /// A page of users ordered by id, after `cursor`, optionally filtered.
    public func listUsers(_ environment: EnvironmentID, status: UserStatus?, role: EnvironmentRole?, after cursor: Int64, limit: Int) throws -> [UserRecord] {
        try query(
            """
            SELECT * FROM users
            WHERE environment_id = $1 AND user_id > $2
              AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR role = $4)
            ORDER BY user_id LIMIT $5
            """,
            [environment.raw, cursor, status?.rawValue, role?.rawValue, limit]
        ).rows.map(UserRecord.init(row:))
    }

    /// Sets role and/or status; returns the updated user.
    public func updateUser(_ environment: EnvironmentID, _ id: Int64, role: EnvironmentRole? = nil, status: UserStatus? = nil) throws -> UserRecord {
        let row = try query(
            """
            UPDATE users SET role = COALESCE($3, role), status = COALESCE($4, status)
            WHERE environment_id = $1 AND user_id = $2 RETURNING *
            """,
            [environment.raw, id, role?.rawValue, status?.rawValue]
        ).first
        guard let row else { throw DatabaseError(kind: .other, sqlState: nil, message: "user vanished") }
        return try UserRecord(row: row)
    }

    /// How many active administrators the environment has; call after `lockEnvironment`.
    public func activeAdministratorCount(_ environment: EnvironmentID) throws -> Int {
        Int(try query(
            "SELECT count(*) AS n FROM users WHERE environment_id = $1 AND role = 'administrator' AND status = 'active'",
            [environment.raw]
        ).first!.int64("n"))
    }

    /// Environments holding organisations the user is a (partner) member of, from the mirror rows.
    public func partnerMembershipEnvironments(_ environment: EnvironmentID, user: Int64) throws -> [EnvironmentID] {
        try query(
            "SELECT DISTINCT organisation_environment_id AS e FROM membership_links WHERE environment_id = $1 AND user_id = $2 ORDER BY 1",
            [environment.raw, user]
        ).rows.map { EnvironmentID(try $0.int64("e")) }
    }

    /// Removes every membership of the user, in its own environment and in partner
    /// environments (which must be in scope). Returns the organisations left, as
    /// (environment, organisation) pairs.
    public func removeAllMemberships(_ environment: EnvironmentID, user: Int64) throws -> [(EnvironmentID, Int64)] {
        let removed = try query(
            """
            DELETE FROM memberships WHERE user_environment_id = $1 AND user_id = $2
            RETURNING environment_id, organisation_id
            """,
            [environment.raw, user]
        ).rows.map { (EnvironmentID(try $0.int64("environment_id")), try $0.int64("organisation_id")) }
        try query("DELETE FROM membership_links WHERE environment_id = $1 AND user_id = $2", [environment.raw, user])
        return removed
    }

    /// Deletes the user and their global rows; pending requests addressed to them are cancelled.
    public func deleteUser(_ environment: EnvironmentID, _ id: Int64) throws {
        try query(
            "UPDATE inbox_requests SET status = 'cancelled', answered_at = now() WHERE environment_id = $1 AND addressee_user_id = $2 AND status = 'pending'",
            [environment.raw, id]
        )
        try query("DELETE FROM email_directory WHERE environment_id = $1 AND user_id = $2", [environment.raw, id])
        try query("DELETE FROM users WHERE environment_id = $1 AND user_id = $2", [environment.raw, id])
    }

    /// User changes in the last hour of this kind, for rate limits (R-USR-13).
    public func recentEvents(_ environment: EnvironmentID, op: String, withinSeconds seconds: Int64) throws -> Int {
        Int(try query(
            "SELECT count(*) AS n FROM audit_events WHERE environment_id = $1 AND op = $2 AND at > now() - make_interval(secs => $3)",
            [environment.raw, op, seconds]
        ).first!.int64("n"))
    }

    // MARK: Extra emails (R-USR-11)

    public func extraEmails(_ environment: EnvironmentID, user: Int64) throws -> [ExtraEmailRecord] {
        try query(
            "SELECT email, email_norm, verified_at IS NOT NULL AS verified FROM user_emails WHERE environment_id = $1 AND user_id = $2 ORDER BY created_at, email_norm",
            [environment.raw, user]
        ).rows.map { ExtraEmailRecord(email: try $0.string("email"), emailNorm: try $0.string("email_norm"), verified: try $0.bool("verified")) }
    }

    public func extraEmail(_ environment: EnvironmentID, user: Int64, emailNorm: String) throws -> ExtraEmailRecord? {
        try extraEmails(environment, user: user).first { $0.emailNorm == emailNorm }
    }

    public func insertExtraEmail(_ environment: EnvironmentID, user: Int64, email: EmailAddress) throws {
        try query(
            "INSERT INTO user_emails (environment_id, user_id, email_norm, email) VALUES ($1, $2, $3, $4)",
            [environment.raw, user, email.normalized, email.display]
        )
    }

    public func markExtraEmailVerified(_ environment: EnvironmentID, user: Int64, emailNorm: String) throws {
        try query(
            "UPDATE user_emails SET verified_at = now() WHERE environment_id = $1 AND user_id = $2 AND email_norm = $3",
            [environment.raw, user, emailNorm]
        )
    }

    public func deleteExtraEmail(_ environment: EnvironmentID, user: Int64, emailNorm: String) throws {
        try query("DELETE FROM user_emails WHERE environment_id = $1 AND user_id = $2 AND email_norm = $3", [environment.raw, user, emailNorm])
        try query(
            "DELETE FROM email_directory WHERE email_norm = $1 AND environment_id = $2 AND user_id = $3 AND NOT is_primary",
            [emailNorm, environment.raw, user]
        )
        try query(
            "UPDATE tokens SET revoked_at = now() WHERE environment_id = $1 AND user_id = $2 AND email_norm = $3 AND used_at IS NULL AND revoked_at IS NULL",
            [environment.raw, user, emailNorm]
        )
    }

    // MARK: Audit

    /// A page of the environment's audit log, newest first, before `cursor`.
    public func auditEvents(_ environment: EnvironmentID, before cursor: Int64, limit: Int) throws -> [AuditEventRecord] {
        try query(
            """
            SELECT event_id, \(SQLTime.rfc3339("at")) AS at,
                   actor_user_id, actor_label, op, target, details::text AS details
            FROM audit_events WHERE environment_id = $1 AND event_id < $2
            ORDER BY event_id DESC LIMIT $3
            """,
            [environment.raw, cursor, limit]
        ).rows.map { r in
            AuditEventRecord(
                id: try r.int64("event_id"), at: try r.string("at"), actorUserID: r.optionalInt64("actor_user_id"),
                actorLabel: try r.string("actor_label"), op: try r.string("op"), target: r["target"], details: try r.string("details")
            )
        }
    }
}
