import NIOCore
import PortierProtocol
import PortierService
import PortierTransport
import Synchronization

/// What the server measures, in the Prometheus text format, every metric
/// with its `# HELP` and `# TYPE`: requests by operation and outcome and their
/// latency (per-event-loop atomics, `RequestStats`), and at each scrape the
/// connections, the database pool, the environments' turns, the permission
/// index, the catch-up lag behind other instances (a histogram), the build
/// and the process. Nothing is reset by a scrape. No global metrics system:
/// several servers in one process keep apart.
///
/// Written out by hand rather than through swift-prometheus's registry: the
/// request numbers live in per-event-loop atomics for speed, and every other
/// family is read at scrape time from counts kept where they happen (the pool,
/// the index, the synchroniser, /proc), so a registry would only hold a second
/// copy. The test command parses the output with the Python
/// `prometheus_client` parser (Scripts/check-metrics.py).
public final class ServerMetrics: Sendable {
    /// Request numbers, one shard per event loop (see `RequestStats`).
    private let requestShards = Mutex<[ObjectIdentifier: RequestStats]>([:])
    private let process = ProcessMetrics()

    public init() {}

    /// The request numbers of connections served by `loop` (asked once per connection).
    public func requests(on loop: any EventLoop) -> RequestStats {
        requestShards.withLock { shards in
            if let existing = shards[ObjectIdentifier(loop)] { return existing }
            let made = RequestStats(operations: PortierService.operations)
            shards[ObjectIdentifier(loop)] = made
            return made
        }
    }

    /// The Prometheus text exposition, after reading the pool, the index and the process.
    public func render(service: PortierService, connections open: Int, inFlight working: Int) -> String {
        var text = PrometheusText()
        text.gauge("portier_build_info", "The running build: its version (value 1).", [(#"version="\#(PortierVersion.current)""#, 1)])
        text.gauge("portier_connections", "Client connections open now, both sockets.", [("", Double(open))])
        text.gauge("portier_requests_in_flight", "Requests being answered now.", [("", Double(working))])
        let usage = service.databaseUsage
        text.gauge("portier_db_pool_connections", "Database connections of the pool by state.",
                   [(#"state="open""#, Double(usage.open)), (#"state="idle""#, Double(usage.idle))])
        text.gauge("portier_db_pool_waiting_requests", "Requests waiting for a database connection.", [("", Double(usage.waiting))])
        text.gauge("portier_environment_turns",
                   "Environments with an administrative change in progress on this instance (held), and changes queued behind them (waiting).",
                   [(#"state="held""#, Double(usage.turnsHeld)), (#"state="waiting""#, Double(usage.turnsWaiting))])
        let index = service.permissionIndex
        text.gauge("portier_watches", "Watches open now (R-WAT-1).", [("", Double(service.openWatches))])
        text.counter("portier_watch_frames_total", "Event frames handed to watches.", [("", Double(service.watchFramesSent))])
        text.gauge("portier_index_environments", "Environments loaded in the permission index.", [("", Double(index.count))])
        text.gauge("portier_index_bytes", "Estimated memory of the permission index, in bytes.", [("", Double(index.approximateBytes))])
        let lookups = index.hitsAndMisses
        text.counter("portier_index_lookups_total", "Index lookups of an environment, found loaded (hit) or not (miss).",
                     [(#"result="hit""#, Double(lookups.hits)), (#"result="miss""#, Double(lookups.misses))])
        let lag = service.synchronisationLag
        text.histogram("portier_index_catchup_seconds",
                       "From hearing of another instance's commit (NOTIFY) to having applied it here: the revision lag between instances.",
                       bounds: SynchronisationLag.bounds, buckets: lag.buckets.map(Int64.init),
                       sum: Double(lag.total.components.seconds) + Double(lag.total.components.attoseconds) / 1e18)
        let watchDelay = service.watchDelay
        text.histogram("portier_watch_delay_seconds",
                       "From hearing of a commit (this instance's, or another's NOTIFY) to handing its event frames to the watching connections.",
                       bounds: SynchronisationLag.bounds, buckets: watchDelay.buckets.map(Int64.init),
                       sum: Double(watchDelay.total.components.seconds) + Double(watchDelay.total.components.attoseconds) / 1e18)
        process.render(into: &text)
        let shards = requestShards.withLock { Array($0.values) }
        return RequestStats.render(shards, operations: PortierService.operations) + text.output
    }
}

/// Builds the Prometheus text format: `# HELP` and `# TYPE` once per family.
struct PrometheusText {
    private(set) var output = ""

    mutating func gauge(_ name: String, _ help: String, _ samples: [(labels: String, value: Double)]) {
        family(name, help, "gauge", samples)
    }

    mutating func counter(_ name: String, _ help: String, _ samples: [(labels: String, value: Double)]) {
        family(name, help, "counter", samples)
    }

    /// `buckets`: counts per bucket, not cumulative, the last one +Inf.
    mutating func histogram(_ name: String, _ help: String, bounds: [Double], buckets: [Int64], sum: Double) {
        output += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative: Int64 = 0
        for (i, count) in buckets.enumerated() {
            cumulative += count
            output += "\(name)_bucket{le=\"\(i < bounds.count ? "\(bounds[i])" : "+Inf")\"} \(cumulative)\n"
        }
        output += "\(name)_sum \(sum)\n\(name)_count \(cumulative)\n"
    }

    private mutating func family(_ name: String, _ help: String, _ type: String, _ samples: [(labels: String, value: Double)]) {
        output += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for sample in samples {
            output += name + (sample.labels.isEmpty ? "" : "{\(sample.labels)}") + " \(Self.format(sample.value))\n"
        }
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        return value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
    }
}
