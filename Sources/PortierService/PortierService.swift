import Logging
import PortierDomain
import PortierIndex
import PortierPasswords
import PortierProtocol
import PortierStorage
import Synchronization

/// The operations of docs/rules.md §11, independent of any transport: a request in, a
/// reply out. Each mutation is one database transaction with its audit event,
/// outbox messages and revision bump.
public final class PortierService: Sendable {
    /// The settings in force; a reload replaces those that can change while
    /// running (`reconfigure`). Read once per operation.
    public var configuration: ServiceConfiguration { settings.withLock { $0 } }
    private let settings: Mutex<ServiceConfiguration>
    public let pool: ConnectionPool
    let passwords: PasswordHasher
    /// Fair, bounded turns at the hasher (R-SEC-2).
    let hashTurns: FairQueue
    let throttle: LoginThrottle
    /// Which refused credential requests wait (R-SEC-2).
    let refusals: RefusalPacer
    let indexes: IndexStore
    let synchroniser: Synchroniser
    /// The watches of this instance and their feeder (R-WAT-1).
    let watchHub: WatchHub
    let logger: Logger

    public init(pool: ConnectionPool, configuration: ServiceConfiguration, logger: Logger) {
        self.pool = pool
        self.settings = Mutex(configuration)
        self.logger = logger
        self.passwords = PasswordHasher(parameters: configuration.passwordHashing)
        self.hashTurns = FairQueue(slots: configuration.hashSlots, perKey: configuration.hashQueuePerKey, total: configuration.hashQueueTotal)
        self.throttle = LoginThrottle(limits: .init(
            perClient: configuration.loginFailuresPerClient, perAddress: configuration.loginFailuresPerAddress,
            windowSeconds: Double(configuration.loginWindowSeconds), maximumEntries: 100_000))
        self.refusals = RefusalPacer(burst: configuration.refusalBurst, perSecond: configuration.refusalsPerSecond)
        let indexes = IndexStore(index: PermissionIndex(budgetBytes: configuration.indexBudgetBytes), pool: pool, logger: logger)
        self.indexes = indexes
        let watchHub = WatchHub(
            pool: pool, limits: .init(perConnection: configuration.watchesPerConnection, total: configuration.watchesTotal, pausing: configuration.pausePoints),
            logger: logger)
        self.watchHub = watchHub
        self.synchroniser = Synchroniser(indexes: indexes, watches: watchHub, instance: pool.instance)
    }

    /// What a reload may change while the service runs: limits and lifetimes read
    /// per request, and the shared mail domains. Everything set up once at
    /// start (the hasher's queues, the login throttle, the index budget) stays.
    public func reconfigure(_ change: (inout ReloadableSettings) -> Void) {
        settings.withLock { current in
            var reloadable = ReloadableSettings(current)
            change(&reloadable)
            reloadable.apply(to: &current)
        }
    }

    /// How the database is used, for metrics: the pool's connections and
    /// waiting requests, and the environments' turns (so that the server asks
    /// the service, not the storage behind it).
    public var databaseUsage: (open: Int, idle: Int, waiting: Int, turnsHeld: Int, turnsWaiting: Int) {
        let (open, idle, waiting) = pool.usage
        let (held, queued) = pool.turnUsage
        return (open, idle, waiting, held, queued)
    }

    /// Password hashes computed so far (for metrics and tests).
    public var passwordHashesComputed: Int { passwords.computed }

    /// The loaded permission indexes (for metrics and tests).
    public var permissionIndex: PermissionIndex { indexes.index }

    /// Starts following other instances' commits (a LISTEN connection of its own,
    /// to `conninfo` if given: it must reach PostgreSQL directly, not through a
    /// transaction-mode pooler; default: the pool's).
    public func startSynchronisation(conninfo: String? = nil) {
        synchroniser.start(conninfo: conninfo ?? pool.configuration.conninfo, logger: logger)
    }

