import Histogram
import PortierClient
import PortierProtocol

/// First-check latency of cold environments, then every environment loaded.
public struct ColdStart {
    public struct Results: Sendable {
        /// First check in each sampled cold environment, one at a time (µs).
        public var cold: Histogram<UInt64>
        /// The largest sampled environment's user count and its first-check latency.
        public var largest: (users: Int, microseconds: UInt64)
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
    /// another, timing each; then one check in every other environment, `window`
    /// at a time, so that all are loaded.
    public func run(sample: Int = 200, window: Int = 32) async throws -> Results {
        let client = try await PortierClient.connect(path: socket)
        defer { Task { await client.close() } }
        let envs = plan.environments
        let step = max(1, envs.count / max(1, sample))
        let sampled = Set(stride(from: 0, to: envs.count, by: step))
        var cold = LoadResults.histogram()
        var largest = (users: 0, microseconds: UInt64(0))
        for index in sampled.sorted() {
            let env = envs[index]
            let start = ContinuousClock.now
            _ = try await client.call("check", params: Self.params(env))
            let micros = UInt64((ContinuousClock.now - start).microseconds)
            _ = cold.record(micros)
            if env.userCount > largest.users { largest = (env.userCount, micros) }
        }
        let started = ContinuousClock.now
        let rest = envs.indices.filter { !sampled.contains($0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add() {
                guard next < rest.count else { return }
                let env = envs[rest[next]]
                next += 1
                group.addTask { _ = try await client.call("check", params: Self.params(env)) }
            }
            for _ in 0..<window { add() }
            while try await group.next() != nil { add() }
        }
        return Results(cold: cold, largest: largest, loaded: envs.count, loadSeconds: (ContinuousClock.now - started).seconds)
    }

    static func params(_ env: EnvironmentPlan) -> JSONObject {
        ["user": .string("usr_\(env.id.raw)_\(env.firstUser)"), "permission": "documents.view",
         "organisation": .string("org_\(env.id.raw)_\(env.firstOrganisation)")]
    }
}
