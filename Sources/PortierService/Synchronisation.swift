import Logging
import PortierDomain
import PortierStorage
import Synchronization

/// Keeps this instance's indexes current with changes committed by other
/// instances on the same database (LISTEN/NOTIFY; docs/design.md, "Several instances").
final class Synchroniser: Sendable {
    private let indexes: IndexStore
    /// Hears every other instance's commit, for the watches (R-WAT-1).
    private let watches: WatchHub
    private let listener = Mutex<RevisionListener?>(nil)
    /// Environments with a catch-up queued, and the newest revision heard of (nil:
    /// whatever the database has): notifications for them coalesce.
    private let queued = Mutex<[EnvironmentID: Int64?]>([:])
    /// From hearing of another instance's commit to having applied it here.
    private let lag = Mutex(SynchronisationLag())

    /// This instance's pool name: its own commits' notifications are skipped
    /// (the change that committed applies its report, `PortierService.transaction`).
    private let instance: String

    init(indexes: IndexStore, watches: WatchHub, instance: String) {
        self.indexes = indexes
        self.watches = watches
        self.instance = instance
    }

    func start(conninfo: String, logger: Logger) {
        let listener = RevisionListener(
            conninfo: conninfo, logger: logger,
            onRevision: { [self] notice in
                let token = notice.token
                guard notice.instance != instance else { return }
                watches.heard([token])
                guard let loaded = indexes.index.get(token.environment),
                      loaded.revision < token.revision else { return }
                catchUp(token.environment, to: token.revision)
            },
            onConnected: { [self] in
                // Notifications sent while disconnected are lost: re-check everything loaded.
                watches.rescan()
                for environment in indexes.index.loaded().keys { catchUp(environment, to: nil) }
            }
        )
        self.listener.withLock { $0 = listener }
        listener.start()
    }

    func stop() async {
        await listener.withLock({ $0 })?.stop()
    }

    var listenerBackendPID: Int32 { listener.withLock { $0?.backendPID ?? 0 } }

    /// Queues one catch-up of `environment`, to `revision` (nil: to the database's).
    private func catchUp(_ environment: EnvironmentID, to revision: Int64? = nil) {
        let first = queued.withLock { queued in
            guard let pending = queued[environment] else {
                queued[environment] = .some(revision)
                return true
            }
            queued[environment] = .some(pending.flatMap { old in revision.map { max(old, $0) } })
            return false
        }
        guard first else { return }
        let heard = ContinuousClock.now
        Task { [self] in
            let target = queued.withLock { $0.removeValue(forKey: environment) } ?? nil
            if (try? await indexes.synchronise(environment, to: target)) != nil {
                let took = ContinuousClock.now - heard
                lag.withLock { $0.add(took) }
            }
        }
    }

    /// The catch-up lag so far (never reset: a histogram).
    var currentLag: SynchronisationLag { lag.withLock { $0 } }
}

/// How far behind other instances' commits this instance's indexes ran: from
/// hearing of a commit (NOTIFY) to having applied it, as a histogram.
public struct SynchronisationLag: Sendable {
    /// Upper bounds of the buckets, in seconds.
    public static let bounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Catch-ups done after another instance's commit.
    public private(set) var count = 0
    public private(set) var total: Duration = .zero
    /// Catch-ups per bucket (not cumulative); the last is +Inf.
    public private(set) var buckets = [Int](repeating: 0, count: bounds.count + 1)

    public init() {}

    mutating func add(_ took: Duration) {
        count += 1
        total += took
        let seconds = Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
        buckets[Self.bounds.firstIndex { seconds <= $0 } ?? Self.bounds.count] += 1
    }
}
