import PortierIndex
import Logging
import NIOPosix
import PortierDomain
import Synchronization

/// How to reach PostgreSQL and how many connections to keep.
public struct DatabaseConfiguration: Sendable {
    /// A libpq connection string or URI; empty means libpq's defaults (`PG*` variables).
    public var conninfo: String
    /// Most connections open at once; also the number of threads doing blocking libpq calls.
    public var poolSize: Int
    /// The role every request runs as (`SET ROLE` at connect). It owns nothing and
    /// is not a superuser, so row-level security applies (R-ENV-1).
    public var applicationRole: String
    /// Longest a statement of a request's transaction may run (`statement_timeout`,
    /// set in each transaction; migrations are not bound by it). Default 10 s: an
    /// index load of the load generator's largest environment takes milliseconds.
    public var statementTimeout: Duration
    /// Longest a request's transaction waits for a row lock (`lock_timeout`).
    /// Default 5 s: administrative changes of one environment take turns before
    /// they lock, so only other instances' changes are waited for here.
    public var lockTimeout: Duration
    /// Longest a request waits for a pooled connection. Default 5 s.
    public var connectionWaitTimeout: Duration

    /// Connections by default (see `portierd run --pool-size`). Measured on two
    /// cores under `portier-load`: 16 made changes wait less for a connection but
    /// made reads slower (more PostgreSQL work competing for the same cores), at
    /// the same throughput; 8 favours the reads, which are most of the traffic.
    public static let defaultPoolSize = 8

    public init(
        conninfo: String, poolSize: Int = defaultPoolSize, applicationRole: String = Schema.applicationRole,
        statementTimeout: Duration = .seconds(10), lockTimeout: Duration = .seconds(5), connectionWaitTimeout: Duration = .seconds(5)
    ) {
        self.conninfo = conninfo
        self.poolSize = poolSize
        self.applicationRole = applicationRole
        self.statementTimeout = statementTimeout
        self.lockTimeout = lockTimeout
        self.connectionWaitTimeout = connectionWaitTimeout
    }

    /// The `SET LOCAL`s every request transaction starts with (one round trip with BEGIN).
    var transactionSettings: String {
        "; SET LOCAL ROLE " + Schema.quoteIdentifier(applicationRole)
            + "; SET LOCAL statement_timeout = \(Self.milliseconds(statementTimeout))"
            + "; SET LOCAL lock_timeout = \(Self.milliseconds(lockTimeout))"
    }

    static func milliseconds(_ d: Duration) -> Int64 {
        max(1, d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
    }
}

/// A bounded pool of libpq connections whose blocking calls run on a dedicated
/// `NIOThreadPool`, never on the Swift concurrency pool.
///
/// Broken connections are dropped on release and replaced on demand, so service
/// resumes by itself once PostgreSQL is back.
public final class ConnectionPool: Sendable {
    public let configuration: DatabaseConfiguration
    private let threads: NIOThreadPool
    private let state = Mutex(State())
    private let logger: Logger
    private let turns = EnvironmentTurns()
    /// This pool's name in the revision notifications its commits send (`SET
    /// LOCAL portier.instance` in every transaction): the instance that
    /// committed a change applies it from `change`'s report, and ignores its
    /// own NOTIFY (see `RevisionListener`).
    public let instance: String
    private let transactionSettings: String

    /// Connections open, idle, and requests waiting for one (for metrics).
    public var usage: (open: Int, idle: Int, waiting: Int) {
        state.withLock { s in (s.open, s.idle.count, s.waiters.count) }
    }

    private struct State: ~Copyable {
        var idle: [PostgresConnection] = []
        var open = 0
        /// In order of service: those with priority first, then arrival order.
        var waiters: [Waiter] = []
        var nextWaiter: UInt64 = 0
        var closed = false
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Grant, Never>
        let priority: Bool
    }

    /// What an acquirer is given: a connection, leave to open a new one, or no.
    private enum Grant: @unchecked Sendable {
        case connection(PostgresConnection)
        case open
        case closed
        case timedOut
        case cancelled
    }

    public init(configuration: DatabaseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        threads = NIOThreadPool(numberOfThreads: max(1, configuration.poolSize))
        threads.start()
        instance = String(UInt64.random(in: 1...UInt64.max), radix: 36)
        transactionSettings = configuration.transactionSettings + "; SET LOCAL portier.instance = '\(instance)'"
    }

    /// Closes idle connections and stops the threads; later calls fail with `unavailable`.
    public func shutdown() async {
        let (idle, waiters) = state.withLock { s in
            s.closed = true
            defer { s.idle = []; s.waiters = [] }
            return (s.idle, s.waiters)
        }
        for w in waiters { w.continuation.resume(returning: .closed) }
        _ = idle
        try? await threads.shutdownGracefully()
    }

