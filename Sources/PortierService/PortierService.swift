import Logging
import Synchronization
import PortierDomain
import PortierIndex
import PortierProtocol
import PortierStorage

/// The operations of SPEC §11, independent of any transport: a request in, a
/// reply out. Each mutation is one database transaction with its audit event,
/// outbox messages and revision bump.
public final class PortierService: Sendable {
    public let configuration: ServiceConfiguration
    public let pool: ConnectionPool
    let passwords: PasswordHasher
    /// Fair, bounded turns at the hasher (R-SEC-2).
    let hashTurns: FairQueue
    let throttle: LoginThrottle
    /// Which refused credential requests wait (R-SEC-2).
    let refusals: RefusalPacer
    let indexes: IndexStore
    let synchroniser: Synchroniser
    let logger: Logger

    public init(pool: ConnectionPool, configuration: ServiceConfiguration, logger: Logger) {
        self.pool = pool
        self.configuration = configuration
        self.logger = logger
        self.passwords = PasswordHasher(parameters: configuration.passwordHashing)
        self.hashTurns = FairQueue(slots: configuration.hashSlots, perKey: configuration.hashQueuePerKey, total: configuration.hashQueueTotal)
        self.throttle = LoginThrottle(limits: .init(
            perClient: configuration.loginFailuresPerClient, perAddress: configuration.loginFailuresPerAddress,
            windowSeconds: Double(configuration.loginWindowSeconds), maximumEntries: 100_000))
        self.refusals = RefusalPacer(burst: configuration.refusalBurst, perSecond: configuration.refusalsPerSecond)
        let indexes = IndexStore(index: PermissionIndex(budgetBytes: configuration.indexBudgetBytes), pool: pool, logger: logger)
        self.indexes = indexes
        self.synchroniser = Synchroniser(indexes: indexes)
        // A mutation's reply waits until this instance's indexes show it (R-PRM-5).
        pool.onCommit(
            readingDeltasAfter: { indexes.revision(of: $0) },
            committing: { indexes.committing($0) },
            abandoned: { indexes.settled($0) }
        ) { report in await indexes.committed(report) }
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
            let claims = try await pool.transaction { tx in try tx.allDomainClaims() }
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

    /// Catch-ups after other instances' commits, for metrics (the maximum restarts at each read).
    public func takeSynchronisationLag() -> SynchronisationLag { synchroniser.takeLag() }

    public func shutdown() async {
        await synchroniser.stop()
        await passwords.shutdown()
    }

    /// Answers one request. Never throws: every failure becomes an error reply.
    public func handle(_ request: Request, context: RequestContext) async -> Reply {
        do {
            let output = try await dispatch(request, context: context)
            return .success(request.id, output.result, revision: output.revision)
        } catch let error as PortierError {
            return .failure(request.id, error)
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

    /// Every operation by wire name.
    public static let operations: [String] = [
        "hello", "ping", "signup", "user.activate", "user.authenticate", "environment.get",
        "outbox.list", "outbox.ack",
        "user.invite", "user.resend_invitation", "user.get", "user.list", "user.set_role", "user.block",
        "user.unblock", "user.remove", "user.email.add", "user.email.verify", "user.email.remove",
        "audit.list", "support.appoint_admin",
        "user.offboard", "organisation.create", "organisation.activate", "organisation.update", "organisation.get",
        "organisation.list", "member.add", "member.set_role", "member.remove", "member.list", "partnership.propose",
        "partnership.accept", "partnership.decline", "partnership.end", "partnership.list", "inbox.list",
        "inbox.accept", "inbox.decline", "check", "check.bulk", "lookup.organisations", "lookup.users",
        "support.metrics", "user.password.forgot", "user.password.reset", "user.password.change",
    ]

    /// Renders the Prometheus text for `support.metrics`; set by the transport,
    /// which owns the request metrics. (A class around the closure: a closure
    /// kept directly in a Mutex gains two thunks at every `withLock { $0 }`.)
    public let metricsText = Mutex<MetricsRenderer?>(nil)

    private func dispatch(_ request: Request, context: RequestContext) async throws -> OperationOutput {
        if request.op.hasPrefix("support."), context.socket != .support {
            throw PortierError.forbidden("\(request.op) is accepted only on the support socket")
        }
        switch request.op {
        case "hello": return try hello(request, context: context)
        case "ping": return try ping(request)
        case "signup": return try await signup(request)
        case "user.activate": return try await activate(request, context: context)
        case "user.authenticate": return try await authenticate(request, context: context)
        case "environment.get": return try await environmentGet(request)
        case "outbox.list": return try await outboxList(request)
        case "outbox.ack": return try await outboxAck(request)
        case "user.invite": return try await invite(request)
        case "user.resend_invitation": return try await resendInvitation(request)
        case "user.get": return try await userGet(request)
        case "user.list": return try await userList(request)
        case "user.set_role": return try await setRole(request)
        case "user.block": return try await block(request)
        case "user.unblock": return try await unblock(request)
        case "user.remove": return try await remove(request)
        case "user.email.add": return try await emailAdd(request)
        case "user.email.verify": return try await emailVerify(request)
        case "user.email.remove": return try await emailRemove(request)
        case "audit.list": return try await auditList(request)
        case "support.appoint_admin": return try await appointAdministrator(request, context: context)
        case "user.offboard": return try await offboard(request)
        case "organisation.create": return try await organisationCreate(request)
        case "organisation.activate": return try await organisationActivate(request)
        case "organisation.update": return try await organisationUpdate(request)
        case "organisation.get": return try await organisationGet(request)
        case "organisation.list": return try await organisationList(request)
        case "member.add": return try await memberAdd(request)
        case "member.set_role": return try await memberSetRole(request)
        case "member.remove": return try await memberRemove(request)
        case "member.list": return try await memberList(request)
        case "partnership.propose": return try await partnershipPropose(request)
        case "partnership.accept": return try await partnershipAnswer(request, accept: true)
        case "partnership.decline": return try await partnershipAnswer(request, accept: false)
        case "partnership.end": return try await partnershipEnd(request)
        case "partnership.list": return try await partnershipList(request)
        case "inbox.list": return try await inboxList(request)
        case "inbox.accept": return try await inboxAnswer(request, accept: true)
        case "inbox.decline": return try await inboxAnswer(request, accept: false)
        case "check": return try await check(request)
        case "check.bulk": return try await checkBulk(request)
        case "lookup.organisations": return try await lookupOrganisations(request)
        case "lookup.users": return try await lookupUsers(request)
        case "user.password.forgot": return try await passwordForgot(request)
        case "user.password.reset": return try await passwordReset(request, context: context)
        case "user.password.change": return try await passwordChange(request, context: context)
        case "support.metrics":
            try request.params.rejectUnknownKeys(allowed: [])
            return .result(["text": .string(metricsText.withLock { $0 }?.render() ?? "")])
        default: throw PortierError(.unknownOp, "unknown operation \"\(request.op)\"")
        }
    }
}

extension OperationOutput {
    static func result(_ result: JSONObject, revision: RevisionToken? = nil) -> OperationOutput {
        OperationOutput(result: result, revision: revision?.description)
    }
}

/// What renders the metrics text for `support.metrics`.
public final class MetricsRenderer: Sendable {
    let render: @Sendable () -> String
    public init(_ render: @escaping @Sendable () -> String) { self.render = render }
}
