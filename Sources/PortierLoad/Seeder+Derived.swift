import PortierStorage

/// The rows the operations write around the facts, derived in SQL from the
/// rows just copied (restricted to the seeded environment range).
extension SeedPart {
    var range: String { "BETWEEN \(plan.environments.first!.id.raw) AND \(plan.environments.last!.id.raw)" }

    func step(_ label: String, _ sql: String) throws {
        let count = try connection.query(sql).affectedRows
        progress("\(label): \(count)")
    }

    /// Each environment's creator (the administrator who signed up and made
    /// everything else), in a temporary table of this transaction.
    func creators() throws {
        let envs = plan.environments
        try connection.execute("CREATE TEMP TABLE seed_creators (environment_id bigint PRIMARY KEY, user_id bigint, email text) ON COMMIT DROP")
        try copy("seed_creators", "environment_id, user_id, email", items: envs.count) { i, r in
            let e = envs[i]
            r.field(e.id.raw); r.tab(); r.field(e.firstUser); r.tab(); r.field(e.email(ofUser: e.firstUser)); r.end()
        }
    }

    func deriveFromUsers() throws {
        try step("email directory", """
            INSERT INTO email_directory (email_norm, environment_id, user_id, is_primary)
            SELECT email_norm, environment_id, user_id, true FROM users WHERE environment_id \(range)
            """)
        // Activation tokens: used by those who activated, expired for the rest. No
        // clear token exists for them, so the stored "hash" is a unique placeholder.
        try step("activation tokens", """
            INSERT INTO tokens (environment_id, user_id, purpose, token_hash, created_at, expires_at, used_at)
            SELECT environment_id, user_id, 'activation', decode(lpad(to_hex(user_id), 64, '0'), 'hex'),
                   created_at, created_at + interval '7 days', activated_at
            FROM users WHERE environment_id \(range)
            """)
        // Activation messages, already sent (acknowledged: the clear token is gone).
        try step("outbox messages", """
            INSERT INTO outbox (environment_id, kind, recipient, payload, created_at, acked_at)
            SELECT environment_id, 'activation', email, jsonb_build_object('user', 'usr_' || environment_id || '_' || user_id), created_at, created_at
            FROM users WHERE environment_id \(range)
            """)
        try step("audit events (users)", """
            INSERT INTO audit_events (environment_id, at, actor_user_id, actor_label, op, target, details)
            SELECT u.environment_id, u.created_at, c.user_id, c.email,
                   CASE WHEN u.user_id = c.user_id THEN 'signup' ELSE 'user.invite' END,
                   'usr_' || u.environment_id || '_' || u.user_id,
                   CASE WHEN u.user_id = c.user_id THEN jsonb_build_object('joined', 'created', 'role', u.role, 'email', u.email)
                        ELSE jsonb_build_object('email', u.email, 'role', u.role) END
            FROM users u JOIN seed_creators c USING (environment_id) WHERE u.environment_id \(range)
            UNION ALL
            SELECT u.environment_id, u.activated_at, u.user_id, u.email, 'user.activate', 'usr_' || u.environment_id || '_' || u.user_id, '{}'
            FROM users u WHERE u.environment_id \(range) AND u.status <> 'invited'
            UNION ALL
            SELECT u.environment_id, u.activated_at, c.user_id, c.email, 'user.block', 'usr_' || u.environment_id || '_' || u.user_id,
                   jsonb_build_object('status', jsonb_build_object('from', 'active', 'to', 'blocked'))
            FROM users u JOIN seed_creators c USING (environment_id) WHERE u.environment_id \(range) AND u.status = 'blocked'
            """)
    }

    func deriveFromOrganisations() throws {
        try step("audit events (organisations)", """
            INSERT INTO audit_events (environment_id, at, actor_user_id, actor_label, op, target, details)
            SELECT o.environment_id, o.created_at, c.user_id, c.email, op, 'org_' || o.environment_id || '_' || o.organisation_id,
                   CASE op WHEN 'organisation.create' THEN jsonb_build_object('name', o.name, 'kvk_number', o.kvk_number, 'country', o.country)
                           ELSE jsonb_build_object('status', jsonb_build_object('from', 'inactive', 'to', 'active')) END
            FROM organisations o JOIN seed_creators c USING (environment_id)
            CROSS JOIN (VALUES ('organisation.create'), ('organisation.activate')) ops(op)
            WHERE o.environment_id \(range)
            """)
        // member.add for everyone but the creator (who became member by creating the organisation).
        try step("audit events (memberships)", """
            INSERT INTO audit_events (environment_id, at, actor_user_id, actor_label, op, target, details)
            SELECT m.environment_id, m.created_at, c.user_id, c.email, 'member.add', 'org_' || m.environment_id || '_' || m.organisation_id,
                   jsonb_build_object('user', 'usr_' || m.user_environment_id || '_' || m.user_id, 'role', m.role, 'status', 'active')
            FROM memberships m JOIN seed_creators c USING (environment_id)
            WHERE m.environment_id \(range) AND m.user_environment_id = m.environment_id AND m.user_id <> c.user_id
            """)
        try derivePartnerships()
    }

