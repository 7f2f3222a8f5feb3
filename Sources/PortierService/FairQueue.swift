import DequeModule
import PortierDomain
import PortierProtocol
import Synchronization

/// Turns at a scarce resource (the password hasher's threads), handed out
/// fairly in two levels, as fq_codel treats flows (R-SEC-2, R-SEC-5): round
/// robin across connections, and within a connection round robin across the
/// `client` keys the front end names; first come first served within a key.
///
/// Bounded per key (`perKey`: past it the newcomer of that key is refused)
/// and in total (`total`). When the total is reached, the request dropped is
/// one of the fattest flow's: the connection with the most waiting and, in it,
/// the key with the most; its newest waiter is refused (`overloaded`) to make
/// room. A newcomer is refused itself only when its own connection would then
/// be the fattest. So a flood of made-up `client` keys on a few connections
/// fills only those connections' queues: a login on another connection waits
/// for at most one turn per other waiting connection, and one through the
/// flooding front end under its own key for its share of that connection's.
///
/// Hand-written: no package offers a two-level fair queue with these bounds.
final class FairQueue: Sendable {
    /// Whose turn a request takes: its connection, then its `client` key.
    struct Key: Hashable, Sendable {
        let connection: UInt64
        let client: String
    }

    private enum Outcome { case granted, cancelled, dropped }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Outcome, Never>
    }

    /// One connection's waiters, by client key.
    private struct Flow {
        var clients: [String: Deque<Waiter>] = [:]
        /// Keys with waiters, in the order they are served.
        var ring: Deque<String> = []
        var count = 0
    }

    private struct State {
        var running = 0
        var flows: [UInt64: Flow] = [:]
        /// Connections with waiters, in the order they are served.
        var ring: Deque<UInt64> = []
        var waiting = 0
        var nextID: UInt64 = 0
        var dropped = 0
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

    /// Waiters refused to make room for another flow's newcomer, so far.
    var dropped: Int { state.withLock { $0.dropped } }

    /// Runs `body` in a turn of `key`'s.
    func run<R>(_ key: Key, _ body: () async throws -> R) async throws -> R {
        try await take(key)
        defer { pass() }
        return try await body()
    }

    private static let refusal = PortierError(.overloaded, "too many password checks are waiting; retry later")

    private func take(_ key: Key) async throws {
        enum Decision { case go, full, wait(UInt64, evicted: Waiter?) }
        let decision: Decision = state.withLock { s in
            if s.running < slots, s.waiting == 0 {
                s.running += 1
                return .go
            }
            guard (s.flows[key.connection]?.clients[key.client]?.count ?? 0) < perKey else { return .full }
            var evicted: Waiter?
            if s.waiting >= total {
                guard let victim = Self.evictionVictim(s, arriving: key) else { return .full }
                evicted = Self.removeNewest(&s, of: victim)
                s.dropped += 1
            }
            s.nextID &+= 1
            // Counted now, so that concurrent arrivals see the room taken.
            s.waiting += 1
            return .wait(s.nextID, evicted: evicted)
        }
        let id: UInt64
        switch decision {
        case .go: return
        case .full: throw Self.refusal
        case .wait(let n, let evicted):
            evicted?.continuation.resume(returning: .dropped)
            id = n
        }
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                let now: Outcome? = state.withLock { s in
                    if Task.isCancelled {
                        s.waiting -= 1
                        return .cancelled
                    }
                    if s.running < slots, s.waiting == 1 {
                        s.waiting -= 1
                        s.running += 1
                        return .granted
                    }
                    Self.enqueue(&s, Waiter(id: id, continuation: continuation), key)
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            abandon(key, id)
        }
        switch outcome {
        case .granted: return
        case .cancelled: throw CancellationError()
        case .dropped: throw Self.refusal
        }
    }

    /// Whose newest waiter makes room for `arriving`: the fattest connection's
    /// fattest key, unless the arriving connection would itself be the fattest.
    private static func evictionVictim(_ s: State, arriving: Key) -> Key? {
        guard let (connection, flow) = s.flows.max(by: { $0.value.count < $1.value.count }) else { return nil }
        let own = s.flows[arriving.connection]?.count ?? 0
        if connection == arriving.connection || own + 1 >= flow.count { return nil }
        guard let (client, _) = flow.clients.max(by: { $0.value.count < $1.value.count }) else { return nil }
        return Key(connection: connection, client: client)
    }

    private static func enqueue(_ s: inout State, _ waiter: Waiter, _ key: Key) {
        var flow = s.flows[key.connection] ?? Flow()
        if flow.count == 0 { s.ring.append(key.connection) }
        if flow.clients[key.client]?.isEmpty ?? true { flow.ring.append(key.client) }
        flow.clients[key.client, default: []].append(waiter)
        flow.count += 1
        s.flows[key.connection] = flow
    }

    /// Takes a waiter out (its count in `waiting` goes with it), keeping the rings exact.
    private static func remove(_ s: inout State, _ key: Key, where match: (Deque<Waiter>) -> Int?) -> Waiter? {
        guard var flow = s.flows[key.connection], var queue = flow.clients[key.client], let index = match(queue) else { return nil }
        let waiter = queue.remove(at: index)
        flow.count -= 1
        s.waiting -= 1
        if queue.isEmpty {
            flow.clients[key.client] = nil
            flow.ring.removeAll { $0 == key.client }
        } else {
            flow.clients[key.client] = queue
        }
        if flow.count == 0 {
            s.flows[key.connection] = nil
            s.ring.removeAll { $0 == key.connection }
        } else {
            s.flows[key.connection] = flow
        }
        return waiter
    }

    private static func removeNewest(_ s: inout State, of key: Key) -> Waiter? {
        remove(&s, key) { $0.isEmpty ? nil : $0.count - 1 }
    }

    /// Ends a turn: the next connection in the ring, and in it the next key, gets it.
    private func pass() {
        let next: Waiter? = state.withLock { s in
            guard let connection = s.ring.popFirst(), var flow = s.flows[connection],
                  let client = flow.ring.popFirst(), var queue = flow.clients[client], let waiter = queue.popFirst() else {
                s.running -= 1
                return nil
            }
            s.waiting -= 1
            flow.count -= 1
            if queue.isEmpty { flow.clients[client] = nil } else { flow.clients[client] = queue; flow.ring.append(client) }
            if flow.count == 0 { s.flows[connection] = nil } else { s.flows[connection] = flow; s.ring.append(connection) }
            return waiter  // the turn passes on: `running` stays
        }
        next?.continuation.resume(returning: .granted)
    }

    private func abandon(_ key: Key, _ id: UInt64) {
        let waiter: Waiter? = state.withLock { s in Self.remove(&s, key) { $0.firstIndex { $0.id == id } } }
        waiter?.continuation.resume(returning: .cancelled)
    }
}
