import Logging
import PortierDomain
import PortierIndex
import PortierStorage
import Synchronization

/// Keeps this instance's permission indexes loaded and current.
///
/// All loads and catch-ups of one environment run one after another (a chain of
/// tasks per environment), so concurrent misses load it once (single flight) and
/// a delta is always applied to the revision it was read after.
final class IndexStore: Sendable {
    let index: PermissionIndex
    private let pool: ConnectionPool
    private let logger: Logger
    private let chains = Mutex<[EnvironmentID: Task<EnvironmentIndex?, any Error>]>([:])
    /// Environments loading in the background (see `loadedOrWarming`).
    private let warming = Mutex<Set<EnvironmentID>>([])

    /// An index that has not synchronised for this long reloads in full: the
    /// change log it would catch up from is pruned after twice this.
    static let maximumSyncAge: Duration = .seconds(1800)
    /// How long the change log is kept.
    static let changeLogRetentionSeconds: Int64 = 3600

    init(index: PermissionIndex, pool: ConnectionPool, logger: Logger) {
        self.index = index
        self.pool = pool
        self.logger = logger
    }

    /// The environment's index, loading it on first use. Nil if the environment does not exist.
    func environment(_ environment: EnvironmentID) async throws -> EnvironmentIndex? {
        if let loaded = index.get(environment) { return loaded }
        return try await chained(environment) { current in current }
    }

    /// Whether every one of `environments` is loaded. Those that are not start
    /// loading in the background, once each, so that a read of a cold environment
    /// can be answered by PostgreSQL at once instead of waiting for the whole load.
    func loadedOrWarming(_ environments: Set<EnvironmentID>) -> Bool {
        var all = true
        for environment in environments where index.get(environment) == nil {
            all = false
            guard warming.withLock({ $0.insert(environment).inserted }) else { continue }
            Task { [self] in
                defer { _ = warming.withLock { $0.remove(environment) } }
                do {
                    _ = try await self.environment(environment)
                } catch {
                    // The next read of the environment tries again.
                    logger.debug("background index load failed", metadata: ["environment": "\(environment)", "error": "\(error)"])
                }
            }
        }
        return all
    }

    /// Brings a loaded index up to the database's revision (a no-op when not loaded:
    /// it will load fresh on first use). With `target`, a no-op once the index has
    /// reached it: after a burst of commits to one environment, the first catch-up
    /// to run covers them all and the ones queued behind it cost nothing.
    @discardableResult
    func synchronise(_ environment: EnvironmentID, to target: Int64? = nil) async throws -> EnvironmentIndex? {
        guard index.get(environment) != nil else { return nil }
        return try await catchUp(environment, to: target)
    }

    /// Applies a delta read inside a committed transaction, in the
    /// environment's chain; if the index moved meanwhile, catches up instead.
    private func apply(_ delta: EnvironmentDelta) async throws {
        let applied = try await chained(delta.environment) { current in
            guard let current else { return nil }
            _ = current.apply(delta)  // only if still at the delta's base
            return current
        }
        if let applied, applied.revision < delta.revision {
            _ = try await catchUp(delta.environment, to: delta.revision)
        }
    }

    /// The index revision this instance holds for an environment (nil: not
    /// loaded): the base of the deltas transactions read before COMMIT.
    func revision(of environment: EnvironmentID) -> Int64? { index.get(environment)?.revision }

    /// The catch-up step, queued behind every earlier step of the environment
    /// (a load in flight included; with no index at all, it loads one).
    private func catchUp(_ environment: EnvironmentID, to target: Int64?) async throws -> EnvironmentIndex? {
        try await chained(environment) { [self] current in
            guard let current else { return nil }
            if let target, current.revision >= target { return current }
            if ContinuousClock.now - current.lastSync > Self.maximumSyncAge { return try await load(environment) }
            let revision = current.revision
            // Ahead of new work in the pool queue: replies to committed changes wait for it.
            let outcome = try await pool.snapshot(environments: [environment], priority: true) { tx in try tx.indexDelta(environment, after: revision) }
            switch outcome {
            case .gone:
                index.remove(environment)
                return nil
            case .tooLarge:
                return try await load(environment)
            case .delta(let delta):
                current.apply(delta)
                return current
            }
        }
    }

    /// The index at revision `revision` or later, if the database has it.
    func environment(_ environment: EnvironmentID, atLeast revision: Int64) async throws -> EnvironmentIndex? {
        if let loaded = try await self.environment(environment), loaded.revision >= revision { return loaded }
        let synced = try await synchronise(environment, to: revision)
        return synced.flatMap { $0.revision >= revision ? $0 : nil }
    }

    /// After a commit: catch up every environment the commit advanced that is
    /// loaded or loading. A load in flight may have read its snapshot before the
    /// commit: the catch-up queued behind it brings it forward before the reply
    /// goes out (R-PRM-5; found with a CPU hog, which makes loads slow). The
    /// delta the transaction read before COMMIT is applied when the index is
    /// still at its base (the usual case: no second transaction); otherwise the
    /// catch-up reads it again.
    func committed(_ report: CommitReport) async {
        for token in report.revisions {
            let loaded = index.get(token.environment)
            if let loaded, loaded.revision >= token.revision { continue }
            if loaded == nil, !isLoading(token.environment) { continue }  // loads fresh on first use
            do {
                if let delta = report.deltas[token.environment] {
                    try await apply(delta)
                } else {
                    _ = try await catchUp(token.environment, to: token.revision)
                }
            } catch {
                // The index stays at its older revision; readers passing the token fall back to SQL.
                logger.warning("index catch-up failed", metadata: ["environment": "\(token.environment)", "error": "\(error)"])
            }
        }
    }

    /// Whether a load or catch-up of the environment is queued or running.
    private func isLoading(_ environment: EnvironmentID) -> Bool {
        chains.withLock { $0[environment] != nil } || warming.withLock { $0.contains(environment) }
    }

    /// Runs `step` after every earlier step for the same environment; a missing
    /// index is loaded first.
    private func chained(_ environment: EnvironmentID, _ step: @escaping @Sendable (EnvironmentIndex?) async throws -> EnvironmentIndex?) async throws -> EnvironmentIndex? {
        let task: Task<EnvironmentIndex?, any Error> = chains.withLock { chains in
            let previous = chains[environment]
            let next = Task { [self] in
                _ = try? await previous?.value
                var current = index.get(environment)
                if current == nil { current = try await load(environment) }
                return try await step(current)
            }
            chains[environment] = next
            return next
        }
        let result = try await task.value
        chains.withLock { chains in
            // Forget the chain once idle (the task is done; a newer one may have replaced it).
            if let last = chains[environment], last == task { chains[environment] = nil }
        }
        return result
    }

    private func load(_ environment: EnvironmentID) async throws -> EnvironmentIndex? {
        guard let snapshot = try await pool.snapshot(environments: [environment], { tx in try tx.indexSnapshot(environment) }) else {
            index.remove(environment)
            return nil
        }
        let loaded = EnvironmentIndex(snapshot)
        index.put(loaded)
        return loaded
    }
}
