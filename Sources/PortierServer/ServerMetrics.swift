import CoreMetrics
import PortierDomain
import PortierService
import Prometheus
import Synchronization

/// What the server measures, in a Prometheus registry of its own (no global
/// metrics system: several servers in one process keep apart):
/// requests by operation and outcome, their latency, requests in flight,
/// connections; at each scrape also the database pool and the permission index.
///
/// Handles are made once per operation and outcome, so recording a request is a
/// dictionary read and two metric updates, no allocation.
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let operations: [String: OperationMetrics]
    private let unknownOperation: OperationMetrics
    let inFlight: CoreMetrics.Gauge
    let connections: CoreMetrics.Gauge
    private let pool: (open: CoreMetrics.Gauge, idle: CoreMetrics.Gauge, waiting: CoreMetrics.Gauge)
    private let index: (environments: CoreMetrics.Gauge, bytes: CoreMetrics.Gauge, hits: CoreMetrics.Counter, misses: CoreMetrics.Counter)
    private let lastIndexLookups = Mutex<(hits: UInt64, misses: UInt64)>((0, 0))

    struct OperationMetrics: Sendable {
        let ok: CoreMetrics.Counter
        let failures: [ErrorCode: CoreMetrics.Counter]
        let duration: CoreMetrics.Timer
    }

    public init() {
        let factory = PrometheusMetricsFactory(registry: registry)
        func operation(_ op: String) -> OperationMetrics {
            OperationMetrics(
                ok: CoreMetrics.Counter(label: "portier_requests_total", dimensions: [("op", op), ("code", "ok")], factory: factory),
                failures: Dictionary(uniqueKeysWithValues: ErrorCode.allCases.map { code in
                    (code, CoreMetrics.Counter(label: "portier_requests_total", dimensions: [("op", op), ("code", code.rawValue)], factory: factory))
                }),
                duration: CoreMetrics.Timer(label: "portier_request_duration_seconds", dimensions: [("op", op)], factory: factory)
            )
        }
        operations = Dictionary(uniqueKeysWithValues: PortierService.operations.map { ($0, operation($0)) })
        unknownOperation = operation("unknown")
        inFlight = CoreMetrics.Gauge(label: "portier_requests_in_flight", factory: factory)
        connections = CoreMetrics.Gauge(label: "portier_connections", factory: factory)
        pool = (CoreMetrics.Gauge(label: "portier_db_pool_connections", dimensions: [("state", "open")], factory: factory),
                CoreMetrics.Gauge(label: "portier_db_pool_connections", dimensions: [("state", "idle")], factory: factory),
                CoreMetrics.Gauge(label: "portier_db_pool_waiting_requests", factory: factory))
        index = (CoreMetrics.Gauge(label: "portier_index_environments", factory: factory),
                 CoreMetrics.Gauge(label: "portier_index_bytes", factory: factory),
                 CoreMetrics.Counter(label: "portier_index_lookups_total", dimensions: [("result", "hit")], factory: factory),
                 CoreMetrics.Counter(label: "portier_index_lookups_total", dimensions: [("result", "miss")], factory: factory))
    }

    /// One answered request.
    func record(op: String, code: ErrorCode?, nanoseconds: Int64) {
        let metrics = operations[op] ?? unknownOperation
        if let code { metrics.failures[code]?.increment() } else { metrics.ok.increment() }
        metrics.duration.recordNanoseconds(nanoseconds)
    }

    /// The Prometheus text exposition, after reading the pool and the index.
    public func render(service: PortierService, connections open: Int, inFlight working: Int) -> String {
        connections.record(open)
        inFlight.record(working)
        let usage = service.pool.usage
        pool.open.record(usage.open)
        pool.idle.record(usage.idle)
        pool.waiting.record(usage.waiting)
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
        return registry.emitToString()
    }
}
