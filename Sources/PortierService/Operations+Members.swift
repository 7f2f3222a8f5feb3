import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// R-MEM-1: an organisation administrator of it, or an environment administrator of its environment.
    static func mayManageMembers(_ tx: Transaction, _ actor: UserRecord, _ org: OrganisationRecord) throws -> Bool {
        if actor.role == .administrator, actor.environment == org.environment { return true }
        let own = try tx.membership(organisation: org.scopedID, user: actor.scopedID)
        return own?.status == .active && own?.role == .administrator
    }

    /// The organisation, if the actor may manage its members; otherwise the
    /// right refusal. An inactive organisation grants nobody anything on its
    /// members (R-ORG-2): `invalid_state` until it is activated.
    static func managedOrganisation(_ tx: Transaction, _ id: ScopedID, by actor: UserRecord) throws -> OrganisationRecord {
        let org = try visibleOrganisation(tx, id, to: actor)
        guard try mayManageMembers(tx, actor, org) else {
            throw PortierError.forbidden("only its organisation administrators and the environment's administrators manage members")
        }
        guard org.status == .active else {
            throw PortierError.invalidState("the organisation is inactive: nobody manages its members until an environment administrator activates it")
        }
        return org
    }

    /// Resolves the user a membership is about: of the organisation's environment,
    /// or of an environment with an active partnership with it (R-MEM-3). Anyone
    /// else is `not_found`. The partnership stays share-locked until commit, so
    /// it cannot end between this check and the insert (R-SEC-4). The user's
    /// environment row is held (`FOR KEY SHARE`) before the user is read, as
    /// `user.remove` and `user.offboard` lock it (`FOR UPDATE`) before deleting,
    /// and the user row too, which every other deleter (an expired invitation's
    /// release) locks first: a removal either finishes first (the user is gone:
    /// `not_found`) or waits and then removes the new membership too; never a
    /// membership of a deleted user. (Memberships of the organisation's own
    /// environment have no foreign key to the user: the user may live in
    /// another environment.) Key-share locks block no other change.
    static func memberCandidate(_ tx: Transaction, _ ref: UserReference, for org: OrganisationRecord, scope: [EnvironmentID]) throws -> UserRecord {
        guard let target = try locate(tx, ref) else { throw PortierError.notFound("user") }
        let (env, userID) = (target.environment, target.raw)
        if env != org.environment {
            try tx.setEnvironments(Array(Set(scope + [env])).sorted())
            guard try tx.lockLivePartnership(org.environment, with: env, share: true)?.status == .active else { throw PortierError.notFound("user") }
        }
        try tx.holdEnvironment(env)
        guard let user = try tx.user(env, userID, rowLock: .keyShare) else { throw PortierError.notFound("user") }
        return user
    }

    /// `member.add` (R-MEM-1…3): same environment: active at once; partner
    /// environment: pending, with an inbox request and a `membership_request`
    /// message (never refused for the mail cap: coalesced past it, R-USR-16).
    func memberAdd(_ p: MemberAddParams, _ request: Request) async throws -> OperationOutput {
        let (orgID, ref, role) = (p.organisation, p.user, p.role)
        let actorRef = try await actorReference(request)
        let scope = Self.scope(actorRef.environment, orgID.environment)
        let pausing = configuration.pausePoints
        let configuration = self.configuration
        do {
            return try await transaction(environments: scope) { tx in
                let actor = try Self.activeActor(tx, actorRef)
                let org = try Self.managedOrganisation(tx, orgID, by: actor)
                guard org.status == .active else { throw PortierError.invalidState("members can only be added to an active organisation; activate it first") }
                let user = try Self.memberCandidate(tx, ref, for: org, scope: scope)
                if pausing { try tx.pause(at: .memberAddUserChecked) }
                if try tx.membership(organisation: orgID, user: user.scopedID) != nil { throw PortierError.conflict("the user is already a member") }
                let partner = user.environment != org.environment
                let membership = try tx.insertMembership(organisation: orgID, user: user.scopedID, role: role, status: partner ? .pending : .active)
                let details: JSONValue = ["user": .string(user.scopedID.description), "role": .string(role.rawValue), "status": .string(membership.status.rawValue)]
                try tx.audit(environment: org.environment, actor: actor.auditActor, op: "member.add", target: orgID.description, details: details.jsonText)
                var touched = [org.environment]
                if partner {
                    let req = try tx.insertRequest(user.environment, kind: "membership", addressee: user.id, organisation: orgID, partnershipID: nil)
                    let message: JSONObject = ["request": .string(req.scopedID.description), "organisation": .string(orgID.description),
                                               "organisation_name": .string(org.name), "invited_by": .string(actor.email)]
                    try Self.enqueueCoalesced(tx, environment: user.environment, kind: .membershipRequest, to: user.email, payload: message, sender: .environment(org.environment), configuration: configuration)
                    try tx.audit(environment: user.environment, actor: actor.auditActor, op: "member.add", target: user.scopedID.description, details: details.jsonText)
                    touched.append(user.environment)
                }
                return .result(["membership": membership.json()], revision: try Self.bump(tx, touched, reply: actor.environment))
            }
        } catch let error as DatabaseError where error.kind == .uniqueViolation {
            throw PortierError.conflict("the user is already a member")
        } catch let error as DatabaseError where error.kind == .foreignKeyViolation {
            // The organisation was deleted after it was read.
            throw PortierError.notFound("organisation")
        }
    }

    /// `member.set_role` (R-MEM-1).
    func memberSetRole(_ p: MemberRoleParams, _ request: Request) async throws -> OperationOutput {
        let (orgID, ref, role) = (p.organisation, p.user, p.role)
        let actorRef = try await actorReference(request)
        let scope = Self.scope(actorRef.environment, orgID.environment)
        return try await transaction(environments: scope) { tx in
            let actor = try Self.activeActor(tx, actorRef)
            let org = try Self.managedOrganisation(tx, orgID, by: actor)
            let (user, membership) = try Self.existingMembership(tx, ref, org, scope: scope)
            guard membership.role != role else { return .result(["membership": membership.json()]) }
            let updated = try tx.updateMembership(organisation: orgID, user: user, role: role)
            var details = Self.change("role", from: membership.role.rawValue, to: role.rawValue).objectValue!
            details["user"] = .string(user.description)
            try tx.audit(environment: org.environment, actor: actor.auditActor, op: "member.set_role", target: orgID.description, details: JSONValue.object(details).jsonText)
            return .result(["membership": updated.json()], revision: try Self.bump(tx, [org.environment, user.environment], reply: actor.environment))
        }
    }

    /// `member.remove` (R-MEM-1, R-MEM-4): access ends at once; the user keeps the account.
    func memberRemove(_ p: MemberParams, _ request: Request) async throws -> OperationOutput {
        let (orgID, ref) = (p.organisation, p.user)
        let actorRef = try await actorReference(request)
        let scope = Self.scope(actorRef.environment, orgID.environment)
        return try await transaction(environments: scope) { tx in
            let actor = try Self.activeActor(tx, actorRef)
            let org = try Self.managedOrganisation(tx, orgID, by: actor)
            let (user, membership) = try Self.existingMembership(tx, ref, org, scope: scope)
            try tx.deleteMembership(organisation: orgID, user: user)
            let details: JSONValue = ["user": .string(user.description), "role": .string(membership.role.rawValue), "status": .string(membership.status.rawValue)]
            try tx.audit(environment: org.environment, actor: actor.auditActor, op: "member.remove", target: orgID.description, details: details.jsonText)
            return .result([:], revision: try Self.bump(tx, [org.environment, user.environment], reply: actor.environment))
        }
    }

    /// `member.list`: for its active members and the environment's administrators.
    func memberList(_ p: MemberListParams, _ request: Request) async throws -> OperationOutput {
        let (orgID, page) = (p.organisation, p.page)
        let actorRef = try await actorReference(request)
        return try await transaction(environments: Self.scope(actorRef.environment, orgID.environment)) { tx in
            let actor = try Self.activeActor(tx, actorRef)
            _ = try Self.visibleOrganisation(tx, orgID, to: actor)
            let memberships = try tx.memberships(organisation: orgID, after: page.after, limit: page.fetch)
            try tx.setEnvironments(Array(Set(memberships.map(\.user.environment) + [actor.environment, orgID.environment])).sorted())
            let emails = Dictionary(uniqueKeysWithValues: try tx.users(memberships.map(\.user)).map { ($0.scopedID, $0.email) })
            return .result(page.result("memberships", memberships, id: \.user) { $0.json(email: emails[$0.user]) })
        }
    }

    /// The membership named by (user, organisation), or `not_found`.
    static func existingMembership(_ tx: Transaction, _ ref: UserReference, _ org: OrganisationRecord, scope: [EnvironmentID]) throws -> (ScopedID, MembershipRecord) {
        guard let user = try locate(tx, ref), let membership = try tx.membership(organisation: org.scopedID, user: user, lock: true) else {
            throw PortierError.notFound("membership")
        }
        if user.environment != org.environment { try tx.setEnvironments(Array(Set(scope + [user.environment])).sorted()) }
        return (user, membership)
    }

    /// Bumps every environment a change touched, in id order; returns the token for `reply`'s.
    static func bump(_ tx: Transaction, _ environments: [EnvironmentID], reply: EnvironmentID) throws -> RevisionToken {
        var token: RevisionToken?
        var fallback: RevisionToken?
        for env in Set(environments).sorted() {
            let t = try tx.bumpRevision(env)
            if env == reply { token = t }
            fallback = fallback ?? t
        }
        return token ?? fallback!
    }
}

