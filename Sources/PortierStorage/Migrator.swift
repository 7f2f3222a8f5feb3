import Logging

/// Applies pending migrations, each once and in its own transaction.
///
/// Runs as the connecting (owner) role, not the application role. Concurrent
/// servers starting on one database serialise on an advisory lock.
public enum Migrator {
    /// An arbitrary constant naming Portier's migration lock.
    static let advisoryLockKey: Int64 = 0x506f_7274_6965_72

    /// Returns the versions applied by this call (empty when up to date).
    @discardableResult
    public static func migrate(conninfo: String, migrations: [Migration] = Migrations.all, logger: Logger) throws -> [Int] {
        let connection = try PostgresConnection(conninfo: conninfo)
        try connection.execute("SET client_min_messages = warning")
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        var applied: [Int] = []
        for migration in migrations.sorted(by: { $0.version < $1.version }) {
            try connection.execute("BEGIN")
            do {
                try connection.query("SELECT pg_advisory_xact_lock($1)", [advisoryLockKey])
                let done = try connection.query("SELECT 1 FROM schema_migrations WHERE version = $1", [migration.version])
                if done.rows.isEmpty {
                    try connection.execute(migration.sql)
                    try connection.query(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        [migration.version, migration.name]
                    )
                    applied.append(migration.version)
                    logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                }
                try connection.execute("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
        }
        return applied
    }

    /// The versions recorded as applied.
    public static func appliedVersions(conninfo: String) throws -> [Int] {
        let connection = try PostgresConnection(conninfo: conninfo)
        return try connection.query("SELECT version FROM schema_migrations ORDER BY version").rows.compactMap { $0[0].flatMap { Int($0) } }
    }
}
