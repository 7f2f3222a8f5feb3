import CoreMetrics
import NIOCore
import PortierDomain
import PortierService
import PortierTransport
import Prometheus
import Synchronization

/// What the server measures, in a Prometheus registry of its own (no global
/// metrics system: several servers in one process keep apart):
/// requests by operation and outcome, their latency, requests in flight,
/// connections; at each scrape also the database pool, the environments' turns
/// for administrative changes, and the permission index.
///
/// Requests are counted in `RequestStats` (atomics, for the hot path); the
/// rest lives in the registry and is read at scrape time.
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// Request numbers, one shard per event loop (see `RequestStats`).
    private let requestShards = Mutex<[ObjectIdentifier: RequestStats]>([:])
    let inFlight: CoreMetrics.Gauge
    let connections: CoreMetrics.Gauge
    private let pool: (open: CoreMetrics.Gauge, idle: CoreMetrics.Gauge, waiting: CoreMetrics.Gauge)
    private let turns: (held: CoreMetrics.Gauge, waiting: CoreMetrics.Gauge)
    private let index: (environments: CoreMetrics.Gauge, bytes: CoreMetrics.Gauge, hits: CoreMetrics.Counter, misses: CoreMetrics.Counter)
    private let lastIndexLookups = Mutex<(hits: UInt64, misses: UInt64)>((0, 0))

    public init() {
        let factory = PrometheusMetricsFactory(registry: registry)
        inFlight = CoreMetrics.Gauge(label: "portier_requests_in_flight", factory: factory)
        connections = CoreMetrics.Gauge(label: "portier_connections", factory: factory)
        pool = (CoreMetrics.Gauge(label: "portier_db_pool_connections", dimensions: [("state", "open")], factory: factory),
                CoreMetrics.Gauge(label: "portier_db_pool_connections", dimensions: [("state", "idle")], factory: factory),
                CoreMetrics.Gauge(label: "portier_db_pool_waiting_requests", factory: factory))
        turns = (CoreMetrics.Gauge(label: "portier_environment_turns", dimensions: [("state", "held")], factory: factory),
                 CoreMetrics.Gauge(label: "portier_environment_turns", dimensions: [("state", "waiting")], factory: factory))
        index = (CoreMetrics.Gauge(label: "portier_index_environments", factory: factory),
                 CoreMetrics.Gauge(label: "portier_index_bytes", factory: factory),
                 CoreMetrics.Counter(label: "portier_index_lookups_total", dimensions: [("result", "hit")], factory: factory),
                 CoreMetrics.Counter(label: "portier_index_lookups_total", dimensions: [("result", "miss")], factory: factory))
    }

    /// The request numbers of connections served by `loop` (asked once per connection).
    public func requests(on loop: any EventLoop) -> RequestStats {
        requestShards.withLock { shards in
            if let existing = shards[ObjectIdentifier(loop)] { return existing }
            let made = RequestStats(operations: PortierService.operations)
            shards[ObjectIdentifier(loop)] = made
            return made
        }
    }

    /// The Prometheus text exposition, after reading the pool and the index.
    public func render(service: PortierService, connections open: Int, inFlight working: Int) -> String {
        connections.record(open)
        inFlight.record(working)
        let usage = service.databaseUsage
        pool.open.record(usage.open)
        pool.idle.record(usage.idle)
        pool.waiting.record(usage.waiting)
        turns.held.record(usage.turnsHeld)
        turns.waiting.record(usage.turnsWaiting)
        let permissionIndex = service.permissionIndex
        index.environments.record(permissionIndex.count)
        index.bytes.record(permissionIndex.approximateBytes)
        let now = permissionIndex.hitsAndMisses
        let before = lastIndexLookups.withLock { last in
            defer { last = (now.hits, now.misses) }
            return last
        }
        index.hits.increment(by: Int64(now.hits &- before.hits))
        index.misses.increment(by: Int64(now.misses &- before.misses))
        let lag = service.takeSynchronisationLag()
        let seconds = { (d: Duration) in Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        let lagText = """
            # TYPE portier_index_catchups_total counter
            portier_index_catchups_total \(lag.count)
            # TYPE portier_index_catchup_seconds_sum counter
            portier_index_catchup_seconds_sum \(seconds(lag.total))
            # TYPE portier_index_catchup_seconds_max gauge
            portier_index_catchup_seconds_max \(seconds(lag.maximum))

            """
        let shards = requestShards.withLock { Array($0.values) }
        return RequestStats.render(shards, operations: PortierService.operations) + lagText + registry.emitToString()
    }
}
