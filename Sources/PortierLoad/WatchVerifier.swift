import Histogram
import PortierClient
import PortierDomain
import PortierProtocol
import Synchronization

/// What the watchers of a load run saw (R-WAT-1, docs/rules.md), checked against the
/// changes the run committed.
public struct WatchResults: Sendable {
    public var watchers = 0
    public var frames = 0
    /// Committed changes expected in the feed, and how many (change, watcher)
    /// pairs were never seen.
    public var expected = 0
    public var missed = 0
    /// Frames of one environment not in increasing revision order, or seen twice.
    public var outOfOrder = 0
    /// Watches that ended during the run (an error frame or a lost connection).
    public var ended = 0
    /// From a change's reply reaching the generator to its frame reaching a
    /// watcher (a frame faster than the reply counts as 0), µs.
    public var delay = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    public var samples: [String] = []
}

/// Runs watches of every environment during a load run and verifies that
/// every committed change the run made that changes a permission fact reached
/// every watcher, in order, exactly once.
final class WatchVerifier: Sendable {
    /// Mutations whose reply's revision must appear in the feed of the reply's
    /// environment: each changes a permission fact there (`user.invite` and
    /// `partnership.propose` do not: an invited user and a pending proposal grant nothing).
    static let fedOperations: Set<String> = [
        "member.add", "member.remove", "member.set_role", "user.set_role", "user.activate", "user.block",
        "user.unblock", "user.remove", "inbox.accept", "partnership.accept", "partnership.end",
    ]

    private struct Watcher {
        /// Per environment: the revisions seen, in arrival order.
        var seen: [Int64: [Int64]] = [:]
        var arrival: [RevisionToken: ContinuousClock.Instant] = [:]
        var frames = 0
        var ended: String?
    }

    /// One watcher's record (a class: a `Mutex` cannot sit in an array).
    private final class Log: Sendable {
        let state = Mutex(Watcher())
    }

    private let watchers: [Log]
    /// The run's changes expected in the feed: when their reply arrived.
    private let committed = Mutex<[RevisionToken: ContinuousClock.Instant]>([:])
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let clients: [PortierClient]

    private init(clients: [PortierClient], watchers count: Int) {
        self.clients = clients
        watchers = (0..<count).map { _ in Log() }
    }

    /// Opens `count` watches of every environment, up to `perConnection` on a
    /// connection, connections spread over `sockets`.
    static func start(count: Int, perConnection: Int, sockets: [String]) async throws -> WatchVerifier {
        let connections = (count + perConnection - 1) / perConnection
        var clients: [PortierClient] = []
        for i in 0..<connections { clients.append(try await PortierClient.connect(path: sockets[i % sockets.count])) }
        let verifier = WatchVerifier(clients: clients, watchers: count)
        for i in 0..<count {
            let (_, _, events) = try await clients[i / perConnection].openWatch()
            let task = Task { [verifier] in await verifier.follow(i, events) }
            verifier.tasks.withLock { $0.append(task) }
        }
        return verifier
    }

    private func follow(_ index: Int, _ events: AsyncThrowingStream<JSONObject, any Error>) async {
        do {
            for try await event in events {
                let now = ContinuousClock.now
                guard let token = event["revision"]?.stringValue.flatMap(RevisionToken.init) else { continue }
                watchers[index].state.withLock { w in
                    w.frames += 1
                    w.seen[token.environment.raw, default: []].append(token.revision)
                    if w.arrival[token] == nil { w.arrival[token] = now }
                }
            }
            watchers[index].state.withLock { $0.ended = "cancelled" }
        } catch {
            watchers[index].state.withLock { $0.ended = "\(error)" }
        }
    }

    /// A mutation's reply arrived.
    func committed(_ op: String, revision: String) {
        guard Self.fedOperations.contains(op), let token = RevisionToken(revision) else { return }
        let now = ContinuousClock.now
        committed.withLock { $0[token] = now }
    }

    /// Waits (up to `grace`) for every watcher to see every expected change,
    /// then stops the watches and checks what they saw.
    func finish(grace: Duration = .seconds(10)) async -> WatchResults {
        let expected = committed.withLock { $0 }
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            let caughtUp = watchers.allSatisfy { w in
                w.state.withLock { w in w.ended != nil || expected.keys.allSatisfy { w.arrival[$0] != nil } }
            }
            if caughtUp { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        // What they saw, before stopping them (a stop ends every stream).
        let seen = watchers.map { $0.state.withLock { $0 } }
        for task in tasks.withLock({ $0 }) { task.cancel() }
        var results = WatchResults()
        results.watchers = watchers.count
        results.expected = expected.count
        for (i, w) in seen.enumerated() {
            results.frames += w.frames
            if let ended = w.ended {
                results.ended += 1
                if results.samples.count < 5 { results.samples.append("watcher \(i) ended: \(ended)") }
            }
            for (env, revisions) in w.seen where zip(revisions, revisions.dropFirst()).contains(where: { $0 >= $1 }) {
                results.outOfOrder += 1
                if results.samples.count < 5 { results.samples.append("watcher \(i): env_\(env) frames out of order or repeated") }
            }
            for (token, replied) in expected {
                guard let arrived = w.arrival[token] else {
                    results.missed += 1
                    if results.samples.count < 5 { results.samples.append("watcher \(i) never saw \(token)") }
                    continue
                }
                let delay = arrived > replied ? (arrived - replied).microseconds : 0
                results.delay.record(UInt64(delay))
            }
        }
        for client in clients { await client.close() }
        return results
    }
}