    /// Logs which shared-mail list is in force and every existing claim on a
    /// domain that is now shared: such claims are kept (data never changes
    /// silently) but reported, so operators can decide (R-ENV-4).
    /// Returns the claims it reported.
    @discardableResult
    public func reportSharedMailDomains() async -> [(domain: String, environment: EnvironmentID)] {
        let shared = configuration.sharedMailDomains
        logger.info("shared mail domains", metadata: [
            "listed": "\(SharedMailDomains.listed.count)", "source": "\(SharedMailDomains.listSource)",
            "added": "\(shared.additions.count)", "not_shared": "\(shared.notShared.count)",
            "public_suffixes": "\(PublicSuffixList.source)",
        ])
        do {
            let claims = try await transaction { tx in try tx.allDomainClaims() }
            var reported: [(domain: String, environment: EnvironmentID)] = []
            for claim in claims {
                guard let reason = shared.reason(claim.domain) else { continue }
                logger.warning("a claimed domain is now shared: the claim is kept", metadata: [
                    "domain": "\(claim.domain)", "environment": "\(claim.environment.raw)", "reason": "\(reason.rawValue)",
                ])
                reported.append(claim)
            }
            return reported
        } catch {
            logger.error("could not read the domain claims for the shared-domain report", metadata: ["error": "\(error)"])
            return []
        }
    }

    /// The LISTEN connection's server pid (0 while reconnecting); for tests.
    public var listenerBackendPID: Int32 { synchroniser.listenerBackendPID }

    /// Catch-ups after other instances' commits, for metrics (a histogram, never reset).
    public var synchronisationLag: SynchronisationLag { synchroniser.currentLag }

    public func shutdown() async {
        await synchroniser.stop()
        await watchHub.stop()
        await passwords.shutdown()
    }

    /// Answers one request. Never throws: every failure becomes an error reply.
    public func handle(_ request: Request, context: RequestContext) async -> Reply {
        do {
            let output = try await dispatch(request, context: context)
            return .success(request.id, output.result, revision: output.revision)
        } catch let error as PortierError {
            return .failure(request.id, error)
        } catch let invalid as InvalidInput {
            return .failure(request.id, PortierError(invalid))
        } catch is CancellationError {
            // The client went away; nobody reads this.
            return .failure(request.id, .unavailable("the request was cancelled"))
        } catch let error as DatabaseError {
            let mapped = error.portierError
            if mapped.code == .internal || mapped.code == .unavailable {
                logger.error("request failed in the database", metadata: ["op": "\(request.op)", "error": "\(error)"])
            }
            return .failure(request.id, mapped)
        } catch {
            logger.error("request failed", metadata: ["op": "\(request.op)", "error": "\(error)"])
            return .failure(request.id, .internal())
        }
    }

    /// Every operation by wire name, in the registry's order.
    public static let operations: [String] = registry.map(\.name)

    private func dispatch(_ request: Request, context: RequestContext) async throws -> OperationOutput {
        guard let operation = Self.registryByName[request.op] else {
            throw PortierError(.unknownOp, "unknown operation \"\(request.op)\"")
        }
        if operation.supportSocketOnly, context.socket != .support {
            throw PortierError.forbidden("\(request.op) is accepted only on the support socket")
        }
        return try await ReadLane.$isRead.withValue(operation.reads) { try await operation.run(self, request, context) }
    }

    /// `support.metrics`: the Prometheus text, on the support socket.
    func supportMetrics(context: RequestContext) throws -> OperationOutput {
        guard let metrics = context.metrics else { throw PortierError.unavailable("no metrics where this request came from") }
        return .result(["text": .string(metrics.metricsText())])
    }
}

extension OperationOutput {
    static func result(_ result: JSONObject, revision: RevisionToken? = nil) -> OperationOutput {
        OperationOutput(result: result, revision: revision?.description)
    }
}
