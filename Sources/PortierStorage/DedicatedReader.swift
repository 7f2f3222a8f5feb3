import NIOPosix
import Synchronization

/// One database connection outside the pool, on a thread of its own, for a
/// reader that must not wait behind requests for a pooled connection: the
/// watch feeder (R-WAT-1), whose reads under load otherwise queued behind
/// changes holding every pooled connection for hundreds of milliseconds.
/// Used by one task at a time; reconnects on the next read after a failure.
public final class DedicatedReader: Sendable {
    private let configuration: DatabaseConfiguration
    private let settings: String
    private let connection = Mutex<PostgresConnection?>(nil)
    private let thread: NIOThreadPool

    init(configuration: DatabaseConfiguration, settings: String) {
        self.configuration = configuration
        self.settings = settings
        thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
    }

    /// Runs `body` in a read-only REPEATABLE READ transaction on this connection.
    public func snapshot<R: Sendable>(_ body: @escaping @Sendable (Transaction) throws -> R) async throws -> R {
        let (configuration, settings) = (self.configuration, self.settings)
        return try await thread.runIfActive { [self] in
            let open = try connection.withLock { c -> PostgresConnection in
                if let c, c.isHealthy { return c }
                let fresh = try PostgresConnection(conninfo: configuration.conninfo)
                try fresh.execute("SET ROLE \(Schema.quoteIdentifier(configuration.applicationRole))")
                c = fresh
                return fresh
            }
            return try Transaction.run(
                on: open, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY" + settings, environments: [],
                state: TransactionState(readOnly: true), body)
        }
    }

    /// Closes the connection and stops the thread.
    public func shutdown() async {
        try? await thread.shutdownGracefully()
        connection.withLock { $0 = nil }
    }
}

extension ConnectionPool {
    /// A connection of its own with this pool's settings (see `DedicatedReader`).
    public func dedicatedReader() -> DedicatedReader {
        DedicatedReader(configuration: configuration, settings: transactionSettingsForReaders)
    }
}
