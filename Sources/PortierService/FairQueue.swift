import DequeModule
import PortierDomain
import PortierProtocol
import Synchronization

/// Turns at a scarce resource (the password hasher's threads), handed out
/// fairly: round robin across keys (a connection, and within it the `client`
/// the front end names), first come first served within a key; bounded per key
/// and in total, past which a request is refused with `overloaded` instead of
/// waiting (R-SEC-2). One caller's flood therefore delays another caller's
/// turn by at most one turn per other waiting key, not by the flood's length.
final class FairQueue: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var running = 0
        var queues: [String: Deque<Waiter>] = [:]
        /// Keys with waiters, in the order they are served.
        var ring: Deque<String> = []
        var waiting = 0
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    let slots: Int
    let perKey: Int
    let total: Int

    init(slots: Int, perKey: Int, total: Int) {
        self.slots = slots
        self.perKey = perKey
        self.total = total
    }

    /// Waiting turns now (for tests and metrics).
    var waiting: Int { state.withLock { $0.waiting } }

    /// Runs `body` in a turn of `key`'s.
    func run<R>(key: String, _ body: () async throws -> R) async throws -> R {
        try await take(key)
        defer { pass() }
        return try await body()
    }

    private func take(_ key: String) async throws {
        enum Decision { case go, full, wait(UInt64) }
        let decision: Decision = state.withLock { s in
            if s.running < slots, s.waiting == 0 {
                s.running += 1
                return .go
            }
            guard s.waiting < total, (s.queues[key]?.count ?? 0) < perKey else { return .full }
            s.nextID &+= 1
            return .wait(s.nextID)
        }
        let id: UInt64
        switch decision {
        case .go: return
        case .full: throw PortierError(.overloaded, "too many password checks are waiting; retry later")
        case .wait(let n): id = n
        }
        let granted = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now: Bool? = state.withLock { s in
                    if Task.isCancelled { return false }
                    if s.running < slots, s.waiting == 0 { s.running += 1; return true }
                    if s.queues[key] == nil || s.queues[key]!.isEmpty { s.ring.append(key) }
                    s.queues[key, default: []].append(Waiter(id: id, continuation: continuation))
                    s.waiting += 1
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            abandon(key, id)
        }
        if !granted { throw CancellationError() }
    }

    /// Ends a turn: the next key in the ring gets it.
    private func pass() {
        let next: Waiter? = state.withLock { s in
            while let key = s.ring.popFirst() {
                guard var queue = s.queues[key], let waiter = queue.popFirst() else { continue }
                s.waiting -= 1
                if queue.isEmpty { s.queues[key] = nil } else { s.queues[key] = queue; s.ring.append(key) }
                return waiter  // the turn passes on: `running` stays
            }
            s.running -= 1
            return nil
        }
        next?.continuation.resume(returning: true)
    }

    private func abandon(_ key: String, _ id: UInt64) {
        let waiter: Waiter? = state.withLock { s in
            guard var queue = s.queues[key], let i = queue.firstIndex(where: { $0.id == id }) else { return nil }
            let w = queue.remove(at: i)
            s.waiting -= 1
            s.queues[key] = queue.isEmpty ? nil : queue
            if queue.isEmpty { s.ring.removeAll { $0 == key } }
            return w
        }
        waiter?.continuation.resume(returning: false)
    }
}
