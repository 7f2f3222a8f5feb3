import Foundation
import Synchronization

/// Which refused credential requests wait before their answer (R-SEC-2): each
/// connection has a bucket of `burst` refusals answered at once, refilled at
/// `perSecond`; past it, a refusal waits the configured delay. So a front end
/// whose users now and then mistype a password never waits, while a
/// connection that floods refusals is slowed to its in-flight bound per delay
/// and cannot turn cheap refusals into CPU taken from the hashes.
///
/// Bounded: at most `maximumConnections` buckets; full buckets (idle
/// connections) are dropped first.
final class RefusalPacer: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    private let burst: Double
    private let perSecond: Double
    private let maximumConnections: Int
    private let buckets = Mutex<[UInt64: Bucket]>([:])
    private let clock: @Sendable () -> Double

    init(burst: Int, perSecond: Double, maximumConnections: Int = 10_000,
         clock: @escaping @Sendable () -> Double = { Date().timeIntervalSinceReferenceDate }) {
        self.burst = Double(burst)
        self.perSecond = perSecond
        self.maximumConnections = maximumConnections
        self.clock = clock
    }

    /// Counts a refusal on `connection`; true when it must wait.
    func mustWait(_ connection: UInt64) -> Bool {
        let now = clock()
        return buckets.withLock { b in
            var bucket = b[connection] ?? Bucket(tokens: burst, updated: now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * perSecond)
            bucket.updated = now
            let wait = bucket.tokens < 1
            if !wait { bucket.tokens -= 1 }
            if b[connection] == nil, b.count >= maximumConnections { prune(&b, now) }
            b[connection] = bucket
            return wait
        }
    }

    /// Buckets being tracked (for tests).
    var count: Int { buckets.withLock { $0.count } }

    private func prune(_ b: inout [UInt64: Bucket], _ now: Double) {
        b = b.filter { min(burst, $0.value.tokens + (now - $0.value.updated) * perSecond) < burst }
        if b.count >= maximumConnections { b.removeAll() }
    }
}
