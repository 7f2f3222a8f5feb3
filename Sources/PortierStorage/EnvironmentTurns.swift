import PortierDomain
import Synchronization

/// Takes turns per environment: at most one holder per environment at a time,
/// the others waiting in arrival order.
///
/// Transactions that lock an environment's row first (administrative changes:
/// R-USR-8, the invitation limit) would otherwise wait for that lock inside
/// PostgreSQL, each holding a pooled connection. In a busy environment those
/// waiters can take every connection of the pool and stall all the others
/// environments' requests behind one queue. Waiting for the turn here instead
/// costs no connection. The row lock stays what makes it correct (several
/// instances share one database); turns only decide who waits where.
final class EnvironmentTurns: Sendable {
    private let queues = Mutex<[EnvironmentID: [CheckedContinuation<Void, Never>]]>([:])

    /// Runs `body` when it is the environment's turn.
    func run<R>(_ environment: EnvironmentID, _ body: () async throws -> R) async throws -> R {
        await take(environment)
        defer { pass(environment) }
        return try await body()
    }

    /// Environments with a holder, and requests waiting behind them (for metrics).
    var usage: (held: Int, waiting: Int) {
        queues.withLock { q in (q.count, q.values.reduce(0) { $0 + $1.count }) }
    }

    private func take(_ environment: EnvironmentID) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let free = queues.withLock { queues -> Bool in
                // A present key means the turn is held; its value is who waits.
                guard queues[environment] != nil else {
                    queues[environment] = []
                    return true
                }
                queues[environment]!.append(continuation)
                return false
            }
            if free { continuation.resume() }
        }
    }

    private func pass(_ environment: EnvironmentID) {
        let next = queues.withLock { queues -> CheckedContinuation<Void, Never>? in
            guard var waiting = queues[environment], !waiting.isEmpty else {
                queues[environment] = nil
                return nil
            }
            let first = waiting.removeFirst()
            queues[environment] = waiting
            return first
        }
        next?.resume()
    }
}
