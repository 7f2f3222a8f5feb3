import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// The actor, checked to be an active `advanced` user or administrator (R-PTN-1, R-PTN-2).
    static func partnershipManager(_ tx: Transaction, _ ref: (environment: EnvironmentID, user: Int64)) throws -> UserRecord {
        let actor = try activeActor(tx, ref)
        guard actor.role == .advanced || actor.role == .administrator else {
            throw PortierError.forbidden("only advanced users and administrators manage partnerships")
        }
        return actor
    }

    static func partnershipParam(_ params: JSONObject) throws -> ScopedID {
        guard let id = ScopedID(try params.requiredString("partnership"), kind: .partnership) else {
            throw PortierError.badRequest("params.partnership must be a partnership id")
        }
        return id
    }

    /// `partnership.propose` (R-PTN-1, R-PTN-3): to an environment named by id or by a user's email.
    func partnershipPropose(_ p: ProposeParams, _ request: Request) async throws -> OperationOutput {
        let (fixedTarget, byEmail) = (p.environment, p.email)
        let actorRef = try await actorReference(request)
        let configuration = self.configuration
        do {
            return try await transaction(environments: [actorRef.environment]) { tx in
                let actor = try Self.partnershipManager(tx, actorRef)
                guard let target = try fixedTarget ?? byEmail.flatMap({ try tx.emailOwner($0.normalized)?.environment }) else {
                    throw PortierError.notFound("environment")
                }
                guard target != actor.environment else { throw PortierError.badRequest("an environment cannot partner with itself") }
                try tx.setEnvironments(Self.scope(actor.environment, target))
                guard try tx.environment(target) != nil else { throw PortierError.notFound("environment") }
                if try tx.livePartnership(actor.environment, with: target) != nil {
                    throw PortierError.conflict("a partnership between these environments already exists")
                }
                let partnership = try tx.insertPartnership(proposer: actor.environment, partner: target)
                try tx.insertRequest(target, kind: "partnership", addressee: nil, organisation: nil, partnershipID: partnership.id)
                for user in try tx.users(target, role: .advanced, excludingStatus: .blocked) + tx.users(target, role: .administrator, excludingStatus: .blocked) where user.status == .active {
                    let message: JSONValue = ["partnership": .string(partnership.scopedID.description), "from": .string(actor.environment.description), "proposed_by": .string(actor.email)]
                    try Self.enqueueCapped(tx, environment: target, kind: .partnershipRequest, to: user.email, payload: message.jsonText, sender: .environment(actor.environment), configuration: configuration)
                }
                let details: JSONValue = ["proposer": .string(actor.environment.description), "partner": .string(target.description)]
                for env in [actor.environment, target] {
                    try tx.audit(environment: env, actor: actor.auditActor, op: "partnership.propose", target: partnership.scopedID.description, details: details.jsonText)
                }
                return .result(["partnership": partnership.json], revision: try Self.bump(tx, [actor.environment, target], reply: actor.environment))
            }
        } catch let error as DatabaseError where error.kind == .uniqueViolation {
            // R-PTN-3: the other side proposed at the same instant.
            throw PortierError.conflict("a partnership between these environments already exists")
        }
    }

    /// `partnership.accept` / `partnership.decline`: by the receiving side.
    func partnershipAnswer(_ p: PartnershipParams, _ request: Request, accept: Bool) async throws -> OperationOutput {
        let id = p.partnership
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment]) { tx in
            let actor = try Self.partnershipManager(tx, actorRef)
            return try Self.answerPartnership(tx, id.raw, by: actor, accept: accept)
        }
    }

    /// Accepts or declines a pending partnership; shared by `partnership.*` and `inbox.*`.
    static func answerPartnership(_ tx: Transaction, _ id: Int64, by actor: UserRecord, accept: Bool) throws -> OperationOutput {
        guard let unlocked = try tx.partnership(actor.environment, id: id) else { throw PortierError.notFound("partnership") }
        try tx.setEnvironments(scope(actor.environment, unlocked.partner))
        guard let side = try tx.lockPartnership(actor.environment, id: id, partner: unlocked.partner) else { throw PortierError.notFound("partnership") }
        guard side.status == .pending else { throw PortierError.invalidState("the partnership is \(side.status.rawValue), not pending") }
        guard side.proposer != actor.environment else { throw PortierError.forbidden("the proposal must be answered by the other environment") }
        let status: PartnershipStatus = accept ? .active : .declined
        try tx.setPartnershipStatus(id: id, actor.environment, side.partner, to: status)
        if let req = try tx.partnershipRequest(actor.environment, partnershipID: id) {
            try tx.answerRequest(req.scopedID, status: accept ? "accepted" : "declined", by: actor.id)
        }
        let op = accept ? "partnership.accept" : "partnership.decline"
        for env in [actor.environment, side.partner] {
            try tx.audit(environment: env, actor: actor.auditActor, op: op, target: side.scopedID.description)
        }
        let updated = try tx.partnership(actor.environment, id: id)!
        return .result(["partnership": updated.json], revision: try bump(tx, [actor.environment, side.partner], reply: actor.environment))
    }

    /// `partnership.end` (R-PTN-2): either side; every membership that depended on
    /// it ends in the same transaction, each audited. A pending proposal can be withdrawn this way too.
    func partnershipEnd(_ p: PartnershipParams, _ request: Request) async throws -> OperationOutput {
        let id = p.partnership
        let actorRef = try await actorReference(request)
        let pausing = configuration.pausePoints
        return try await transaction(environments: [actorRef.environment]) { tx in
            let actor = try Self.partnershipManager(tx, actorRef)
            guard let unlocked = try tx.partnership(actor.environment, id: id.raw) else { throw PortierError.notFound("partnership") }
            let other = unlocked.partner
            try tx.setEnvironments(Self.scope(actor.environment, other))
            // Both sides, exclusively: waits for memberships being added or
            // accepted under this partnership, and they wait for it (R-SEC-4).
            guard let side = try tx.lockPartnership(actor.environment, id: id.raw, partner: other) else { throw PortierError.notFound("partnership") }
            guard side.status == .active || side.status == .pending else {
                throw PortierError.invalidState("the partnership is \(side.status.rawValue)")
            }
            if pausing { try tx.pause(at: .partnershipEndLocked) }
            try tx.setPartnershipStatus(id: id.raw, actor.environment, other, to: .ended)
            if let req = try tx.partnershipRequest(other, partnershipID: id.raw) ?? tx.partnershipRequest(actor.environment, partnershipID: id.raw) {
                try tx.answerRequest(req.scopedID, status: "cancelled", by: nil)
            }
            for membership in try tx.deleteCrossMemberships(actor.environment, other) {
                let details: JSONValue = ["user": .string(membership.user.description), "reason": "partnership.end", "partnership": .string(side.scopedID.description)]
                try tx.audit(environment: membership.organisation.environment, actor: actor.auditActor, op: "member.remove", target: membership.organisation.description, details: details.jsonText)
            }
            for env in [actor.environment, other] {
                try tx.audit(environment: env, actor: actor.auditActor, op: "partnership.end", target: side.scopedID.description)
            }
            let updated = try tx.partnership(actor.environment, id: id.raw)!
            return .result(["partnership": updated.json], revision: try Self.bump(tx, [actor.environment, other], reply: actor.environment))
        }
    }

    /// `partnership.list`: the actor environment's partnerships, every status.
    func partnershipList(_ p: ListParams<ListedPartnerships>, _ request: Request) async throws -> OperationOutput {
        let page = p.page
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment]) { tx in
            let actor = try Self.partnershipManager(tx, actorRef)
            let partnerships = try tx.partnerships(actor.environment, after: page.after?.raw ?? 0, limit: page.fetch)
            return .result(page.result("partnerships", partnerships, id: \.scopedID, json: \.json))  // ordered by the number alone
        }
    }
}

/// `partnership.propose`: exactly one of `{environment}` and `{email}`.
struct ProposeParams: OperationParams {
    static let keys: Set<String> = ["environment", "email"]
    let environment: EnvironmentID?
    let email: EmailAddress?
    init(_ params: JSONObject) throws {
        let byID = try params.optionalString("environment")
        email = try params.optionalString("email").map { text throws(InvalidInput) in try EmailAddress(text) }
        guard (byID == nil) != (email == nil) else { throw PortierError.badRequest("give exactly one of params.environment and params.email") }
        environment = try byID.map { text in
            guard let id = EnvironmentID(text) else { throw PortierError.badRequest("params.environment must be an environment id") }
            return id
        }
    }
}
