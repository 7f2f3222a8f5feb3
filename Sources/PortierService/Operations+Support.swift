import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// How support may have verified a person's identity (R-SUP-1).
    public static let verificationMethods = ["known_email", "kvk_extract"]

    /// `support.appoint_admin` (R-SUP-1): support makes a user administrator after
    /// verifying their identity; only on the support socket (checked in dispatch).
    /// A blocked user appointed this way is unblocked: support's verification stands
    /// in for the administrator who is no longer there. `organisations` (ids of
    /// that environment, active or not) make the user their organisation
    /// administrator in the same transaction; every other active administrator
    /// gets an `admin_appointed` message.
    func appointAdministrator(_ p: AppointAdministratorParams, _ request: Request, context: RequestContext) async throws -> OperationOutput {
        let (env, target, method, reference, organisations) = (p.environment, p.user, p.method, p.reference, p.organisations)
        let peer = context.peer.map(\.description) ?? "unknown"
        return try await transaction(environments: [env], locking: env) { tx in
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
            let actor = AuditActor.support(label: peer)
            try tx.audit(environment: env, actor: actor, op: "support.appoint_admin", target: user.scopedID.description, details: details.jsonText)
            // "Link them to the relevant organisations": administrator of each, like a creator.
            for id in organisations {
                // Not locked: organisations are never deleted but with their
                // environment (locked here), and the membership insert's foreign
                // key holds the row for the rest of the transaction.
                guard try tx.organisation(id) != nil else { throw PortierError.notFound("organisation \(id)") }
                let memberDetails: JSONValue = ["user": .string(user.scopedID.description), "role": "administrator", "status": "active", "reason": "support.appoint_admin"]
                if let existing = try tx.membership(organisation: id, user: user.scopedID, lock: true) {
                    guard existing.role != .administrator || existing.status != .active else { continue }
                    _ = try tx.updateMembership(organisation: id, user: user.scopedID, role: .administrator, status: .active)
                    try tx.audit(environment: env, actor: actor, op: "member.set_role", target: id.description, details: memberDetails.jsonText)
                } else {
                    _ = try tx.insertMembership(organisation: id, user: user.scopedID, role: .administrator, status: .active)
                    try tx.audit(environment: env, actor: actor, op: "member.add", target: id.description, details: memberDetails.jsonText)
                }
            }
            // Every other active administrator hears of it: an appointment obtained
            // by deceiving support does not go unnoticed. Not capped (R-USR-16 caps
            // what strangers can cause; this is the environment's own alarm).
            let notice: JSONValue = [
                "user": .string(user.scopedID.description), "email": .string(user.email), "verification_method": .string(method),
                "organisations": .array(organisations.map { .string($0.description) }),
            ]
            for other in try tx.activeAdministrators(env) where other != user.id {
                guard let admin = try tx.user(env, other) else { continue }
                try tx.enqueueMessage(environment: env, kind: .adminAppointed, to: admin.email, payload: notice.jsonText)
            }
            return .result(["user": updated.json], revision: try tx.bumpRevision(env))
        }
    }

    /// At most this many organisations per appointment.
    static let maximumAppointedOrganisations = 1000

    /// `organisations`: ids of organisations of `env`; another environment's
    /// are `not_found` (they are not support's to hand out here).
    static func organisationsParam(_ params: JSONObject, in env: EnvironmentID) throws -> [ScopedID] {
        guard let value = params["organisations"] else { return [] }
        guard case .array(let items) = value, items.count <= maximumAppointedOrganisations else {
            throw PortierError.badRequest("params.organisations must be a list of at most \(maximumAppointedOrganisations) organisation ids")
        }
        var ids: [ScopedID] = []
        for item in items {
            guard case .string(let text) = item, let id = ScopedID(text, kind: .organisation) else {
                throw PortierError.badRequest("params.organisations must hold organisation ids")
            }
            guard id.environment == env else { throw PortierError.notFound("organisation \(text)") }
            if !ids.contains(id) { ids.append(id) }
        }
        return ids.sorted { $0.raw < $1.raw }  // a fixed order: row locks never cross
    }
}

/// `support.appoint_admin`: `{environment, user, verification: {method, reference}, organisations?}`.
struct AppointAdministratorParams: OperationParams {
    static let keys: Set<String> = ["environment", "user", "verification", "organisations"]
    let environment: EnvironmentID
    let user: UserReference
    let method: String
    let reference: String
    let organisations: [ScopedID]
    init(_ params: JSONObject) throws {
        guard let env = EnvironmentID(try params.requiredString("environment")) else {
            throw PortierError.badRequest("params.environment must be an environment id")
        }
        environment = env
        user = try PortierService.userParam(params)
        guard case .object(let verification)? = params["verification"] else {
            throw PortierError.badRequest("params.verification must be an object {method, reference}")
        }
        try verification.rejectUnknownKeys(allowed: ["method", "reference"])
        method = try verification.requiredString("method")
        guard PortierService.verificationMethods.contains(method) else {
            throw PortierError.badRequest("verification.method must be one of: \(PortierService.verificationMethods.joined(separator: ", "))")
        }
        reference = try verification.requiredString("reference").split(whereSeparator: \.isWhitespace).joined(separator: " ")
        guard !reference.isEmpty, reference.count <= 500 else {
            throw PortierError.badRequest("verification.reference must be 1 to 500 characters")
        }
        organisations = try PortierService.organisationsParam(params, in: env)
    }
}
