import Foundation
import PortierClient
import PortierDomain
import PortierProtocol
import Synchronization

/// How to drive a server.
public struct LoadOptions: Sendable {
    /// Service sockets of one or more instances on the same database:
    /// connections are spread over them, and flows verify their mutations on
    /// another instance than the one that made them.
    public var sockets: [String]
    /// A socket on which this process holds `mail` (R-SEC-1), if the run may
    /// read activation tokens from the outbox.
    public var mailSocket: String?
    public var connections = 4
    /// Requests in flight per connection.
    public var depth = 16
    /// Stop after this long…
    public var duration: Duration = .seconds(60)
    /// …or after this many requests, whichever comes first.
    public var requests: Int?
    /// Share of requests that are mutations (approximate: flows are chosen so
    /// that their mutations make up this share; their checks and inbox reads
    /// count as reads).
    public var mutationShare = 0.05
    /// Zipf exponent of the environment choice.
    public var zipfExponent = 1.0
    /// Keep every acknowledged mutation in the results (for crash checks).
    public var recordAcknowledged = false
    /// Watches of every environment held during the run (R-WAT-1), verified
    /// against the run's changes; their connections hold up to
    /// `watchesPerConnection` each and are spread over `sockets`.
    public var watchers = 0
    public var watchesPerConnection = 8

    public init(socket: String) { sockets = [socket] }
    public init(sockets: [String]) { self.sockets = sockets }
}

/// Drives a running `portierd` with a mix of reads and mutation flows over the
/// seeded data (see `LoadPlan`), measuring every request and verifying every
/// answer it can know:
/// - a check or lookup in an environment no flow of this run has touched must
///   equal what the plan says (the same pure rule the server applies);
/// - inside a flow, a check sent with the revision token of the flow's own
///   mutation must see that mutation (R-PRM-5).
public final class LoadRunner: Sendable {
    let plan: LoadPlan
    let options: LoadOptions
    let stats = LoadStats()
    let environments: Zipf
    /// Environments some flow has changed: their answers no longer follow the plan.
    let touched = Mutex(Set<Int>())
    /// Users, (user, organisation) and environment pairs a flow is working on.
    let busy = Mutex(Set<[Int64]>())
    let sequence = Atomic<Int>(0)
    let issued = Atomic<Int>(0)
    /// The run's watchers, if any.
    let watches = Mutex<WatchVerifier?>(nil)

    /// Chance that a work item is a flow rather than one read. A flow averages
    /// about 2.5 mutations among 4.75 requests, so for a share m of mutations
    /// among requests: q·2.5 = m·(1 − q + 4.75·q).
    var flowProbability: Double {
        let m = min(max(options.mutationShare, 0), 0.5)
        return min(1, m / (2.5 - 3.75 * m))
    }

    public init(plan: LoadPlan, options: LoadOptions) {
        self.plan = plan
        self.options = options
        environments = Zipf(count: plan.environments.count, exponent: options.zipfExponent)
    }

    /// Runs until the duration or request count is reached; `progress` is called about once a second.
    public func run(progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> LoadResults {
        let started = ContinuousClock.now
        let deadline = started + options.duration
        let clients = try await (0..<max(options.connections, options.sockets.count)).asyncMap { i in
            try await PortierClient.connect(path: options.sockets[i % options.sockets.count])
        }
        let support = try await options.mailSocket.asyncMap { try await PortierClient.connect(path: $0) }
        if options.watchers > 0 {
            let verifier = try await WatchVerifier.start(count: options.watchers, perConnection: max(1, options.watchesPerConnection), sockets: options.sockets)
            watches.withLock { $0 = verifier }
        }
        let reporter = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let p = stats.progress
                let seconds = (ContinuousClock.now - started).seconds
                progress(String(format: "%6.0f s  %9d requests  %8.0f/s  %5d errors  %3d mismatches  p99 %6d µs",
                                seconds, p.requests, Double(p.requests) / max(seconds, 0.001), p.errors, p.mismatches, p.p99))
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for (index, client) in clients.enumerated() {
                // The next connection: on the next instance when there are several.
                let peerIndex = (index + 1) % clients.count
                let sockets = options.sockets
                let other = sockets[index % sockets.count] != sockets[peerIndex % sockets.count]
                let peer = clients[peerIndex]
                for worker in 0..<options.depth {
                    group.addTask { [self] in
                        var rng = SplitMix(seed: plan.shape.seed &+ UInt64(worker) &* 7919 &+ UInt64(index) &* 104_729)
                        // A worker whose connection is gone (server stopped or killed) stops.
                        while ContinuousClock.now < deadline, client.isConnected, claim() {
                            await step(Clients(own: client, peer: peer, separate: other), support: support, rng: &rng)
                        }
                    }
                }
            }
        }
        reporter.cancel()
        for client in clients { await client.close() }
        await support?.close()
        var results = stats.snapshot
        results.elapsedSeconds = (ContinuousClock.now - started).seconds
        if let verifier = watches.withLock({ $0 }) { results.watch = await verifier.finish() }
        return results
    }

