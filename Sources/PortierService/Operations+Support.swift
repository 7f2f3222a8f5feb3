import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// How support may have verified a person's identity (R-SUP-1).
    public static let verificationMethods = ["known_email", "kvk_extract"]

    /// `support.appoint_admin` (R-SUP-1): support makes a user administrator after
    /// verifying their identity; only on the support socket (checked in dispatch).
    /// A blocked user appointed this way is unblocked: support's verification stands
    /// in for the administrator who is no longer there.
    func appointAdministrator(_ request: Request, context: RequestContext) async throws -> OperationOutput {
        try request.params.rejectUnknownKeys(allowed: ["environment", "user", "verification"])
        guard let env = EnvironmentID(try request.params.requiredString("environment")) else {
            throw PortierError.badRequest("params.environment must be an environment id")
        }
        let target = try Self.userParam(request.params)
        guard case .object(let verification)? = request.params["verification"] else {
            throw PortierError.badRequest("params.verification must be an object {method, reference}")
        }
        try verification.rejectUnknownKeys(allowed: ["method", "reference"])
        let method = try verification.requiredString("method")
        guard Self.verificationMethods.contains(method) else {
            throw PortierError.badRequest("verification.method must be one of: \(Self.verificationMethods.joined(separator: ", "))")
        }
        let reference = try verification.requiredString("reference").split(whereSeparator: \.isWhitespace).joined(separator: " ")
        guard !reference.isEmpty, reference.count <= 500 else {
            throw PortierError.badRequest("verification.reference must be 1 to 500 characters")
        }
        let peer = context.peer.map(\.description) ?? "unknown"
        return try await pool.transaction(environments: [env], locking: env) { tx in
            let user = try Self.targetUser(tx, in: env, target, lock: true)
            if user.role == .administrator, user.status == .active {
                throw PortierError.invalidState("the user is already an active administrator")
            }
            let updated = try tx.updateUser(env, user.id, role: .administrator, status: user.status == .blocked ? .active : nil)
            let details: JSONValue = [
                "verification": ["method": .string(method), "reference": .string(reference)],
                "before": ["role": .string(user.role.rawValue), "status": .string(user.status.rawValue)],
                "after": ["role": .string(updated.role.rawValue), "status": .string(updated.status.rawValue)],
                "peer": .string(peer),
            ]
            try tx.audit(environment: env, actor: .support(label: peer), op: "support.appoint_admin", target: user.scopedID.description, details: details.jsonText)
            return .result(["user": updated.json], revision: try tx.bumpRevision(env))
        }
    }
}
