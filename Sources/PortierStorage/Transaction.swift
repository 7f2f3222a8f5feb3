import PortierIndex
import PortierDomain
import Synchronization

/// A database transaction in progress, handed to the body of `ConnectionPool.transaction`.
///
/// Every statement takes its values as parameters. The environments in scope are
/// set with `SET LOCAL`: they end with the transaction.
public struct Transaction: @unchecked Sendable {
    public let connection: PostgresConnection
    let state: TransactionState

    /// Our own SQLSTATE-like marker for "the connection died before BEGIN ran".
    static let notStartedState = "P0NS0"

    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) throws -> QueryResult {
        try query(sql, parameters, carryingAudit: false)
    }

    /// `carryingAudit`: the statement writes the deferred audit event itself
    /// (the revision bump); any other first writes it (see `audit`).
    func query(_ sql: String, _ parameters: [(any PostgresBindable)?], carryingAudit: Bool) throws -> QueryResult {
        if !carryingAudit { try flushAudit() }
        if Self.writes(sql) {
            state.wrote.withLock { $0 = true }
            state.unstampedChanges.withLock { $0 = true }  // until a bump says otherwise
        }
        return try connection.query(sql, parameters)
    }

    /// Whether a statement changes rows (its first keyword). Only such statements
    /// can leave index changes behind for the safety net to stamp.
    static func writes(_ sql: String) -> Bool {
        let head = sql.utf8.drop(while: { $0 == 0x20 || $0 == 0x0A }).prefix(6)
        return head.elementsEqual("INSERT".utf8) || head.elementsEqual("UPDATE".utf8) || head.elementsEqual("DELETE".utf8)
    }

    /// Narrows or widens what row-level security lets this transaction see.
    /// A `SET LOCAL` statement, like the one in the BEGIN batch, not a
    /// `set_config()` call: Citus propagates `SET LOCAL` to the shards
    /// (`citus.propagate_set_commands = local`) but not function calls, so a
    /// scope set by `set_config` would hide every row of distributed tables.
    /// The ids are integers of our own type: writing them into the statement is safe.
    public func setEnvironments(_ environments: [EnvironmentID]) throws {
        try flushAudit()
        try connection.execute(Self.scopeStatement(environments))
    }

    /// `SET LOCAL app.environments = '{1,2}'`.
    static func scopeStatement(_ environments: [EnvironmentID]) -> String {
        "SET LOCAL app.environments = '{\(environments.map { String($0.raw) }.joined(separator: ","))}'"
    }

    /// Switches to the mailer role for the rest of the transaction: it may read and
    /// acknowledge every environment's outbox, and touch nothing else.
    public func becomeMailer() throws {
        try connection.execute("SET LOCAL ROLE \(Schema.mailerRole)")
        state.restrictedRole.withLock { $0 = true }
    }

    /// Switches to the janitor role: it may only prune the index change log.
    public func becomeJanitor() throws {
        try connection.execute("SET LOCAL ROLE \(Schema.janitorRole)")
        state.restrictedRole.withLock { $0 = true }
    }

    /// Safety net before COMMIT: an environment whose index-relevant rows or
    /// permission facts changed in this transaction but whose revision was not
    /// bumped gets bumped now, so no change can stay invisible to the indexes
    /// or to the watches.
    func bumpForgottenEnvironments() throws {
        guard state.wrote.withLock({ $0 }), !state.restrictedRole.withLock({ $0 }),
              state.unstampedChanges.withLock({ $0 }) else { return }
        let forgotten = try query(
            """
            SELECT environment_id FROM index_changes WHERE revision IS NULL
            UNION SELECT environment_id FROM permission_events WHERE revision IS NULL ORDER BY 1
            """
        ).rows
        for row in forgotten {
            let environment = EnvironmentID(try row.int64("environment_id"))
            if try query("SELECT 1 FROM environments WHERE environment_id = $1", [environment.raw]).rows.isEmpty {
                // Deleted with everything in it: nothing left to index.
                try query("DELETE FROM index_changes WHERE environment_id = $1 AND revision IS NULL", [environment.raw])
                try query("DELETE FROM permission_events WHERE environment_id = $1 AND revision IS NULL", [environment.raw])
            } else {
                _ = try bumpRevision(environment)
            }
        }
    }

    /// Commits, reading first, for each environment this transaction bumped whose
    /// index the instance holds (at revision `base`), what changed since `base`:
    /// read here, under the row lock of the bump, it is exactly the new
    /// revision's content. The last delta shares its round trip with COMMIT
    /// (`queryThenCommit`). Anything but a plain delta (too large, not visible
    /// in the current scope) is left out: the catch-up reads it after commit.
    func commit(readingDeltasAfter base: ((EnvironmentID) -> Int64?)?) throws {
        var wanted: [(environment: EnvironmentID, from: Int64, revision: Int64)] = []
        if let base, !state.restrictedRole.withLock({ $0 }) {
            var latest: [EnvironmentID: Int64] = [:]
            for token in state.bumped.withLock({ $0 }) { latest[token.environment] = max(latest[token.environment] ?? 0, token.revision) }
            for (environment, revision) in latest.sorted(by: { $0.key.raw < $1.key.raw }) {
                if let from = base(environment), from < revision { wanted.append((environment, from, revision)) }
            }
        }
        func keep(_ outcome: DeltaOutcome, _ revision: Int64) {
            guard case .delta(let delta) = outcome, delta.revision == revision else { return }
            state.deltas.withLock { $0[delta.environment] = delta }
        }
        guard let last = wanted.popLast() else {
            try connection.execute("COMMIT")
            return
        }
        for w in wanted { keep(try indexDelta(w.environment, after: w.from), w.revision) }
        let rows = try connection.queryThenCommit(Self.deltaStatement, [last.environment.raw, last.from, Self.maximumDeltaChanges + 1]).rows
        keep(try Self.delta(last.environment, after: last.from, from: rows), last.revision)
    }

    static func run<R>(
        on connection: PostgresConnection, begin: String, environments: [EnvironmentID], locking: EnvironmentID? = nil,
        state: TransactionState, deltasAfter: ((EnvironmentID) -> Int64?)? = nil, _ body: (Transaction) throws -> R
    ) throws -> R {
        // BEGIN, the environment scope and the row lock in one round trip; the ids
        // are integers of our own type, so writing them into the statement is safe.
        let scope = environments.isEmpty ? "" : "; " + scopeStatement(environments)
        let lock = locking.map { "; SELECT 1 FROM environments WHERE environment_id = \($0.raw) FOR UPDATE" } ?? ""
        do {
            try connection.execute(begin + scope + lock)
        } catch let error as DatabaseError where error.kind == .connection {
            throw DatabaseError(kind: .connection, sqlState: notStartedState, message: error.message)
        } catch {
            // The lock can fail (a deadlock, a timeout): never hand back an aborted transaction.
            if connection.isHealthy { try? connection.execute("ROLLBACK") }
            throw error
        }
        let tx = Transaction(connection: connection, state: state)
        do {
            let result = try body(tx)
            try tx.flushAudit()
            try tx.bumpForgottenEnvironments()
            try tx.commit(readingDeltasAfter: deltasAfter)
            return result
        } catch {
            if connection.isHealthy { try? connection.execute("ROLLBACK") }
            throw error
        }
    }
}

/// What a transaction learns about itself while it runs.
final class TransactionState: Sendable {
    /// Revisions this transaction advanced, in order.
    let bumped = Mutex<[RevisionToken]>([])
    /// Whether it is read-only, or switched to a role that cannot read the change
    /// log: either way it changes nothing the indexes follow.
    let restrictedRole: Mutex<Bool>
    /// Whether an INSERT, UPDATE or DELETE ran.
    let wrote = Mutex(false)
    /// Whether change-log rows may be left unstamped: set by every write,
    /// cleared by a bump that found none of other environments' left.
    let unstampedChanges = Mutex(false)
    /// An audit event not written yet (see `Transaction.audit`).
    let pendingAudit = Mutex<[(any PostgresBindable)?]?>(nil)
    /// What changed in the environments it bumped, read before COMMIT.
    let deltas = Mutex<[EnvironmentID: EnvironmentDelta]>([:])

    init(readOnly: Bool = false) { restrictedRole = Mutex(readOnly) }
}
