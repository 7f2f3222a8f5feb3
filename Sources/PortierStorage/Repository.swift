import PortierDomain

// The statements the operations are made of. Each takes the environment it acts
// on explicitly (row-level security is the safety net, and Citus routes on it).

extension Transaction {
    // MARK: Global lookups

    /// The environment claiming `domain`, locked against a concurrent claim.
    public func domainClaim(_ domain: String) throws -> (environment: EnvironmentID, status: DomainClaimStatus)? {
        guard let row = try query("SELECT environment_id, status FROM domain_claims WHERE domain = $1 FOR UPDATE", [domain]).first
        else { return nil }
        return (EnvironmentID(try row.int64("environment_id")), DomainClaimStatus(rawValue: try row.string("status")) ?? .pending)
    }

    /// The claim that covers `domain` (R-ENV-10): its own, or the nearest
    /// parent's (`ClaimedDomains.candidates`), locked like `domainClaim`.
    public func coveringClaim(_ domain: String) throws -> (domain: String, environment: EnvironmentID, status: DomainClaimStatus)? {
        for candidate in ClaimedDomains.candidates(for: domain) {
            if let claim = try domainClaim(candidate) { return (candidate, claim.environment, claim.status) }
        }
        return nil
    }

    /// Every claimed domain with its environment (the start-up report of R-ENV-4).
    public func allDomainClaims() throws -> [(domain: String, environment: EnvironmentID)] {
        try query("SELECT domain, environment_id FROM domain_claims ORDER BY domain").rows
            .map { (try $0.string("domain"), EnvironmentID(try $0.int64("environment_id"))) }
    }

    /// Whether the user has an activation token that can still be used.
    public func hasLiveActivationToken(_ environment: EnvironmentID, user: Int64) throws -> Bool {
        try !query(
            """
            SELECT 1 FROM tokens WHERE environment_id = $1 AND user_id = $2 AND purpose = 'activation'
              AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now() LIMIT 1
            """,
            [environment.raw, user]
        ).rows.isEmpty
    }

    /// The environment whose claim on `domain` is confirmed, if any (R-ENV-10).
    public func confirmedClaimant(_ domain: String) throws -> EnvironmentID? {
        // The domain's own claim or a parent's (R-ENV-10): the owner of acme.test controls sales.acme.test.
        for candidate in ClaimedDomains.candidates(for: domain) {
            if let owner = try query("SELECT environment_id FROM domain_claims WHERE domain = $1 AND status = 'confirmed'", [candidate]).first {
                return EnvironmentID(try owner.int64("environment_id"))
            }
        }
        return nil
    }

    /// Who owns an address, primary or extra (R-ENV-6).
    public func emailOwner(_ emailNorm: String) throws -> (environment: EnvironmentID, user: Int64, isPrimary: Bool)? {
        guard let row = try query("SELECT environment_id, user_id, is_primary FROM email_directory WHERE email_norm = $1", [emailNorm]).first
        else { return nil }
        return (EnvironmentID(try row.int64("environment_id")), try row.int64("user_id"), try row.bool("is_primary"))
    }

    public func registerEmail(_ emailNorm: String, environment: EnvironmentID, user: Int64, isPrimary: Bool) throws {
        try query(
            "INSERT INTO email_directory (email_norm, environment_id, user_id, is_primary) VALUES ($1, $2, $3, $4)",
            [emailNorm, environment.raw, user, isPrimary]
        )
    }

    // MARK: Environments

    /// Allocates an environment id and widens the scope to it, then creates the row.
    public func createEnvironment(name: String, claim: String?, activationDeadlineSeconds: Int64) throws -> EnvironmentID {
        let id = EnvironmentID(try query("SELECT nextval('environment_ids') AS id").first!.int64("id"))
        try setEnvironments([id])
        try query("INSERT INTO environments (environment_id, name) VALUES ($1, $2)", [id.raw, name])
        if let claim {
            try query("INSERT INTO domain_claims (domain, environment_id, status) VALUES ($1, $2, 'pending')", [claim, id.raw])
        }
        try query(
            "INSERT INTO unactivated_environments (environment_id, deadline) VALUES ($1, now() + make_interval(secs => $2))",
            [id.raw, activationDeadlineSeconds]
        )
        return id
    }

