import PortierDomain
import PortierStorage

/// After a crash or an outage: is every mutation the server acknowledged in the
/// database? A reply's revision token env_E:R is committed when E's revision is
/// at least R (revisions advance by one per committed change, in the change's
/// transaction, together with its audit event and outbox messages); an
/// invitation must also have its user, its audit event and its activation message.
public struct AcknowledgedCheck {
    public struct Outcome: Sendable {
        public var mutations = 0
        public var committed = 0
        public var invitations = 0
        public var invitationsComplete = 0
        public var missing: [String] = []
        public var ok: Bool { missing.isEmpty }
    }

    public static func verify(_ entries: [AcknowledgedMutation], conninfo: String) throws -> Outcome {
        let connection = try PostgresConnection(conninfo: conninfo)
        var outcome = Outcome()
        var revisions: [Int64: Int64] = [:]
        for entry in entries {
            outcome.mutations += 1
            guard let token = RevisionToken(entry.revision) else {
                outcome.missing.append("\(entry.op): unreadable token \(entry.revision)")
                continue
            }
            let env = token.environment.raw
            if revisions[env] == nil {
                revisions[env] = try connection.query("SELECT revision FROM environments WHERE environment_id = $1", [env]).first.map { try $0.int64("revision") } ?? -1
            }
            if revisions[env]! >= token.revision {
                outcome.committed += 1
            } else {
                outcome.missing.append("\(entry.op) \(entry.revision): environment is at revision \(revisions[env]!)")
            }
            guard entry.op == "user.invite", let email = entry.email else { continue }
            outcome.invitations += 1
            let row = try connection.query(
                """
                SELECT (SELECT count(*) FROM users WHERE environment_id = $1 AND email_norm = lower($2)) AS users,
                       (SELECT count(*) FROM audit_events WHERE environment_id = $1 AND op = 'user.invite' AND details->>'email' = $2) AS events,
                       (SELECT count(*) FROM outbox WHERE environment_id = $1 AND kind = 'activation' AND recipient = $2) AS messages
                """,
                [env, email]
            ).first!
            if try row.int64("users") == 1, try row.int64("events") >= 1, try row.int64("messages") >= 1 {
                outcome.invitationsComplete += 1
            } else {
                outcome.missing.append("user.invite \(email): user \(row["users"] ?? "?"), audit events \(row["events"] ?? "?"), messages \(row["messages"] ?? "?")")
            }
        }
        return outcome
    }
}