    /// After both sides: revisions (one per audited change) and the id sequences.
    func finish() throws {
        let envs = plan.environments
        let hi = envs.last!.id.raw
        try step("revisions", """
            UPDATE environments e SET revision = a.n
            FROM (SELECT environment_id, count(*) AS n FROM audit_events WHERE environment_id \(range) GROUP BY environment_id) a
            WHERE e.environment_id = a.environment_id
            """)
        try connection.execute("""
            SELECT setval('environment_ids', GREATEST(\(hi), (SELECT last_value FROM environment_ids)));
            SELECT setval('user_ids', GREATEST(\(envs.last!.firstUser + Int64(envs.last!.userCount) - 1), (SELECT last_value FROM user_ids)));
            SELECT setval('organisation_ids', GREATEST(\(envs.last!.firstOrganisation + Int64(envs.last!.organisationCount) - 1), (SELECT last_value FROM organisation_ids)));
            SELECT setval('partnership_ids', GREATEST(\(plan.manifest.base.partnership + Int64(plan.partnerships.count) + 1), (SELECT last_value FROM partnership_ids)));
            """)
    }

    /// Partnerships: proposal and acceptance (inbox request, message, audit on
    /// both sides), then the accountant's membership in a client organisation
    /// (request, message, member.add and member.accept on both sides).
    private func derivePartnerships() throws {
        let envs = plan.environments
        let requests = try copy("inbox_requests", "environment_id, kind, addressee_user_id, organisation_environment_id, organisation_id, partnership_id, status, created_at, answered_at, answered_by", items: plan.partnerships.count) { i, r in
            let p = plan.partnerships[i]
            let (accountant, client) = (envs[p.accountant], envs[p.client])
            r.field(client.id.raw); r.tab(); r.field("partnership"); r.tab(); r.null(); r.tab(); r.null(); r.tab(); r.null(); r.tab(); r.field(p.id); r.tab()
            r.field("accepted"); r.tab(); r.field(at); r.tab(); r.field(at); r.tab(); r.field(client.firstUser); r.end()
            for m in plan.partnerMembers[p.client] ?? [] where m.userEnvironment == p.accountant {
                r.field(accountant.id.raw); r.tab(); r.field("membership"); r.tab(); r.field(m.user); r.tab(); r.field(client.id.raw); r.tab(); r.field(m.organisation); r.tab(); r.null(); r.tab()
                r.field("accepted"); r.tab(); r.field(at); r.tab(); r.field(at); r.tab(); r.field(m.user); r.end()
            }
        }
        progress("inbox requests: \(requests)")
        let messages = try copy("outbox", "environment_id, kind, recipient, payload, created_at, acked_at", items: plan.partnerships.count) { i, r in
            let p = plan.partnerships[i]
            let (accountant, client) = (envs[p.accountant], envs[p.client])
            r.field(client.id.raw); r.tab(); r.field("partnership_request"); r.tab(); r.field(client.email(ofUser: client.firstUser)); r.tab()
            r.field("{\"partnership\": \"ptn_\(client.id.raw)_\(p.id)\"}"); r.tab(); r.field(at); r.tab(); r.field(at); r.end()
            for m in plan.partnerMembers[p.client] ?? [] where m.userEnvironment == p.accountant {
                r.field(accountant.id.raw); r.tab(); r.field("membership_request"); r.tab(); r.field(accountant.email(ofUser: m.user)); r.tab()
                r.field("{\"organisation\": \"org_\(client.id.raw)_\(m.organisation)\"}"); r.tab(); r.field(at); r.tab(); r.field(at); r.end()
            }
        }
        progress("outbox messages (partners): \(messages)")
        let events = try copy("audit_events", "environment_id, at, actor_user_id, actor_label, op, target, details", items: plan.partnerships.count) { i, r in
            let p = plan.partnerships[i]
            let (accountant, client) = (envs[p.accountant], envs[p.client])
            func event(_ env: EnvironmentPlan, actor: (EnvironmentPlan, Int64), _ op: String, _ target: String, _ details: String) {
                r.field(env.id.raw); r.tab(); r.field(at); r.tab(); r.field(actor.1); r.tab(); r.field(actor.0.email(ofUser: actor.1)); r.tab()
                r.field(op); r.tab(); r.field(target); r.tab(); r.field(details); r.end()
            }
            for env in [accountant, client] {
                event(env, actor: (accountant, accountant.firstUser), "partnership.propose", "ptn_\(env.id.raw)_\(p.id)", "{}")
                event(env, actor: (client, client.firstUser), "partnership.accept", "ptn_\(env.id.raw)_\(p.id)", "{}")
            }
            for m in plan.partnerMembers[p.client] ?? [] where m.userEnvironment == p.accountant {
                let user = "usr_\(accountant.id.raw)_\(m.user)", org = "org_\(client.id.raw)_\(m.organisation)"
                event(client, actor: (client, client.firstUser), "member.add", org, "{\"user\": \"\(user)\", \"role\": \"member\", \"status\": \"pending\"}")
                event(accountant, actor: (client, client.firstUser), "member.add", user, "{\"user\": \"\(user)\", \"role\": \"member\", \"status\": \"pending\"}")
                for env in [accountant, client] {
                    event(env, actor: (accountant, m.user), "member.accept", org, "{\"user\": \"\(user)\"}")
                }
            }
        }
        progress("audit events (partners): \(events)")
    }
}
