import PortierDomain
import PortierStorage

/// The service's one way into PostgreSQL: every operation's transaction goes
/// through here, never to the pool directly.
extension PortierService {
    /// Runs `body` in one transaction (see `ConnectionPool.transaction`). A
    /// change's commit report comes back with its result: the deltas it read
    /// before COMMIT are applied to this instance's indexes (or a catch-up runs)
    /// before this returns, so the reply is never sent before this instance's
    /// checks can see the change (R-PRM-5). No second transaction in the usual case.
    func transaction<R: Sendable>(
        environments: [EnvironmentID] = [], locking: EnvironmentID? = nil, priority: Bool = false,
        _ body: @escaping @Sendable (Transaction) throws -> R
    ) async throws -> R {
        let indexes = self.indexes
        let (value, report) = try await pool.change(
            environments: environments, locking: locking, priority: priority,
            deltasAfter: { indexes.revision(of: $0) }, body)
        if !report.revisions.isEmpty {
            await indexes.committed(report)
            watchHub.heard(report.revisions)
        }
        return value
    }

    /// Runs `body` in a read-only snapshot (see `ConnectionPool.snapshot`); it changes nothing.
    func snapshot<R: Sendable>(environments: [EnvironmentID], priority: Bool = false, _ body: @escaping @Sendable (Transaction) throws -> R) async throws -> R {
        try await pool.snapshot(environments: environments, priority: priority, body)
    }
}
