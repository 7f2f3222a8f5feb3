import CLibPQ
import Foundation

/// One libpq connection. Its calls block: use it from one thread at a time,
/// never from the Swift concurrency pool (see `ConnectionPool`).
///
/// `@unchecked Sendable` because `PGconn *` is a raw pointer; the pool hands a
/// connection to exactly one caller at a time.
public final class PostgresConnection: @unchecked Sendable {
    private(set) var raw: OpaquePointer?  // internal: PostgresConnection+Copy.swift uses it
    private var prepared: [String: String] = [:]
    public let conninfo: String

    /// Connects; throws `DatabaseError` of kind `.connection` with libpq's message on failure.
    public init(conninfo: String) throws {
        self.conninfo = conninfo
        let conn = PQconnectdb(conninfo)
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            let message = conn.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            PQfinish(conn)
            throw DatabaseError(kind: .connection, sqlState: nil, message: message.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        raw = conn
    }

    deinit { PQfinish(raw) }

    /// Whether libpq still considers the connection usable.
    public var isHealthy: Bool { raw.map { PQstatus($0) == CONNECTION_OK } ?? false }

    /// The server process id, e.g. to kill it in a test.
    public var backendPID: Int32 { raw.map { PQbackendPID($0) } ?? 0 }

    /// Runs SQL without parameters; several statements may be separated by `;`.
    /// Only for fixed SQL (migrations, `BEGIN`): values always go through `query`.
    public func execute(_ sql: String) throws {
        let result = PQexec(raw, sql)
        defer { PQclear(result) }
        try check(result)
    }

    /// Runs one statement with parameters, prepared once per connection and reused.
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) throws -> QueryResult {
        let name = try preparedName(for: sql, parameterCount: parameters.count)
        let texts = parameters.map { $0?.postgresText }
        let result = withCStrings(texts) { pointers in
            PQexecPrepared(raw, name, Int32(pointers.count), pointers, nil, nil, 0)
        }
        defer { PQclear(result) }
        try check(result)
        return readResult(result)
    }

    /// Runs one statement, then COMMIT, in one round trip (libpq pipeline mode):
    /// the statement's rows once both succeeded. On any error nothing was
    /// committed (the COMMIT is skipped after a failed statement) and the
    /// caller rolls back as after any failed statement.
    public func queryThenCommit(_ sql: String, _ parameters: [(any PostgresBindable)?]) throws -> QueryResult {
        let name = try preparedName(for: sql, parameterCount: parameters.count)
        guard PQenterPipelineMode(raw) == 1 else { throw connectionError() }
        defer { PQexitPipelineMode(raw) }
        let texts = parameters.map { $0?.postgresText }
        let sent = withCStrings(texts) { pointers in PQsendQueryPrepared(raw, name, Int32(pointers.count), pointers, nil, nil, 0) }
        guard sent == 1, PQsendQueryParams(raw, "COMMIT", 0, nil, nil, nil, nil, 0) == 1, PQpipelineSync(raw) == 1 else {
            throw connectionError()
        }
        // Each statement's result is followed by a null; the sync ends the pipeline.
        var results: [OpaquePointer] = []
        defer { for r in results { PQclear(r) } }
        var nulls = 0
        while true {
            guard let result = PQgetResult(raw) else {
                nulls += 1
                if nulls > 2 || !isHealthy { throw connectionError() }
                continue
            }
            nulls = 0
            if PQresultStatus(result) == PGRES_PIPELINE_SYNC {
                PQclear(result)
                break
            }
            results.append(result)
        }
        guard results.count == 2 else { throw connectionError() }
        try check(results[0])
        try check(results[1])
        return readResult(results[0])
    }

    private func connectionError() -> DatabaseError {
        DatabaseError(kind: .connection, sqlState: nil, message: String(cString: PQerrorMessage(raw)))
    }

    private func preparedName(for sql: String, parameterCount: Int) throws -> String {
        if let name = prepared[sql] { return name }
        let name = "p\(prepared.count)"
        let result = PQprepare(raw, name, sql, Int32(parameterCount), nil)
        defer { PQclear(result) }
        try check(result)
        prepared[sql] = name
        return name
    }

    /// The connection's socket, to wait on for notifications.
    public var socket: Int32 { PQsocket(raw) }

    /// Reads whatever the server sent and returns the payloads of the notifications
    /// received; throws when the connection is lost.
    public func notifications() throws -> [(channel: String, payload: String)] {
        guard PQconsumeInput(raw) == 1 else {
            throw DatabaseError(kind: .connection, sqlState: nil, message: String(cString: PQerrorMessage(raw)))
        }
        var out: [(String, String)] = []
        while let notify = PQnotifies(raw) {
            out.append((String(cString: notify.pointee.relname), String(cString: notify.pointee.extra)))
            PQfreemem(notify)
        }
        return out
    }

    /// Forgets prepared statements (after a reconnect they no longer exist).
    private func resetPrepared() { prepared.removeAll() }

    /// Re-establishes a broken connection in place.
    public func reset() throws {
        PQreset(raw)
        resetPrepared()
        guard isHealthy else {
            throw DatabaseError(kind: .connection, sqlState: nil, message: String(cString: PQerrorMessage(raw)))
        }
    }

    func check(_ result: OpaquePointer?) throws {
        guard let result else {
            throw DatabaseError(kind: .connection, sqlState: nil, message: String(cString: PQerrorMessage(raw)))
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_COPY_IN, PGRES_COPY_OUT:
            return
        default:
            let state = field(result, diagSQLState)
            let message = field(result, diagMessage) ?? String(cString: PQresultErrorMessage(result))
            var kind = DatabaseError.kind(forSQLState: state)
            if !isHealthy { kind = .connection }
            throw DatabaseError(kind: kind, sqlState: state, message: message, constraint: field(result, diagConstraint))
        }
    }

    private func field(_ result: OpaquePointer, _ code: Int32) -> String? {
        PQresultErrorField(result, code).map { String(cString: $0) }
    }

    private func readResult(_ result: OpaquePointer?) -> QueryResult {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var rows: [Row] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, Int32(r), Int32(c))))
                }
            }
            rows.append(Row(columns: columns, values: values))
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return QueryResult(rows: rows, affectedRows: affected)
    }
}

// libpq's PG_DIAG_* macros are character literals, which Swift does not import.
private let diagSQLState = Int32(UInt8(ascii: "C"))
private let diagMessage = Int32(UInt8(ascii: "M"))
private let diagConstraint = Int32(UInt8(ascii: "n"))

/// Calls `body` with C strings for `texts` (nil stays a null pointer, i.e. SQL NULL).
private func withCStrings<R>(_ texts: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    var owned: [UnsafeMutablePointer<CChar>?] = texts.map { $0.map { strdup($0) } ?? nil }
    defer { for p in owned { free(p) } }
    return owned.withUnsafeMutableBufferPointer { buffer in
        body(buffer.map { UnsafePointer($0) })
    }
}
