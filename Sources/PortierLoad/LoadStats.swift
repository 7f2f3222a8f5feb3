import Histogram
import Synchronization

/// What a run measured: latency per operation (HdrHistogram, microseconds),
/// errors by operation and code, and answers that contradicted what the run
/// knew to be true.
public struct LoadResults: Sendable {
    public var latency: [String: Histogram<UInt64>] = [:]
    public var errors: [String: [String: Int]] = [:]
    /// Refusals the run provokes on purpose, by operation and code: not errors
    /// (`expectedRefusals` says which and why).
    public var expected: [String: [String: Int]] = [:]
    public var mismatches = 0
    /// The first few mismatches, described.
    public var mismatchSamples: [String] = []
    public var elapsedSeconds = 0.0
    /// Mutations whose success reply arrived (kept when `LoadOptions.recordAcknowledged`).
    public var acknowledged: [AcknowledgedMutation] = []
    /// What the run's watchers saw (nil: the run had none).
    public var watch: WatchResults?

    public var requests: Int { latency.values.reduce(0) { $0 + Int($1.totalCount) } }
    public var errorCount: Int { errors.values.reduce(0) { $0 + $1.values.reduce(0, +) } }
    public var expectedCount: Int { expected.values.reduce(0) { $0 + $1.values.reduce(0, +) } }

    /// The refusals a correct server gives this load by design, with the rule
    /// behind each: partnerships are proposed to the administrators of the
    /// plan's most popular environments (a Zipf draw) by many senders, and each
    /// recipient gets at most the hourly message cap of proposals (R-USR-16).
    public static let expectedRefusals: [String: (code: String, why: String)] = [
        "partnership.propose": ("rate_limited", "the recipient's hourly message cap, R-USR-16: popular environments get many proposals"),
    ]

    public var all: Histogram<UInt64> {
        var total = Self.histogram()
        for h in latency.values { total.add(h) }
        return total
    }

    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    }
}

/// Shared by a run's workers; one short lock per request.
final class LoadStats: Sendable {
    private let state = Mutex(LoadResults())

    func record(_ op: String, microseconds: UInt64, error code: String?) {
        state.withLock { s in
            _ = s.latency[op, default: LoadResults.histogram()].record(max(1, microseconds))
            guard let code else { return }
            if LoadResults.expectedRefusals[op]?.code == code {
                s.expected[op, default: [:]][code, default: 0] += 1
            } else {
                s.errors[op, default: [:]][code, default: 0] += 1
            }
        }
    }

    func mismatch(_ description: String) {
        state.withLock { s in
            s.mismatches += 1
            if s.mismatchSamples.count < 10 { s.mismatchSamples.append(description) }
        }
    }

    func acknowledged(_ mutation: AcknowledgedMutation) {
        state.withLock { $0.acknowledged.append(mutation) }
    }

    var snapshot: LoadResults { state.withLock { $0 } }

    /// Requests, errors and p99 so far, for the progress line.
    var progress: (requests: Int, errors: Int, mismatches: Int, p99: UInt64) {
        state.withLock { s in (s.requests, s.errorCount, s.mismatches, s.all.valueAtPercentile(99)) }
    }
}

/// A mutation the server acknowledged: its operation, the revision token of its
/// reply and, for invitations, the address invited. One tab-separated line each
/// in the file `run --acknowledged` writes.
public struct AcknowledgedMutation: Sendable, Equatable {
    public var op: String
    public var revision: String
    public var email: String?

    public init(op: String, revision: String, email: String?) {
        self.op = op
        self.revision = revision
        self.email = email
    }

    public var line: String { [op, revision, email ?? ""].joined(separator: "\t") }

    public init?(line: Substring) {
        let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        self.init(op: String(parts[0]), revision: String(parts[1]), email: parts[2].isEmpty ? nil : String(parts[2]))
    }
}