/// `member.remove`: `{organisation, user}`.
struct MemberParams: OperationParams {
    static let keys: Set<String> = ["organisation", "user"]
    let organisation: ScopedID
    let user: UserReference
    init(_ params: JSONObject) throws {
        organisation = try PortierService.organisationParam(params)
        user = try PortierService.userParam(params)
    }
}

/// `member.add`: `{organisation, user, role?}` (role defaults to member).
struct MemberAddParams: OperationParams {
    static let keys: Set<String> = ["organisation", "user", "role"]
    let organisation: ScopedID
    let user: UserReference
    let role: OrganisationRole
    init(_ params: JSONObject) throws {
        let member = try MemberParams(params)
        (organisation, user) = (member.organisation, member.user)
        role = try params.optionalEnum("role", OrganisationRole.self) ?? .member
    }
}

/// `member.set_role`: `{organisation, user, role}`.
struct MemberRoleParams: OperationParams {
    static let keys: Set<String> = ["organisation", "user", "role"]
    let organisation: ScopedID
    let user: UserReference
    let role: OrganisationRole
    init(_ params: JSONObject) throws {
        let member = try MemberParams(params)
        (organisation, user) = (member.organisation, member.user)
        guard let role = try params.optionalEnum("role", OrganisationRole.self) else { throw PortierError.badRequest("params.role is required") }
        self.role = role
    }
}

/// `member.list`: `{organisation, limit?, cursor?}`, ordered by member.
struct MemberListParams: OperationParams {
    static let keys: Set<String> = PageRequest.keys.union(["organisation"])
    let organisation: ScopedID
    let page: PageRequest
    init(_ params: JSONObject) throws {
        organisation = try PortierService.organisationParam(params)
        page = try PageRequest(params, kind: .user)
    }
}
