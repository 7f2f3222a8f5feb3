import PortierDomain
import PortierProtocol
import Synchronization

/// Per-operation request counts by outcome and a latency histogram, kept in
/// relaxed atomics, one `RequestStats` per event loop: recording is a few
/// increments no other thread contends for (a locked Prometheus histogram
/// shared by the event loops cost 10 % of the check throughput). Summed over the
/// event loops and rendered in the Prometheus text format at scrape time.
public final class RequestStats: Sendable {
    /// Upper bounds of the latency buckets, in seconds.
    static let bounds: [Double] = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    private static let boundNanos: [Int64] = bounds.map { Int64($0 * 1e9) }
    private static let codes: [ErrorCode] = ErrorCode.allCases

    let operations: [String]
    private let slots: [Slot]
    private let index: [String: Int]

    /// One operation's numbers.
    final class Slot: Sendable {
        /// Index 0: ok; then one per error code in `ErrorCode.allCases` order.
        let outcomes: [Cell]
        /// One per bound, then +Inf; not cumulative (the rendering sums them).
        let buckets: [Cell]
        let sumNanos = Cell()

        init() {
            outcomes = (0...RequestStats.codes.count).map { _ in Cell() }
            buckets = (0...RequestStats.bounds.count).map { _ in Cell() }
        }
    }

    /// One atomic counter (Atomic is not copyable, so arrays hold these).
    final class Cell: Sendable {
        let value = Atomic<Int64>(0)
        func add(_ n: Int64) { value.add(n, ordering: .relaxed) }
        var current: Int64 { value.load(ordering: .relaxed) }
    }

    public init(operations: [String]) {
        self.operations = operations + ["unknown"]
        slots = self.operations.map { _ in Slot() }
        index = Dictionary(uniqueKeysWithValues: self.operations.enumerated().map { ($1, $0) })
    }

    public func record(op: String, code: ErrorCode?, nanoseconds: Int64) {
        let slot = slots[index[op] ?? slots.count - 1]
        slot.outcomes[code.flatMap { Self.codes.firstIndex(of: $0).map { $0 + 1 } } ?? 0].add(1)
        var bucket = 0
        while bucket < Self.boundNanos.count, nanoseconds > Self.boundNanos[bucket] { bucket += 1 }
        slot.buckets[bucket].add(1)
        slot.sumNanos.add(nanoseconds)
    }

    /// `portier_requests_total` and `portier_request_duration_seconds` over
    /// `shards` (same operations), for operations asked at least once.
    public static func render(_ shards: [RequestStats], operations: [String]) -> String {
        var counters = "# HELP portier_requests_total Requests answered, by operation and outcome (ok, or the error code).\n# TYPE portier_requests_total counter\n"
        var histograms = "# HELP portier_request_duration_seconds From a request's frame decoded to its reply written, by operation.\n# TYPE portier_request_duration_seconds histogram\n"
        func total(_ cell: (Slot) -> Cell, _ i: Int) -> Int64 { shards.reduce(0) { $0 + cell($1.slots[i]).current } }
        for (i, op) in (operations + ["unknown"]).enumerated() {
            let counts = (0...codes.count).map { j in total({ $0.outcomes[j] }, i) }
            guard counts.contains(where: { $0 > 0 }) else { continue }
            for (j, count) in counts.enumerated() where count > 0 {
                let code = j == 0 ? "ok" : codes[j - 1].rawValue
                counters += "portier_requests_total{op=\"\(op)\",code=\"\(code)\"} \(count)\n"
            }
            var cumulative: Int64 = 0
            for j in 0...bounds.count {
                cumulative += total({ $0.buckets[j] }, i)
                let le = j < bounds.count ? "\(bounds[j])" : "+Inf"
                histograms += "portier_request_duration_seconds_bucket{op=\"\(op)\",le=\"\(le)\"} \(cumulative)\n"
            }
            histograms += "portier_request_duration_seconds_sum{op=\"\(op)\"} \(Double(total({ $0.sumNanos }, i)) / 1e9)\n"
            histograms += "portier_request_duration_seconds_count{op=\"\(op)\"} \(cumulative)\n"
        }
        return counters + histograms
    }
}