    public func environment(_ id: EnvironmentID) throws -> EnvironmentRecord? {
        guard let row = try query("SELECT name, revision FROM environments WHERE environment_id = $1", [id.raw]).first
        else { return nil }
        let domains = try query(
            "SELECT domain, status FROM domain_claims WHERE environment_id = $1 ORDER BY domain", [id.raw]
        ).rows.map { r in (try r.string("domain"), DomainClaimStatus(rawValue: try r.string("status")) ?? .pending) }
        return EnvironmentRecord(
            id: id, name: try row.string("name"), revision: try row.int64("revision"),
            domains: domains, activeAdministrators: try activeAdministrators(id)
        )
    }

    /// Ids of the environment's active administrators, oldest first.
    public func activeAdministrators(_ environment: EnvironmentID) throws -> [Int64] {
        try query(
            "SELECT user_id FROM users WHERE environment_id = $1 AND role = 'administrator' AND status = 'active' ORDER BY user_id",
            [environment.raw]
        ).rows.map { try $0.int64("user_id") }
    }

    /// Advances the environment's revision; call last in the transaction so the
    /// row lock is held briefly. Stamps the change-log and permission-event rows
    /// this transaction wrote with the new revision, and notifies other instances on commit. Returns the
    /// new revision (R-PRM-5).
    public func bumpRevision(_ environment: EnvironmentID) throws -> RevisionToken {
        // One round trip: bump, stamp this transaction's change-log rows, notify,
        // and tell whether other environments' rows are still unstamped (the
        // safety net before COMMIT then has nothing to look for).
        // A deferred audit event (see `audit`) rides along.
        let audit = state.pendingAudit.withLock { p -> [(any PostgresBindable)?]? in defer { p = nil }; return p }
        // Bumped before in this transaction: its events move to the new revision
        // too, so the transaction is one frame of the change feed (R-WAT-1). No
        // other transaction can hold that revision (it was taken under the row
        // lock this one still holds). An integer of our own: safe to write inline.
        let earlier = state.bumped.withLock { $0.last { $0.environment == environment }?.revision } ?? -1
        let audited = audit == nil ? "" : """
            , audited AS (
                INSERT INTO audit_events (environment_id, actor_user_id, actor_label, op, target, details)
                VALUES ($2, $3, $4, $5, $6, $7::jsonb)
            )
            """
        let row = try query(
            """
            WITH bumped AS (
                UPDATE environments SET revision = revision + 1 WHERE environment_id = $1 RETURNING revision
            ), stamped AS (
                UPDATE index_changes SET revision = (SELECT revision FROM bumped) WHERE environment_id = $1 AND revision IS NULL
            ), events AS (
                UPDATE permission_events SET revision = (SELECT revision FROM bumped)
                WHERE environment_id = $1 AND (revision IS NULL OR revision = \(earlier))
            )\(audited)
            SELECT revision, pg_notify('\(Schema.revisionChannel)', 'env_' || $1::text || ':' || revision::text
                                || ' ' || coalesce(current_setting('portier.instance', true), '')),
                   EXISTS (SELECT 1 FROM index_changes WHERE revision IS NULL AND environment_id <> $1)
                   OR EXISTS (SELECT 1 FROM permission_events WHERE revision IS NULL AND environment_id <> $1) AS unstamped
            FROM bumped
            """,
            [environment.raw] + (audit ?? []),
            carryingAudit: true
        ).first
        guard let row else { throw DatabaseError(kind: .other, sqlState: nil, message: "environment vanished") }
        let unstamped = (try? row.bool("unstamped")) ?? true
        state.unstampedChanges.withLock { $0 = unstamped }
        let token = RevisionToken(environment: environment, revision: try row.int64("revision"))
        state.bumped.withLock { $0.append(token) }
        return token
    }

