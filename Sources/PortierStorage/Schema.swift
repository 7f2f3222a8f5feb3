/// Names fixed by the schema: database roles and the global tables.
public enum Schema {
    /// The role requests run as: owns nothing, not a superuser, so RLS applies.
    public static let applicationRole = "portier_app"
    /// The role the mailer's outbox operations switch to (`SET LOCAL ROLE`).
    public static let mailerRole = "portier_mailer"

    /// Prunes the index change log across environments (`SET LOCAL ROLE`).
    public static let janitorRole = "portier_janitor"
    /// Reads every environment's revision and permission events, for watches
    /// of every environment (`SET LOCAL ROLE`).
    public static let watcherRole = "portier_watcher"
    /// The NOTIFY channel carrying `env_<n>:<revision>` after each commit.
    public static let revisionChannel = "portier_revisions"

    /// Tables shared by all environments: small lookups with no tenant data beyond
    /// what routing needs. Everything else is a tenant table with `environment_id`
    /// first in its primary key and under row-level security.
    public static let globalTables: Set<String> = [
        "domain_claims", "email_directory", "unactivated_environments", "schema_migrations", "recipient_messages",
    ]

    /// Quotes an identifier for the few statements that cannot take parameters
    /// (`SET ROLE`). Names come from configuration, never from requests.
    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
