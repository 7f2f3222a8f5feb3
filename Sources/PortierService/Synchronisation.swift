import Logging
import PortierDomain
import PortierStorage
import Synchronization

/// Keeps this instance's indexes current with changes committed by other
/// instances on the same database (LISTEN/NOTIFY, SPEC §12 "several instances").
final class Synchroniser: Sendable {
    private let indexes: IndexStore
    private let listener = Mutex<RevisionListener?>(nil)
    /// Environments with a catch-up queued, and the newest revision heard of (nil:
    /// whatever the database has): notifications for them coalesce.
    private let queued = Mutex<[EnvironmentID: Int64?]>([:])
    /// From hearing of another instance's commit to having applied it here.
    private let lag = Mutex(SynchronisationLag())

    /// This instance's pool name: its own commits' notifications are skipped
    /// (the change that committed applies its report, `PortierService.transaction`).
    private let instance: String

    init(indexes: IndexStore, instance: String) {
        self.indexes = indexes
        self.instance = instance
    }

    func start(conninfo: String, logger: Logger) {
        let listener = RevisionListener(
            conninfo: conninfo, logger: logger,
            onRevision: { [self] notice in
                let token = notice.token
                guard notice.instance != instance, let loaded = indexes.index.get(token.environment),
                      loaded.revision < token.revision else { return }
                catchUp(token.environment, to: token.revision)
            },
            onConnected: { [self] in
                // Notifications sent while disconnected are lost: re-check everything loaded.
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

    /// The catch-up lag so far; the maximum restarts at each call.
    func takeLag() -> SynchronisationLag {
        lag.withLock { current in
            defer { current.maximum = .zero }
            return current
        }
    }
}

/// How far behind other instances' commits this instance's indexes ran.
public struct SynchronisationLag: Sendable {
    /// Catch-ups done after another instance's commit.
    public var count = 0
    public var total: Duration = .zero
    /// The longest since it was last read.
    public var maximum: Duration = .zero

    mutating func add(_ took: Duration) {
        count += 1
        total += took
        maximum = max(maximum, took)
    }
}