    /// Locks the environment row: serialises changes that must see a stable set of
    /// administrators (R-USR-8).
    public func lockEnvironment(_ environment: EnvironmentID) throws {
        try query("SELECT 1 FROM environments WHERE environment_id = $1 FOR UPDATE", [environment.raw])
    }

    /// Holds the environment row against the changes that lock it exclusively
    /// (`lockEnvironment`: removals, role and status changes, the cleanup),
    /// without blocking anything else: `FOR KEY SHARE` conflicts only with
    /// `FOR UPDATE`, not with the audit inserts and revision bumps of other
    /// changes in the environment.
    public func holdEnvironment(_ environment: EnvironmentID) throws {
        try query("SELECT 1 FROM environments WHERE environment_id = $1 FOR KEY SHARE", [environment.raw])
    }

    /// Environments whose activation window has passed.
    public func expiredUnactivatedEnvironments(limit: Int) throws -> [EnvironmentID] {
        try query(
            "SELECT environment_id FROM unactivated_environments WHERE deadline < now() ORDER BY deadline LIMIT $1", [limit]
        ).rows.map { EnvironmentID(try $0.int64("environment_id")) }
    }

    /// Deletes an environment with everything in it and its global rows.
    public func deleteEnvironment(_ environment: EnvironmentID) throws {
        try query("DELETE FROM email_directory WHERE environment_id = $1", [environment.raw])
        try query("DELETE FROM domain_claims WHERE environment_id = $1", [environment.raw])
        try query("DELETE FROM unactivated_environments WHERE environment_id = $1", [environment.raw])
        try query("DELETE FROM environments WHERE environment_id = $1", [environment.raw])
        // After the row: the cascade's triggers wrote the removals as events.
        try query("DELETE FROM permission_events WHERE environment_id = $1", [environment.raw])
    }

    // MARK: Users

    public func insertUser(environment: EnvironmentID, email: EmailAddress, name: String, role: EnvironmentRole) throws -> UserRecord {
        let row = try query(
            """
            INSERT INTO users (environment_id, email, email_norm, name, role, status)
            VALUES ($1, $2, $3, $4, $5, 'invited') RETURNING *
            """,
            [environment.raw, email.display, email.normalized, name, role.rawValue]
        ).first!
        let user = try UserRecord(row: row)
        try registerEmail(email.normalized, environment: environment, user: user.id, isPrimary: true)
        return user
    }

    /// The user, optionally locked for update.
    public func user(_ environment: EnvironmentID, _ id: Int64, lock: Bool = false) throws -> UserRecord? {
        try user(environment, id, rowLock: lock ? .update : nil)
    }

    /// The user, read under `rowLock`: `.keyShare` keeps the row from being
    /// deleted (every deleter locks it `FOR UPDATE` first) without blocking changes.
    public func user(_ environment: EnvironmentID, _ id: Int64, rowLock: RowLock?) throws -> UserRecord? {
        let sql = "SELECT * FROM users WHERE environment_id = $1 AND user_id = $2" + (rowLock?.rawValue ?? "")
        return try query(sql, [environment.raw, id]).first.map(UserRecord.init(row:))
    }

    public func users(_ environment: EnvironmentID, role: EnvironmentRole, excludingStatus: UserStatus) throws -> [UserRecord] {
        try query(
            "SELECT * FROM users WHERE environment_id = $1 AND role = $2 AND status <> $3 ORDER BY user_id",
            [environment.raw, role.rawValue, excludingStatus.rawValue]
        ).rows.map(UserRecord.init(row:))
    }

