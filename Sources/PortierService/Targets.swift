import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// The actor, checked to be an active administrator (R-USR-1, R-USR-5, R-USR-12).
    /// Administrative changes read the actor inside a transaction that locked the
    /// environment first (`locking:`): an administrator demoted by a transaction
    /// that just committed must not act on a stale read of their own role.
    static func administrator(_ tx: Transaction, _ ref: (environment: EnvironmentID, user: Int64), to action: String) throws -> UserRecord {
        let actor = try activeActor(tx, ref)
        guard actor.role == .administrator else { throw PortierError.forbidden("only an administrator may \(action)") }
        return actor
    }

    /// Resolves a `user` param inside `environment`. A user of another environment
    /// is `not_found`, never a hint that it exists elsewhere (R-ENV-1).
    static func targetUser(_ tx: Transaction, in environment: EnvironmentID, _ ref: UserReference, lock: Bool = false) throws -> UserRecord {
        guard let found = try locate(tx, ref), found.environment == environment,
              let user = try tx.user(environment, found.raw, lock: lock)
        else { throw PortierError.notFound("user") }
        return user
    }

    /// Where a `user` param points: an id names itself (no query); an email, primary
    /// or verified extra, is looked up in the directory. Nil when nobody has it.
    static func locate(_ tx: Transaction, _ ref: UserReference) throws -> ScopedID? {
        switch ref {
        case .id(let id): return id
        case .email(let email):
            return try tx.emailOwner(email.normalized).map { ScopedID(.user, environment: $0.environment, raw: $0.user) }
        }
    }

    /// Reads the `user` param as an id or an email.
    static func userParam(_ params: JSONObject, _ key: String = "user") throws -> UserReference {
        try UserReference(try params.requiredString(key), field: "params.\(key)")
    }

    /// An audit detail recording a value's change.
    static func change(_ field: String, from before: String, to after: String) -> JSONValue {
        ["before": [field: .string(before)], "after": [field: .string(after)]]
    }
}
