import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// Resolves the request's actor (an id or an email) to its environment and user id,
    /// without touching the database for ids.
    func actorReference(_ request: Request) async throws -> (environment: EnvironmentID, user: Int64) {
        guard let actor = request.actor else { throw PortierError.badRequest("\(request.op) needs an actor") }
        switch try UserReference(actor, field: "actor") {
        case .id(let id):
            return (id.environment, id.raw)
        case .email(let email):
            let owner = try await transaction { tx in try tx.emailOwner(email.normalized) }
            guard let owner, owner.isPrimary else { throw PortierError.forbidden("the actor is not an active user") }
            return (owner.environment, owner.user)
        }
    }

    /// Loads the actor inside `tx` and checks it is an active user (R-PRM-1).
    static func activeActor(_ tx: Transaction, _ ref: (environment: EnvironmentID, user: Int64)) throws -> UserRecord {
        guard let user = try tx.user(ref.environment, ref.user), user.status == .active else {
            throw PortierError.forbidden("the actor is not an active user")
        }
        return user
    }
}

extension UserRecord {
    var auditActor: AuditActor { .user(id, label: email) }
}