    public func activateUser(_ environment: EnvironmentID, _ id: Int64, passwordHash: String, promote: Bool) throws -> UserRecord {
        let row = try query(
            """
            UPDATE users SET status = 'active', password_hash = $3, activated_at = now(),
                role = CASE WHEN $4 THEN 'administrator' ELSE role END
            WHERE environment_id = $1 AND user_id = $2 RETURNING *
            """,
            [environment.raw, id, passwordHash, promote]
        ).first!
        return try UserRecord(row: row)
    }

    /// Replaces a password hash (a rehash at login, a change by the user).
    /// Leaves the row alone, and answers false, if the hash changed meanwhile.
    @discardableResult
    public func replacePasswordHash(_ environment: EnvironmentID, _ id: Int64, from old: String, to new: String) throws -> Bool {
        try query(
            "UPDATE users SET password_hash = $4 WHERE environment_id = $1 AND user_id = $2 AND password_hash = $3",
            [environment.raw, id, old, new]
        ).affectedRows == 1
    }

    /// Sets a password hash whatever it was (a completed reset, R-USR-14).
    public func setPasswordHash(_ environment: EnvironmentID, _ id: Int64, to new: String) throws {
        try query("UPDATE users SET password_hash = $3 WHERE environment_id = $1 AND user_id = $2", [environment.raw, id, new])
    }

    // MARK: Tokens

    /// Stores a token's hash; earlier live tokens of the same purpose for the user
    /// (and address) stop working (R-USR-3), except password resets, of which
    /// several may be outstanding (R-USR-14: asking again cannot kill a link).
    public func issueToken(environment: EnvironmentID, user: Int64, purpose: TokenPurpose, hash: [UInt8], emailNorm: String?, lifetimeSeconds: Int64) throws {
        if purpose != .passwordReset { try query(
            """
            UPDATE tokens SET revoked_at = now()
            WHERE environment_id = $1 AND user_id = $2 AND purpose = $3 AND used_at IS NULL AND revoked_at IS NULL
              AND email_norm IS NOT DISTINCT FROM $4
            """,
            [environment.raw, user, purpose.rawValue, emailNorm]
        ) }
        try query(
            """
            INSERT INTO tokens (environment_id, user_id, purpose, token_hash, email_norm, expires_at)
            VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
            """,
            [environment.raw, user, purpose.rawValue, ByteaValue(hash), emailNorm, lifetimeSeconds]
        )
    }

    /// The token with this hash, locked so that two concurrent uses cannot both win.
    public func token(environment: EnvironmentID, hash: [UInt8]) throws -> TokenRecord? {
        guard let row = try query(
            """
            SELECT token_id, user_id, purpose, email_norm, expires_at < now() AS expired,
                   used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked
            FROM tokens WHERE environment_id = $1 AND token_hash = $2 FOR UPDATE
            """,
            [environment.raw, ByteaValue(hash)]
        ).first else { return nil }
        return TokenRecord(
            id: try row.int64("token_id"), userID: try row.int64("user_id"),
            purpose: TokenPurpose(rawValue: try row.string("purpose")) ?? .activation,
            emailNorm: row["email_norm"], isExpired: try row.bool("expired"),
            isUsed: try row.bool("used"), isRevoked: try row.bool("revoked")
        )
    }

    /// Kills every live token of `purpose` of the user (R-USR-14: a reset or a
    /// change kills every outstanding reset link).
    public func revokeTokens(environment: EnvironmentID, user: Int64, purpose: TokenPurpose) throws {
        try query(
            "UPDATE tokens SET revoked_at = now() WHERE environment_id = $1 AND user_id = $2 AND purpose = $3 AND used_at IS NULL AND revoked_at IS NULL",
            [environment.raw, user, purpose.rawValue]
        )
    }

    public func markTokenUsed(environment: EnvironmentID, id: Int64) throws {
        try query("UPDATE tokens SET used_at = now() WHERE environment_id = $1 AND token_id = $2", [environment.raw, id])
    }