    /// Opens every connection of the pool now (those that can be opened), so that
    /// the first requests after a start do not pay for connecting; returns how many
    /// are open.
    @discardableResult
    public func openAll() async -> Int {
        var held: [PostgresConnection] = []
        for _ in 0..<configuration.poolSize {
            guard let connection = try? await acquire(priority: false) else { break }
            held.append(connection)
        }
        for connection in held { release(connection) }
        return held.count
    }

    /// Runs `body` with a connection on a pool thread. With `priority`, it goes
    /// ahead of the requests waiting without it.
    public func withConnection<R: Sendable>(priority: Bool = false, _ body: @escaping @Sendable (PostgresConnection) throws -> R) async throws -> R {
        let connection = try await acquire(priority: priority)
        do {
            let result = try await threads.runIfActive { try body(connection) }
            release(connection)
            return result
        } catch {
            release(connection)
            throw error
        }
    }

    /// Runs `body` in one transaction scoped to `environments` (row-level security
    /// sees only their rows; the scope can be widened inside with
    /// `Transaction.setEnvironments`). Commits if `body` returns, rolls back if it
    /// throws. Serialization failures are retried; a connection found dead before
    /// anything ran is replaced once.
    ///
    /// `locking`: an environment whose row the transaction locks before `body`
    /// runs (in the same round trip as BEGIN), for changes that must see who
    /// administers it and how many invitations it sent without races (R-USR-8,
    /// R-USR-13). Such transactions take turns per environment on this instance
    /// before they take a connection (`EnvironmentTurns`); the turn ends at COMMIT.
    ///
    /// `priority`: ahead of the others in the queue for a connection, for work
    /// that others already wait on (an index catch-up after commits). A transaction
    /// holding a turn always has it.
    public func transaction<R: Sendable>(
        environments: [EnvironmentID] = [],
        locking: EnvironmentID? = nil,
        isolation begin: String = "BEGIN",
        priority: Bool = false,
        _ body: @escaping @Sendable (Transaction) throws -> R
    ) async throws -> R {
        try await change(environments: environments, locking: locking, isolation: begin, priority: priority, body).value
    }

    /// `transaction`, returning what the commit advanced with the result: its
    /// revisions and, for each environment `deltasAfter` names a revision for
    /// (the caller's index of it is at that revision; nil: not held), what
    /// changed since, read inside the transaction before COMMIT (under the
    /// bump's row lock the delta is exactly what the new revision adds). The
    /// caller applies the report to its index before it answers (R-PRM-5); this
    /// instance's NOTIFY of the same commit is marked as its own (`instance`).
    public func change<R: Sendable>(
        environments: [EnvironmentID] = [],
        locking: EnvironmentID? = nil,
        isolation begin: String = "BEGIN",
        priority: Bool = false,
        deltasAfter: (@Sendable (EnvironmentID) -> Int64?)? = nil,
        _ body: @escaping @Sendable (Transaction) throws -> R
    ) async throws -> (value: R, report: CommitReport) {
        let priority = priority || ReadLane.isRead
        if let locking {
            // Holding the turn, it goes first in the pool queue: the environment's
            // other changes are waiting for it.
            return try await turns.run(locking) {
                try await run(environments: environments, locking: locking, begin: begin, priority: true, deltasAfter: deltasAfter, body)
            }
        }
        return try await run(environments: environments, locking: nil, begin: begin, priority: priority, deltasAfter: deltasAfter, body)
    }

