import Synchronization

/// One database connection outside the pool, in a role of its own, for a
/// reader that must not wait behind requests for a pooled connection: the
/// watch feeder (R-WAT-1), whose reads under load otherwise queued behind
/// changes holding every pooled connection. Its reads are single statements
/// in autocommit (each one snapshot, one round trip), blocking the calling
/// thread: the feeder has a thread of its own. Used by one thread at a time;
/// reconnects on the next read after a failure.
public final class DedicatedReader: Sendable {
    private let configuration: DatabaseConfiguration
    private let role: String
    private let connection = Mutex<PostgresConnection?>(nil)

    init(configuration: DatabaseConfiguration, role: String) {
        self.configuration = configuration
        self.role = role
    }

    /// Runs `body`'s statements, each in autocommit, as the reader's role, on
    /// the calling thread. The body must only read (it is given a read-only
    /// `Transaction` handle without BEGIN).
    public func read<R>(_ body: (Transaction) throws -> R) throws -> R {
        let open = try connection.withLock { c -> PostgresConnection in
            if let c, c.isHealthy { return c }
            let fresh = try PostgresConnection(conninfo: configuration.conninfo)
            // Role and statement timeout for the session: the connection is this reader's alone.
            try fresh.execute("SET ROLE \(Schema.quoteIdentifier(role)); SET statement_timeout = \(DatabaseConfiguration.milliseconds(configuration.statementTimeout))")
            c = fresh
            return fresh
        }
        return try body(Transaction(connection: open, state: TransactionState(readOnly: true)))
    }

    /// Closes the connection.
    public func close() {
        connection.withLock { $0 = nil }
    }
}

extension ConnectionPool {
    /// A connection of its own, as `role` (see `DedicatedReader`).
    public func dedicatedReader(role: String) -> DedicatedReader {
        DedicatedReader(configuration: configuration, role: role)
    }
}
