import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// `inbox.list`: requests waiting for the actor: membership requests addressed
    /// to it, and (for advanced users and administrators) partnership proposals.
    func inboxList(_ p: ListParams<ListedRequests>, _ request: Request) async throws -> OperationOutput {
        let page = p.page
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment]) { tx in
            let actor = try Self.activeActor(tx, actorRef)
            let requests = try tx.pendingRequests(actor.environment, user: actor.id, includeEnvironmentRequests: actor.role != .basic,
                                                  after: page.after?.raw ?? 0, limit: page.fetch)
            return .result(try page.result("requests", requests, id: \.scopedID, json: tx.requestJSON))
        }
    }

    /// `inbox.accept` / `inbox.decline`: only the addressee answers a membership
    /// request; an advanced user or administrator a partnership proposal. An
    /// answered request cannot be answered again.
    func inboxAnswer(_ p: InboxAnswerParams, _ request: Request, accept: Bool) async throws -> OperationOutput {
        let id = p.request
        let actorRef = try await actorReference(request)
        let pausing = configuration.pausePoints
        return try await transaction(environments: [actorRef.environment]) { tx in
            let actor = try Self.activeActor(tx, actorRef)
            guard id.environment == actor.environment, var req = try tx.request(id) else { throw PortierError.notFound("request") }
            // Locks in the order partnership.end takes them (partnership rows, then
            // requests), so that the two wait for each other instead of deadlocking.
            if accept, req.kind == "membership", let org = req.organisation, org.environment != actor.environment {
                try tx.setEnvironments(Self.scope(actor.environment, org.environment))
                // Re-check what the membership depends on, under a lock that
                // partnership.end also takes (R-SEC-4, R-MEM-3).
                guard try tx.lockLivePartnership(actor.environment, with: org.environment, share: true)?.status == .active else {
                    throw PortierError.invalidState("the partnership with the organisation's environment has ended")
                }
                if pausing { try tx.pause(at: .inboxAcceptPartnershipChecked) }
            }
            guard let locked = try tx.request(id, lock: true) else { throw PortierError.notFound("request") }
            req = locked
            let revision: String?
            switch req.kind {
            case "partnership":
                guard actor.role != .basic else { throw PortierError.forbidden("only advanced users and administrators answer partnership proposals") }
                guard req.status == "pending" else { throw PortierError.invalidState("the request was already answered (\(req.status))") }
                guard let partnershipID = req.partnershipID else { throw PortierError.internal() }
                revision = try Self.answerPartnership(tx, partnershipID, by: actor, accept: accept).revision
            default:
                guard req.addressee == actor.id else { throw PortierError.notFound("request") }
                guard req.status == "pending" else { throw PortierError.invalidState("the request was already answered (\(req.status))") }
                guard let org = req.organisation else { throw PortierError.internal() }
                try tx.setEnvironments(Self.scope(actor.environment, org.environment))
                guard try tx.membership(organisation: org, user: actor.scopedID, lock: true) != nil else {
                    throw PortierError.invalidState("the membership request was withdrawn")
                }
                try tx.answerRequest(id, status: accept ? "accepted" : "declined", by: actor.id)
                if accept {
                    _ = try tx.updateMembership(organisation: org, user: actor.scopedID, status: .active)
                } else {
                    try tx.deleteMembership(organisation: org, user: actor.scopedID)
                }
                let op = accept ? "member.accept" : "member.decline"
                let details: JSONValue = ["user": .string(actor.scopedID.description), "request": .string(id.description)]
                for env in Set([actor.environment, org.environment]) {
                    try tx.audit(environment: env, actor: actor.auditActor, op: op, target: org.description, details: details.jsonText)
                }
                revision = try Self.bump(tx, [actor.environment, org.environment], reply: actor.environment).description
            }
            guard let answered = try tx.request(id) else { throw PortierError.internal() }
            return OperationOutput(result: ["request": try tx.requestJSON(answered)], revision: revision)
        }
    }

    /// `user.offboard` (R-USR-10, R-MEM-6): every membership, then the user, in one
    /// transaction; a named successor is made administrator first.
    func offboard(_ p: OffboardParams, _ request: Request) async throws -> OperationOutput {
        let (target, successorRef) = (p.user, p.successor)
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment], locking: actorRef.environment) { tx in
            let env = actorRef.environment
            let actor = try Self.administrator(tx, actorRef, to: "off-board users")
            let user = try Self.targetUser(tx, in: env, target, lock: true)
            if let successorRef {
                let successor = try Self.targetUser(tx, in: env, successorRef, lock: true)
                guard successor.id != user.id else { throw PortierError.badRequest("the successor must be someone else") }
                guard successor.status == .active else { throw PortierError.invalidState("the successor must be an active user") }
                if successor.role != .administrator {
                    _ = try tx.updateUser(env, successor.id, role: .administrator)
                    var details = Self.change("role", from: successor.role.rawValue, to: "administrator").objectValue!
                    details["reason"] = .string("successor of \(user.email)")
                    try tx.audit(environment: env, actor: actor.auditActor, op: "user.set_role", target: successor.scopedID.description, details: JSONValue.object(details).jsonText)
                }
            }
            try Self.refuseLosingLastAdministrator(tx, user, losesAdministration: true)
            return .result([:], revision: try Self.removeUser(tx, user, actor: actor.auditActor, op: "user.offboard"))
        }
    }
}

/// `inbox.accept` / `inbox.decline`: `{request}`.
struct InboxAnswerParams: OperationParams {
    static let keys: Set<String> = ["request"]
    let request: ScopedID
    init(_ params: JSONObject) throws {
        guard let id = ScopedID(try params.requiredString("request"), kind: .request) else {
            throw PortierError.badRequest("params.request must be a request id")
        }
        request = id
    }
}

/// `user.offboard`: `{user, successor?}`.
struct OffboardParams: OperationParams {
    static let keys: Set<String> = ["user", "successor"]
    let user: UserReference
    let successor: UserReference?
    init(_ params: JSONObject) throws {
        user = try PortierService.userParam(params)
        successor = try params.optionalString("successor").map { text throws(InvalidInput) in try UserReference(text, field: "params.successor") }
    }
}