    // MARK: Outbox and audit

    /// Queues a message to a person (R-OUT-1); `payload` is a JSON object text.
    @discardableResult
    public func enqueueMessage(environment: EnvironmentID, kind: OutboxKind, to recipient: String, token: String? = nil, payload: String = "{}") throws -> Int64 {
        try query(
            """
            INSERT INTO outbox (environment_id, kind, recipient, token, payload)
            VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING message_id
            """,
            [environment.raw, kind.rawValue, recipient, token, payload]
        ).first!.int64("message_id")
    }

    /// R-USR-16: whether one more message from `sender` to `recipient`
    /// (normalised) fits the last hour's caps: at most `perSender` from this
    /// sender and, when `total` is given, at most `total` from all senders but
    /// the person's own requests (senders `own:…`);
    /// records it when it fits. Serialised per recipient (an advisory lock until
    /// commit), so two requests cannot both take the last one.
    public func takeRecipientMessage(_ recipient: String, sender: String, perSender: Int, total: Int?) throws -> Bool {
        try query("SELECT pg_advisory_xact_lock(hashtext('portier.recipient'), hashtext($1))", [recipient])
        let row = try query(
            """
            SELECT count(*) FILTER (WHERE sender = $2) AS mine, count(*) FILTER (WHERE sender NOT LIKE 'own:%') AS everyone
            FROM recipient_messages WHERE recipient = $1 AND sent_at > now() - interval '1 hour'
            """, [recipient, sender]
        ).first!
        guard try row.int64("mine") < perSender else { return false }
        if let total, try row.int64("everyone") >= total { return false }
        try query("INSERT INTO recipient_messages (recipient, sender) VALUES ($1, $2)", [recipient, sender])
        return true
    }

    /// Deletes recipient counts older than a day (janitor role).
    public func pruneRecipientMessages() throws -> Int {
        try query("DELETE FROM recipient_messages WHERE sent_at < now() - interval '1 day'").affectedRows
    }

    /// `domain_join` notices of an environment in the last hour, and whether one of them was a summary.
    public func recentDomainJoinNotices(_ environment: EnvironmentID) throws -> (count: Int, summarised: Bool) {
        let row = try query(
            """
            SELECT count(*) AS n, bool_or(payload ? 'coalesced') AS summarised FROM outbox
            WHERE environment_id = $1 AND kind = 'domain_join' AND created_at > now() - interval '1 hour'
            """,
            [environment.raw]
        ).first!
        return (Int(try row.int64("n")), row["summarised"] == "t")
    }

    /// Unacknowledged messages of every environment, oldest first. Needs `becomeMailer()`.
    public func pendingMessages(after cursor: Int64, limit: Int) throws -> [OutboxRecord] {
        try query(
            """
            SELECT environment_id, message_id, kind, recipient, token, payload::text AS payload, \(SQLTime.rfc3339("created_at")) AS created_at
            FROM outbox WHERE acked_at IS NULL AND message_id > $1 ORDER BY message_id LIMIT $2
            """,
            [cursor, limit]
        ).rows.map { r in
            OutboxRecord(
                environment: EnvironmentID(try r.int64("environment_id")), id: try r.int64("message_id"),
                kind: try r.string("kind"), recipient: try r.string("recipient"), token: r["token"],
                payload: try r.string("payload"), createdAt: try r.string("created_at")
            )
        }
    }

    /// Withdraws the messages of `kind` to `recipient` in the environment that the
    /// mailer has not taken yet (an invitation revoked or replaced): they leave
    /// `outbox.list` with their tokens erased (§11). Returns how many.
    @discardableResult
    public func withdrawMessages(environment: EnvironmentID, kind: OutboxKind, to recipient: String) throws -> Int {
        try query(
            """
            UPDATE outbox SET acked_at = now(), withdrawn_at = now(), token = NULL
            WHERE environment_id = $1 AND kind = $2 AND lower(recipient) = lower($3) AND acked_at IS NULL
            """,
            [environment.raw, kind.rawValue, recipient]
        ).affectedRows
    }