    /// Takes one unit of the request budget (always true without a count).
    private func claim() -> Bool {
        guard let limit = options.requests else { return true }
        return issued.add(1, ordering: .relaxed).newValue <= limit
    }

    private func step(_ clients: Clients, support: PortierClient?, rng: inout SplitMix) async {
        if Double.random(in: 0..<1, using: &rng) < flowProbability {
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: await membershipFlow(clients, rng: &rng)
            case 1: await roleFlow(clients, rng: &rng)
            case 2: await inviteFlow(clients, support: support, rng: &rng)
            default: await partnerFlow(clients, rng: &rng)
            }
        } else {
            await read(clients.own, rng: &rng)
        }
    }

    /// Sends one request, timing it and counting an error reply by its code.
    func send(_ client: PortierClient, _ op: String, actor: String? = nil, params: JSONObject, consistency: Consistency? = nil) async -> Reply? {
        let start = ContinuousClock.now
        do {
            let reply = try await client.send(op, actor: actor, params: params, consistency: consistency)
            let micros = UInt64((ContinuousClock.now - start).microseconds)
            switch reply.outcome {
            case .failure(let error):
                stats.record(op, microseconds: micros, error: error.code.rawValue)
            case .success(_, let revision):
                stats.record(op, microseconds: micros, error: nil)
                if let revision, !Self.reads.contains(op) { watches.withLock { $0 }?.committed(op, revision: revision) }
                if options.recordAcknowledged, let revision, !Self.reads.contains(op) {
                    stats.acknowledged(AcknowledgedMutation(op: op, revision: revision, email: op == "user.invite" ? params["email"]?.stringValue : nil))
                }
            }
            return reply
        } catch {
            stats.record(op, microseconds: UInt64((ContinuousClock.now - start).microseconds), error: "connection")
            return nil
        }
    }

    /// Operations that change nothing (their replies may carry a revision too).
    static let reads: Set<String> = ["check", "check.bulk", "lookup.organisations", "lookup.users", "inbox.list", "outbox.list"]

    func isTouched(_ environment: Int) -> Bool { touched.withLock { $0.contains(environment) } }
    func touch(_ environments: Int...) { touched.withLock { for e in environments { $0.insert(e) } } }

    /// Reserves `key` for one flow; false if another flow holds it.
    func reserve(_ key: [Int64]) -> Bool { busy.withLock { $0.insert(key).inserted } }
    func release(_ key: [Int64]) { _ = busy.withLock { $0.remove(key) } }

    func nextEnvironment(_ rng: inout SplitMix) -> EnvironmentPlan { plan.environments[environments.next(using: &rng)] }
}

/// A worker's connection, and the one where its flows verify their mutations:
/// on another instance when there are several (`separate`).
struct Clients {
    let own: PortierClient
    let peer: PortierClient
    let separate: Bool
}

extension Reply {
    var result: JSONObject? { if case .success(let result, _) = outcome { result } else { nil } }
    var revision: String? { if case .success(_, let revision) = outcome { revision } else { nil } }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
