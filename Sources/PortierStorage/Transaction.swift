import PortierDomain
import Synchronization

/// A database transaction in progress, handed to the body of `ConnectionPool.transaction`.
///
/// Every statement takes its values as parameters. The environments in scope are
/// set with `set_config(..., true)`, i.e. `SET LOCAL`: they end with the transaction.
public struct Transaction: @unchecked Sendable {
    public let connection: PostgresConnection
    let state: TransactionState

    /// Our own SQLSTATE-like marker for "the connection died before BEGIN ran".
    static let notStartedState = "P0NS0"

    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) throws -> QueryResult {
        if !state.wrote.withLock({ $0 }), Self.writes(sql) { state.wrote.withLock { $0 = true } }
        return try connection.query(sql, parameters)
    }

    /// Whether a statement changes rows (its first keyword). Only such statements
    /// can leave index changes behind for the safety net to stamp.
    static func writes(_ sql: String) -> Bool {
        let head = sql.utf8.drop(while: { $0 == 0x20 || $0 == 0x0A }).prefix(6)
        return head.elementsEqual("INSERT".utf8) || head.elementsEqual("UPDATE".utf8) || head.elementsEqual("DELETE".utf8)
    }

    /// Narrows or widens what row-level security lets this transaction see.
    public func setEnvironments(_ environments: [EnvironmentID]) throws {
        try query(
            "SELECT set_config('app.environments', $1, true)",
            [BigIntArray(environments.map(\.raw))]
        )
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

    /// Safety net before COMMIT: an environment whose index-relevant rows changed
    /// in this transaction but whose revision was not bumped gets bumped now, so
    /// no change can stay invisible to the indexes.
    func bumpForgottenEnvironments() throws {
        guard state.wrote.withLock({ $0 }), !state.restrictedRole.withLock({ $0 }) else { return }
        let forgotten = try query("SELECT DISTINCT environment_id FROM index_changes WHERE revision IS NULL ORDER BY 1").rows
        for row in forgotten {
            let environment = EnvironmentID(try row.int64("environment_id"))
            if try query("SELECT 1 FROM environments WHERE environment_id = $1", [environment.raw]).rows.isEmpty {
                // Deleted with everything in it: nothing left to index.
                try query("DELETE FROM index_changes WHERE environment_id = $1 AND revision IS NULL", [environment.raw])
            } else {
                _ = try bumpRevision(environment)
            }
        }
    }

    static func run<R>(
        on connection: PostgresConnection, begin: String, environments: [EnvironmentID], locking: EnvironmentID? = nil,
        state: TransactionState, _ body: (Transaction) throws -> R
    ) throws -> R {
        // BEGIN, the environment scope and the row lock in one round trip; the ids
        // are integers of our own type, so writing them into the statement is safe.
        let scope = environments.isEmpty ? "" : "; SET LOCAL app.environments = '{\(environments.map { String($0.raw) }.joined(separator: ","))}'"
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
            try tx.bumpForgottenEnvironments()
            try connection.execute("COMMIT")
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

    init(readOnly: Bool = false) { restrictedRole = Mutex(readOnly) }
}
