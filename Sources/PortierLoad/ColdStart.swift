import Histogram
import PortierClient
import PortierProtocol

/// First-check latency of cold environments, then every environment loaded.
public struct ColdStart {
    public struct Results: Sendable {
        /// First check in each sampled cold environment, one at a time (µs): answered
        /// by PostgreSQL while the environment's index loads in the background.
        public var cold: Histogram<UInt64>
        /// Right after that first check, how long until the index answers (a one-question
        /// `check.bulk`, which waits for the load), in µs.
        public var ready: Histogram<UInt64>
        /// The largest sampled environment's user count, its first-check latency and
        /// its index-ready time (µs).
        public var largest: (users: Int, microseconds: UInt64, readyMicroseconds: UInt64)
        public var loaded: Int
        public var loadSeconds: Double
    }

    let plan: LoadPlan
    let socket: String
    public init(plan: LoadPlan, socket: String) {
        self.plan = plan
        self.socket = socket
    }

    /// Asks one check in `sample` environments (spread over all sizes) one after
    /// another, timing it and then the wait until the index answers; then loads
    /// every other environment, `window` at a time.
    public func run(sample: Int = 200, window: Int = 32) async throws -> Results {
        let client = try await PortierClient.connect(path: socket)
        defer { Task { await client.close() } }
        let envs = plan.environments
        let step = max(1, envs.count / max(1, sample))
        let sampled = Set(stride(from: 0, to: envs.count, by: step))
        var cold = LoadResults.histogram(), ready = LoadResults.histogram()
        var largest = (users: 0, microseconds: UInt64(0), readyMicroseconds: UInt64(0))
        for index in sampled.sorted() {
            let env = envs[index]
            let start = ContinuousClock.now
            _ = try await client.call("check", params: Self.params(env))
            let answered = ContinuousClock.now
            _ = try await client.call("check.bulk", params: Self.bulkParams(env))
            let micros = UInt64((answered - start).microseconds), readyMicros = UInt64((ContinuousClock.now - start).microseconds)
            _ = cold.record(micros)
            _ = ready.record(readyMicros)
            if env.userCount > largest.users { largest = (env.userCount, micros, readyMicros) }
        }
        let started = ContinuousClock.now
        let rest = envs.indices.filter { !sampled.contains($0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add() {
                guard next < rest.count else { return }
                let env = envs[rest[next]]
                next += 1
                group.addTask { _ = try await client.call("check.bulk", params: Self.bulkParams(env)) }
            }
            for _ in 0..<window { add() }
            while try await group.next() != nil { add() }
        }
        return Results(cold: cold, ready: ready, largest: largest, loaded: envs.count, loadSeconds: (ContinuousClock.now - started).seconds)
    }

    /// One question as a `check.bulk`: answered from the index, after its load.
    static func bulkParams(_ env: EnvironmentPlan) -> JSONObject {
        ["checks": [.object(params(env))]]
    }

    static func params(_ env: EnvironmentPlan) -> JSONObject {
        ["user": .string("usr_\(env.id.raw)_\(env.firstUser)"), "permission": "documents.view",
         "organisation": .string("org_\(env.id.raw)_\(env.firstOrganisation)")]
    }
}
