import PortierDomain
import Synchronization

/// The loaded environment indexes of this instance, evicted least recently used
/// first when their estimated size passes the memory budget.
public final class PermissionIndex: Sendable {
    public let budgetBytes: Int
    private let state = Mutex(State())

    struct State {
        var entries: [EnvironmentID: EnvironmentIndex] = [:]
        /// Sum of the entries' sizes when they were added (deltas drift it a little).
        var bytes = 0
    }
    /// A logical clock for least-recently-used eviction; each index keeps its last tick.
    private let clock = Atomic<UInt64>(0)
    private let hits = Atomic<UInt64>(0)
    private let misses = Atomic<UInt64>(0)

    /// - Parameter budgetBytes: estimated memory the indexes may use (default 1 GiB).
    public init(budgetBytes: Int = 1 << 30) { self.budgetBytes = budgetBytes }

    /// The index of `environment` if loaded, marking it recently used.
    /// The hot path: a dictionary read under the lock, counters and the LRU stamp outside it.
    public func get(_ environment: EnvironmentID) -> EnvironmentIndex? {
        guard let index = state.withLock({ $0.entries[environment] }) else {
            misses.add(1, ordering: .relaxed)
            return nil
        }
        hits.add(1, ordering: .relaxed)
        index.lastUse.store(clock.add(1, ordering: .relaxed).newValue, ordering: .relaxed)
        return index
    }

    /// Adds (or replaces) an index, then evicts others if over budget.
    public func put(_ index: EnvironmentIndex) {
        index.lastUse.store(clock.add(1, ordering: .relaxed).newValue, ordering: .relaxed)
        let size = index.approximateBytes
        let over = state.withLock { s in
            if let old = s.entries.updateValue(index, forKey: index.environment) { s.bytes -= old.approximateBytes }
            s.bytes += size
            return s.bytes > budgetBytes
        }
        if over { evictIfOverBudget(keeping: index.environment) }
    }

    public func remove(_ environment: EnvironmentID) {
        state.withLock { s in
            if let old = s.entries.removeValue(forKey: environment) { s.bytes -= old.approximateBytes }
        }
    }

    /// The estimated memory of the loaded indexes.
    public var approximateBytes: Int { state.withLock { $0.bytes } }

    /// Loaded environments and the revision each is exact at.
    public func loaded() -> [EnvironmentID: Int64] {
        state.withLock { $0.entries }.mapValues(\.revision)
    }

    public var count: Int { state.withLock { $0.entries.count } }
    public var hitsAndMisses: (hits: UInt64, misses: UInt64) { (hits.load(ordering: .relaxed), misses.load(ordering: .relaxed)) }

    private func evictIfOverBudget(keeping kept: EnvironmentID) {
        let entries = state.withLock { $0.entries }
        var total = entries.values.reduce(0) { $0 + $1.approximateBytes }
        guard total > budgetBytes else { return }
        let byAge = entries.sorted { $0.value.lastUse.load(ordering: .relaxed) < $1.value.lastUse.load(ordering: .relaxed) }
        for (env, index) in byAge where env != kept {
            guard total > budgetBytes else { break }
            total -= index.approximateBytes
            remove(env)
        }
    }
}
