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
        "user.invite", "user.resend_invitation", "user.get", "user.list", "user.set_role", "user.block",
        "user.unblock", "user.remove", "user.email.add", "user.email.verify", "user.email.remove",
        "audit.list", "support.appoint_admin",
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
        default: throw PortierError(.unknownOp, "unknown operation \"\(request.op)\"")
        }
    }
}

extension OperationOutput {
    static func result(_ result: JSONObject, revision: RevisionToken? = nil) -> OperationOutput {
        OperationOutput(result: result, revision: revision?.description)
    }
}