    /// The transaction with its retries; returns what it advanced.
    private func run<R: Sendable>(
        environments: [EnvironmentID], locking: EnvironmentID?, begin: String, priority: Bool,
        deltasAfter: (@Sendable (EnvironmentID) -> Int64?)?, _ body: @escaping @Sendable (Transaction) throws -> R
    ) async throws -> (value: R, report: CommitReport) {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let state = TransactionState(readOnly: begin.contains("READ ONLY"))
                // The role and the timeouts are set inside every transaction, so that
                // no request depends on session state (transaction-mode poolers, see Deploy/).
                let start = begin + transactionSettings
                let result = try await withConnection(priority: priority) { connection in
                    try Transaction.run(on: connection, begin: start, environments: environments, locking: locking, state: state,
                                        deltasAfter: deltasAfter, body)
                }
                return (result, CommitReport(revisions: state.bumped.withLock { $0 }, deltas: state.deltas.withLock { $0 }))
            } catch let error as DatabaseError where attempt < 3 {
                switch error.kind {
                case .retryable: continue
                case .connection where error.sqlState == Transaction.notStartedState: continue
                default: throw error
                }
            }
        }
    }

    /// Environments whose locking transactions hold or wait for their turn (for metrics).
    public var turnUsage: (held: Int, waiting: Int) { turns.usage }

    /// Runs `body` in a read-only REPEATABLE READ transaction: every query sees
    /// the database at one instant (index loads and deltas need that).
    public func snapshot<R: Sendable>(
        environments: [EnvironmentID],
        priority: Bool = false,
        _ body: @escaping @Sendable (Transaction) throws -> R
    ) async throws -> R {
        try await transaction(environments: environments, isolation: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", priority: priority, body)
    }

    /// A connection, waiting in line if none is free: at most the connection
    /// wait timeout (then `unavailable`), and not at all once the task is
    /// cancelled (its client went away).
    private func acquire(priority: Bool) async throws -> PostgresConnection {
        let grant: Grant? = state.withLock { s in
            if s.closed { return .closed }
            if let c = s.idle.popLast() { return .connection(c) }
            if s.open < configuration.poolSize { s.open += 1; return .open }
            return nil
        }
        let decided: Grant
        if let grant { decided = grant } else {
            let id = state.withLock { s in s.nextWaiter &+= 1; return s.nextWaiter }
            let timer = Mutex<Task<Void, Never>?>(nil)
            decided = await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let immediate: Grant? = state.withLock { s in
                        if s.closed { return .closed }
                        if let c = s.idle.popLast() { return .connection(c) }
                        if s.open < configuration.poolSize { s.open += 1; return .open }
                        if Task.isCancelled { return .cancelled }
                        let position = priority ? (s.waiters.firstIndex { !$0.priority } ?? s.waiters.count) : s.waiters.count
                        s.waiters.insert(Waiter(id: id, continuation: continuation, priority: priority), at: position)
                        return nil
                    }
                    if let immediate {
                        continuation.resume(returning: immediate)
                        return
                    }
                    let wait = configuration.connectionWaitTimeout
                    timer.withLock { $0 = Task { [weak self] in
                        guard (try? await Task.sleep(for: wait)) != nil else { return }
                        self?.abandonWait(id, .timedOut)
                    } }
                }
            } onCancel: {
                abandonWait(id, .cancelled)
            }
            timer.withLock { $0?.cancel() }
        }
        switch decided {
        case .connection(let c): return c
        case .closed: throw DatabaseError(kind: .connection, sqlState: nil, message: "the connection pool is closed")
        case .cancelled: throw CancellationError()
        case .timedOut:
            logger.warning("a request waited too long for a database connection", metadata: [
                "timeout_ms": "\(DatabaseConfiguration.milliseconds(configuration.connectionWaitTimeout))", "pool_size": "\(configuration.poolSize)",
            ])
            throw DatabaseError(
                kind: .timeout, sqlState: nil,
                message: "no database connection became free within \(DatabaseConfiguration.milliseconds(configuration.connectionWaitTimeout)) ms")
        case .open:
            do {
                let configuration = self.configuration
                return try await threads.runIfActive { try Self.open(configuration) }
            } catch {
                abandonSlot()
                logger.warning("cannot connect to PostgreSQL", metadata: ["error": "\(error)"])
                throw error
            }
        }
    }

    /// Takes a waiter out of the line (timed out or cancelled), if it is still in it.
    private func abandonWait(_ id: UInt64, _ outcome: Grant) {
        let waiter = state.withLock { s -> Waiter? in
            guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return s.waiters.remove(at: i)
        }
        waiter?.continuation.resume(returning: outcome)
    }

    private static func open(_ configuration: DatabaseConfiguration) throws -> PostgresConnection {
        let connection = try PostgresConnection(conninfo: configuration.conninfo)
        try connection.execute("SET ROLE \(Schema.quoteIdentifier(configuration.applicationRole))")
        return connection
    }

    private func release(_ connection: PostgresConnection) {
        let healthy = connection.isHealthy
        let waiter: (Waiter, Grant)? = state.withLock { s in
            if s.closed { s.open -= 1; return nil }
            guard let w = s.waiters.first else {
                if healthy { s.idle.append(connection) } else { s.open -= 1 }
                return nil
            }
            s.waiters.removeFirst()
            // A dead connection's slot goes to the waiter, who opens a fresh one.
            return (w, healthy ? .connection(connection) : .open)
        }
        if let (w, grant) = waiter { w.continuation.resume(returning: grant) }
    }

    private func abandonSlot() {
        let waiter = state.withLock { s -> Waiter? in
            guard let w = s.waiters.first else { s.open -= 1; return nil }
            s.waiters.removeFirst()
            return w
        }
        waiter?.continuation.resume(returning: .open)
    }
}

/// What a committed transaction advanced: its revision tokens, in order, and
/// for each environment whose index this instance holds, what changed since
/// that index's revision, read inside the transaction (see `change`).
public struct CommitReport: Sendable {
    public let revisions: [RevisionToken]
    public let deltas: [EnvironmentID: EnvironmentDelta]
}

/// Reads go ahead of changes in the queue for a connection: they are short,
/// and a read must not wait behind every change queued before it (issue 15:
/// under the mixed load, `inbox.list` waited as long as `member.add`). Set for
/// the duration of a read operation by the service (`ReadLane.$isRead`); every
/// transaction the task runs then queues with priority, as index catch-ups do.
public enum ReadLane {
    @TaskLocal public static var isRead = false
}
