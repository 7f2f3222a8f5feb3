/// Cluster-level chores done as the owner role, outside any request.
public enum DatabaseAdmin {
    /// Creates database `name` unless it exists. `name` comes from configuration.
    public static func createDatabaseIfMissing(maintenanceConninfo: String, name: String) throws {
        let connection = try PostgresConnection(conninfo: maintenanceConninfo)
        let exists = try connection.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])
        if exists.rows.isEmpty {
            try connection.execute("CREATE DATABASE \(Schema.quoteIdentifier(name))")
        }
    }
}
