import PortierDomain

/// A database transaction in progress, handed to the body of `ConnectionPool.transaction`.
///
/// Every statement takes its values as parameters. The environments in scope are
/// set with `set_config(..., true)`, i.e. `SET LOCAL`: they end with the transaction.
public struct Transaction: @unchecked Sendable {
    public let connection: PostgresConnection

    /// Our own SQLSTATE-like marker for "the connection died before BEGIN ran".
    static let notStartedState = "P0NS0"

    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) throws -> QueryResult {
        try connection.query(sql, parameters)
    }

    /// Narrows or widens what row-level security lets this transaction see.
    public func setEnvironments(_ environments: [EnvironmentID]) throws {
        try query(
            "SELECT set_config('app.environments', $1, true)",
            [BigIntArray(environments.map(\.raw))]
        )
    }

    /// Switches to the mailer role for the rest of the transaction: it may read and
    /// acknowledge every environment's outbox, and touch nothing else.
    public func becomeMailer() throws {
        try connection.execute("SET LOCAL ROLE \(Schema.mailerRole)")
    }

    static func run<R>(on connection: PostgresConnection, environments: [EnvironmentID], _ body: (Transaction) throws -> R) throws -> R {
        do {
            try connection.execute("BEGIN")
        } catch let error as DatabaseError where error.kind == .connection {
            throw DatabaseError(kind: .connection, sqlState: notStartedState, message: error.message)
        }
        let tx = Transaction(connection: connection)
        do {
            if !environments.isEmpty { try tx.setEnvironments(environments) }
            let result = try body(tx)
            try connection.execute("COMMIT")
            return result
        } catch {
            if connection.isHealthy { try? connection.execute("ROLLBACK") }
            throw error
        }
    }
}