    /// Marks messages delivered and erases their clear tokens. Returns the ids that
    /// exist (acknowledged now or before). Needs `becomeMailer()`.
    public func acknowledgeMessages(_ ids: [(environment: EnvironmentID, id: Int64)]) throws -> Set<Int64> {
        let envs = BigIntArray(ids.map(\.environment.raw))
        let msgs = BigIntArray(ids.map(\.id))
        try query(
            """
            UPDATE outbox SET acked_at = now(), token = NULL
            FROM unnest($1::bigint[], $2::bigint[]) AS a(environment_id, message_id)
            WHERE outbox.environment_id = a.environment_id AND outbox.message_id = a.message_id AND outbox.acked_at IS NULL
            """,
            [envs, msgs]
        )
        return Set(try query(
            """
            SELECT o.message_id FROM outbox o
            JOIN unnest($1::bigint[], $2::bigint[]) AS a(environment_id, message_id)
              ON o.environment_id = a.environment_id AND o.message_id = a.message_id
            """,
            [envs, msgs]
        ).rows.map { try $0.int64("message_id") })
    }

    /// Records who did what to whom (R-AUD-1); `details` is a JSON object text.
    ///
    /// Written with the transaction's next statement: a revision bump right
    /// after (the usual shape of a change) carries it in its own round trip;
    /// any other statement, or COMMIT, writes it first. Either way before
    /// anything else runs, so the transaction sees its own events in order.
    public func audit(environment: EnvironmentID, actor: AuditActor, op: String, target: String?, details: String = "{}") throws {
        try flushAudit()
        state.pendingAudit.withLock { $0 = [environment.raw, actor.userID, actor.label, op, target, details] }
    }

    /// Writes a deferred audit event now.
    func flushAudit() throws {
        guard let pending = state.pendingAudit.withLock({ p -> [(any PostgresBindable)?]? in defer { p = nil }; return p }) else { return }
        try query(
            """
            INSERT INTO audit_events (environment_id, actor_user_id, actor_label, op, target, details)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            """,
            pending
        )
    }
}

extension Transaction {
    /// Whether the environment never had an activation and its window has passed.
    public func isExpiredUnactivated(_ environment: EnvironmentID) throws -> Bool {
        try !query(
            "SELECT 1 FROM unactivated_environments WHERE environment_id = $1 AND deadline < now()", [environment.raw]
        ).rows.isEmpty
    }

    /// Confirms the claim covering `domain` (its own or a parent's, R-ENV-10)
    /// if this environment holds it pending (R-ENV-7); returns the confirmed domain.
    public func confirmClaim(_ domain: String, environment: EnvironmentID) throws -> String? {
        for candidate in ClaimedDomains.candidates(for: domain) {
            let updated = try query(
                "UPDATE domain_claims SET status = 'confirmed', confirmed_at = now() WHERE domain = $1 AND environment_id = $2 AND status = 'pending'",
                [candidate, environment.raw]
            ).affectedRows
            if updated == 1 { return candidate }
        }
        return nil
    }

    /// The active user who activated first, if any (R-ENV-7: the one promoted
    /// when the creator's window passes without the creator).
    public func earliestActiveUser(_ environment: EnvironmentID) throws -> UserRecord? {
        try query(
            """
            SELECT * FROM users WHERE environment_id = $1 AND status = 'active'
            ORDER BY activated_at, user_id LIMIT 1 FOR UPDATE
            """,
            [environment.raw]
        ).first.map(UserRecord.init(row:))
    }

    /// Ends the environment's activation window: it has an active administrator now.
    public func markEnvironmentActivated(_ environment: EnvironmentID) throws {
        try query("DELETE FROM unactivated_environments WHERE environment_id = $1", [environment.raw])
    }
}
