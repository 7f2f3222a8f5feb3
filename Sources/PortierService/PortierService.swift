import Logging
import PortierDomain
import PortierProtocol
import PortierStorage

/// The operations of SPEC §11, independent of any transport: a request in, a
/// reply out. Each mutation is one database transaction with its audit event,
/// outbox messages and revision bump.
public final class PortierService: Sendable {
    public let configuration: ServiceConfiguration
    let pool: ConnectionPool
    let passwords: PasswordHasher
    let logger: Logger

    public init(pool: ConnectionPool, configuration: ServiceConfiguration, logger: Logger) {
        self.pool = pool
        self.configuration = configuration
        self.logger = logger
        self.passwords = PasswordHasher(parameters: configuration.passwordHashing)
    }

    public func shutdown() async { await passwords.shutdown() }

    /// Answers one request. Never throws: every failure becomes an error reply.
    public func handle(_ request: Request, context: RequestContext) async -> Reply {
        do {
            let output = try await dispatch(request, context: context)
            return .success(request.id, output.result, revision: output.revision)
        } catch let error as PortierError {
            return .failure(request.id, error)
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
    ]

    private func dispatch(_ request: Request, context: RequestContext) async throws -> OperationOutput {
        if request.op.hasPrefix("support."), context.socket != .support {
            throw PortierError.forbidden("\(request.op) is accepted only on the support socket")
        }
        switch request.op {
        case "hello": return try hello(request, context: context)
        case "ping": return try ping(request)
        case "signup": return try await signup(request)
        case "user.activate": return try await activate(request)
        case "user.authenticate": return try await authenticate(request)
        case "environment.get": return try await environmentGet(request)
        case "outbox.list": return try await outboxList(request)
        case "outbox.ack": return try await outboxAck(request)
        default: throw PortierError(.unknownOp, "unknown operation \"\(request.op)\"")
        }
    }
}

extension OperationOutput {
    static func result(_ result: JSONObject, revision: RevisionToken? = nil) -> OperationOutput {
        OperationOutput(result: result, revision: revision?.description)
    }
}
