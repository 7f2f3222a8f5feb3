import PortierDomain
import Synchronization

/// The loaded environment indexes of this instance, evicted least recently used
/// first when their estimated size passes the memory budget.
public final class PermissionIndex: Sendable {
    public let budgetBytes: Int
    private let state = Mutex(State())

    struct State {
        var entries: [EnvironmentID: (index: EnvironmentIndex, lastUse: UInt64)] = [:]
        var clock: UInt64 = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
    }

    /// - Parameter budgetBytes: estimated memory the indexes may use (default 1 GiB).
    public init(budgetBytes: Int = 1 << 30) { self.budgetBytes = budgetBytes }

    /// The index of `environment` if loaded, marking it recently used.
    public func get(_ environment: EnvironmentID) -> EnvironmentIndex? {
        state.withLock { s in
            s.clock &+= 1
            guard var entry = s.entries[environment] else { s.misses &+= 1; return nil }
            s.hits &+= 1
            entry.lastUse = s.clock
            s.entries[environment] = entry
            return entry.index
        }
    }

    /// Adds (or replaces) an index, then evicts others if over budget.
    public func put(_ index: EnvironmentIndex) {
        state.withLock { s in
            s.clock &+= 1
            s.entries[index.environment] = (index, s.clock)
        }
        evictIfOverBudget(keeping: index.environment)
    }

    public func remove(_ environment: EnvironmentID) {
        _ = state.withLock { $0.entries.removeValue(forKey: environment) }
    }

    /// Loaded environments and the revision each is exact at.
    public func loaded() -> [EnvironmentID: Int64] {
        let indexes = state.withLock { $0.entries.mapValues(\.index) }
        return indexes.mapValues(\.revision)
    }

    public var count: Int { state.withLock { $0.entries.count } }
    public var hitsAndMisses: (hits: UInt64, misses: UInt64) { state.withLock { ($0.hits, $0.misses) } }

    private func evictIfOverBudget(keeping kept: EnvironmentID) {
        let entries = state.withLock { $0.entries }
        var total = entries.values.reduce(0) { $0 + $1.index.approximateBytes }
        guard total > budgetBytes else { return }
        for (env, entry) in entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) where env != kept {
            guard total > budgetBytes else { break }
            total -= entry.index.approximateBytes
            remove(env)
        }
    }
}
