import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// `user.invite` (R-USR-1, R-USR-13): an invited user and an activation message.
    func invite(_ p: InviteParams, _ request: Request) async throws -> OperationOutput {
        let (email, role, name) = (p.email, p.role, p.name)
        let actorRef = try await actorReference(request)
        let configuration = self.configuration
        do {
            return try await transaction(environments: [actorRef.environment], locking: actorRef.environment) { tx in
                let env = actorRef.environment
                // The lock also serialises invitations, so the rate limit cannot be raced past.
                let actor = try Self.administrator(tx, actorRef, to: "invite users")
                if try tx.recentEvents(env, op: "user.invite", withinSeconds: 3600) >= configuration.invitationsPerHour {
                    throw PortierError(.rateLimited, "at most \(configuration.invitationsPerHour) invitations an hour; try again later")
                }
                try Self.refuseOthersDomain(tx, email, for: env)
                try Self.releaseExpiredInvitation(tx, email, scope: [env])
                if try tx.emailOwner(email.normalized) != nil { throw PortierError.conflict("an account with this email already exists") }
                let user = try tx.insertUser(environment: env, email: email, name: name, role: role)
                try Self.sendActivation(tx, to: user, invitedBy: actor, configuration: configuration)
                let details: JSONValue = ["email": .string(email.display), "role": .string(role.rawValue)]
                try tx.audit(environment: env, actor: actor.auditActor, op: "user.invite", target: user.scopedID.description, details: details.jsonText)
                return .result(["user": user.json], revision: try tx.bumpRevision(env))
            }
        } catch let error as DatabaseError where error.kind == .uniqueViolation && error.constraint == "email_directory_pkey" {
            throw PortierError.conflict("an account with this email already exists")
        }
    }

    /// R-USR-2: an invitation that expired without activation no longer holds its
    /// address. If `email` belongs to such an invited user, that user is removed
    /// (audited in its environment, by `system`); `scope` is the transaction's
    /// scope, widened for the removal.
    static func releaseExpiredInvitation(_ tx: Transaction, _ email: EmailAddress, scope: [EnvironmentID]) throws {
        guard let owner = try tx.emailOwner(email.normalized), owner.isPrimary else { return }
        try tx.setEnvironments(Array(Set(scope + [owner.environment])).sorted())
        if let user = try tx.user(owner.environment, owner.user, lock: true), user.status == .invited,
           try !tx.hasLiveActivationToken(owner.environment, user: user.id) {
            _ = try removeUser(tx, user, actor: .system, op: "user.invitation_expired")
        }
        try tx.setEnvironments(scope)
    }

    /// R-ENV-10: an address on a domain whose claim another environment has
    /// confirmed belongs to that company; its people are reached through a partnership.
    static func refuseOthersDomain(_ tx: Transaction, _ email: EmailAddress, for environment: EnvironmentID) throws {
        if let owner = try tx.confirmedClaimant(email.domain), owner != environment {
            throw PortierError.conflict("\(email.domain) belongs to another company's environment; propose a partnership to work with its people")
        }
    }

    /// A fresh activation token (the earlier one stops working, and its message
    /// is withdrawn if the mailer has not taken it) and its message.
    static func sendActivation(_ tx: Transaction, to user: UserRecord, invitedBy: UserRecord, configuration: ServiceConfiguration) throws {
        try tx.withdrawMessages(environment: user.environment, kind: .activation, to: user.email)
        let token = SecretToken(environment: user.environment)
        try tx.issueToken(
            environment: user.environment, user: user.id, purpose: .activation, hash: token.hash,
            emailNorm: nil, lifetimeSeconds: configuration.tokenLifetimeSeconds
        )
        let details: JSONValue = ["user": .string(user.scopedID.description), "invited_by": .string(invitedBy.email)]
        try enqueueCapped(tx, environment: user.environment, kind: .activation, to: user.email, token: token.text, payload: details.jsonText, sender: .environment(invitedBy.environment), configuration: configuration)
    }

    /// `user.resend_invitation` (R-USR-3): only for `invited` users.
    func resendInvitation(_ p: UserParams, _ request: Request) async throws -> OperationOutput {
        let target = p.user
        let actorRef = try await actorReference(request)
        let configuration = self.configuration
        return try await transaction(environments: [actorRef.environment], locking: actorRef.environment) { tx in
            let actor = try Self.administrator(tx, actorRef, to: "resend invitations")
            let user = try Self.targetUser(tx, in: actorRef.environment, target, lock: true)
            guard user.status == .invited else { throw PortierError.invalidState("only invited users can be re-invited; this one is \(user.status.rawValue)") }
            // R-ENV-10: a resend never extends a hold past another environment's confirmation of the domain.
            try Self.refuseOthersDomain(tx, try EmailAddress(user.email), for: user.environment)
            try Self.sendActivation(tx, to: user, invitedBy: actor, configuration: configuration)
            try tx.audit(environment: user.environment, actor: actor.auditActor, op: "user.resend_invitation", target: user.scopedID.description)
            return .result(["user": user.json], revision: try tx.bumpRevision(user.environment))
        }
    }

    /// `user.get`: any active user of the environment; extra addresses are shown
    /// to administrators and to the user itself.
    func userGet(_ p: UserParams, _ request: Request) async throws -> OperationOutput {
        let target = p.user
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment]) { tx in
            let actor = try Self.activeActor(tx, actorRef)
            let user = try Self.targetUser(tx, in: actorRef.environment, target)
            guard case .object(var json) = user.json else { throw PortierError.internal() }
            if actor.role == .administrator || actor.id == user.id {
                json["emails"] = .array(try tx.extraEmails(user.environment, user: user.id).map(\.json))
            }
            return .result(["user": .object(json)])
        }
    }

    /// `user.list`: filters `status` and `role`, paged by id.
    func userList(_ p: UserListParams, _ request: Request) async throws -> OperationOutput {
        let (status, role, page) = (p.status, p.role, p.page)
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment]) { tx in
            _ = try Self.activeActor(tx, actorRef)
            let users = try tx.listUsers(actorRef.environment, status: status, role: role, after: page.after?.raw ?? 0, limit: page.fetch)
            return .result(page.result("users", users, id: \.scopedID, json: \.json))
        }
    }

    /// `user.set_role` (R-USR-5, R-USR-8): takes effect at once; the last active
    /// administrator cannot be demoted.
    func setRole(_ p: UserRoleParams, _ request: Request) async throws -> OperationOutput {
        let (target, role) = (p.user, p.role)
        let pausing = configuration.pausePoints
        return try await administer(request, target: target, action: "change roles") { tx, actor, user in
            guard user.role != role else { return nil }
            try Self.refuseLosingLastAdministrator(tx, user, losesAdministration: role != .administrator, pausing: pausing)
            let updated = try tx.updateUser(user.environment, user.id, role: role)
            return (updated, "user.set_role", Self.change("role", from: user.role.rawValue, to: role.rawValue))
        }
    }

    /// `user.block` (R-USR-5, R-USR-6, R-USR-8): an active user loses every permission until unblocked.
    func block(_ p: UserParams, _ request: Request) async throws -> OperationOutput {
        let target = p.user
        let pausing = configuration.pausePoints
        return try await administer(request, target: target, action: "block users") { tx, actor, user in
            switch user.status {
            case .blocked: throw PortierError.invalidState("the user is already blocked")
            case .invited: throw PortierError.invalidState("an invited user cannot be blocked; revoke the invitation with user.remove")
            case .active: break
            }
            try Self.refuseLosingLastAdministrator(tx, user, losesAdministration: true, pausing: pausing)
            let updated = try tx.updateUser(user.environment, user.id, status: .blocked)
            return (updated, "user.block", Self.change("status", from: "active", to: "blocked"))
        }
    }

    /// `user.unblock` (R-USR-5).
    func unblock(_ p: UserParams, _ request: Request) async throws -> OperationOutput {
        let target = p.user
        return try await administer(request, target: target, action: "unblock users") { tx, actor, user in
            guard user.status == .blocked else { throw PortierError.invalidState("the user is not blocked") }
            let updated = try tx.updateUser(user.environment, user.id, status: .active)
            return (updated, "user.unblock", Self.change("status", from: "blocked", to: "active"))
        }
    }

    /// `user.remove` (R-USR-5, R-USR-7, R-USR-8, R-USR-13): the user and all their
    /// memberships, here and in partner environments, go in one transaction.
    /// Also revokes a pending invitation.
    func remove(_ p: UserParams, _ request: Request) async throws -> OperationOutput {
        let target = p.user
        let actorRef = try await actorReference(request)
        let pausing = configuration.pausePoints
        return try await transaction(environments: [actorRef.environment], locking: actorRef.environment) { tx in
            let env = actorRef.environment
            let actor = try Self.administrator(tx, actorRef, to: "remove users")
            let user = try Self.targetUser(tx, in: env, target, lock: true)
            if pausing { try tx.pause(at: .userRemoveLocked) }
            try Self.refuseLosingLastAdministrator(tx, user, losesAdministration: true, pausing: pausing)
            let revision = try Self.removeUser(tx, user, actor: actor.auditActor, op: "user.remove")
            return .result([:], revision: revision)
        }
    }

    /// Deletes `user` with every membership (own and partner organisations), each
    /// audited where it lived, and bumps every environment touched.
    static func removeUser(_ tx: Transaction, _ user: UserRecord, actor: AuditActor, op: String) throws -> RevisionToken {
        let env = user.environment
        let partners = try tx.partnerMembershipEnvironments(env, user: user.id)
        if !partners.isEmpty {
            try tx.setEnvironments([env] + partners)
            for partner in partners.sorted() { try tx.lockEnvironment(partner) }
        }
        let userID = user.scopedID.description
        for (orgEnv, org) in try tx.removeAllMemberships(env, user: user.id) {
            let details: JSONValue = ["user": .string(userID), "reason": .string(op)]
            try tx.audit(environment: orgEnv, actor: actor, op: "member.remove", target: ScopedID(.organisation, environment: orgEnv, raw: org).description, details: details.jsonText)
        }
        try tx.deleteUser(env, user.id)
        // Links to a user that is gone (a revoked invitation, outstanding
        // resets) leave the outbox if the mailer has not taken them (§11).
        try tx.withdrawMessages(environment: env, kind: .activation, to: user.email)
        try tx.withdrawMessages(environment: env, kind: .passwordReset, to: user.email)
        let details: JSONValue = ["email": .string(user.email), "role": .string(user.role.rawValue), "status": .string(user.status.rawValue)]
        try tx.audit(environment: env, actor: actor, op: op, target: userID, details: details.jsonText)
        for partner in partners.sorted() { _ = try tx.bumpRevision(partner) }
        return try tx.bumpRevision(env)
    }

    /// R-USR-8, checked after the environment row is locked.
    /// With `pausing` (tests), waits at `lastAdministratorChecked` once the check passed.
    static func refuseLosingLastAdministrator(_ tx: Transaction, _ user: UserRecord, losesAdministration: Bool, pausing: Bool = false) throws {
        let isActiveAdministrator = user.role == .administrator && user.status == .active
        guard isActiveAdministrator, losesAdministration else { return }
        if AdministratorRule.violatesLastAdministrator(
            activeAdministrators: try tx.activeAdministratorCount(user.environment),
            targetIsActiveAdministrator: true, losesAdministration: true
        ) {
            throw PortierError.lastAdministrator
        }
        if pausing { try tx.pause(at: .lastAdministratorChecked) }
    }

    /// The shape shared by role and status changes: an administrator acts on a user
    /// of the same environment, under the environment lock; `change` returns the
    /// updated user with the audit op and details, or nil when nothing changes.
    private func administer(
        _ request: Request, target: UserReference, action: String,
        _ change: @escaping @Sendable (Transaction, UserRecord, UserRecord) throws -> (UserRecord, String, JSONValue)?
    ) async throws -> OperationOutput {
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment], locking: actorRef.environment) { tx in
            // The environment lock serialises every change that could remove an
            // administrator, so two of them cannot both pass the R-USR-8 check.
            let actor = try Self.administrator(tx, actorRef, to: action)
            let user = try Self.targetUser(tx, in: actorRef.environment, target, lock: true)
            guard let (updated, op, details) = try change(tx, actor, user) else { return .result(["user": user.json]) }
            try tx.audit(environment: user.environment, actor: actor.auditActor, op: op, target: user.scopedID.description, details: details.jsonText)
            return .result(["user": updated.json], revision: try tx.bumpRevision(user.environment))
        }
    }
}

extension ExtraEmailRecord {
    var json: JSONValue { ["email": .string(email), "verified": .bool(verified)] }
}

/// `user.invite`: `{email, role?, name?}` (role defaults to basic).
struct InviteParams: OperationParams {
    static let keys: Set<String> = ["email", "role", "name"]
    let email: EmailAddress
    let role: EnvironmentRole
    let name: String
    init(_ params: JSONObject) throws {
        email = try EmailAddress(try params.requiredString("email"))
        role = try params.optionalEnum("role", EnvironmentRole.self) ?? .basic
        name = try PortierService.personName(params.optionalString("name"))
    }
}

/// `user.list`: `{status?, role?, limit?, cursor?}`.
struct UserListParams: OperationParams {
    static let keys: Set<String> = PageRequest.keys.union(["status", "role"])
    let status: UserStatus?
    let role: EnvironmentRole?
    let page: PageRequest
    init(_ params: JSONObject) throws {
        status = try params.optionalEnum("status", UserStatus.self)
        role = try params.optionalEnum("role", EnvironmentRole.self)
        page = try PageRequest(params, kind: .user)
    }
}

/// `user.set_role`: `{user, role}`.
struct UserRoleParams: OperationParams {
    static let keys: Set<String> = ["user", "role"]
    let user: UserReference
    let role: EnvironmentRole
    init(_ params: JSONObject) throws {
        user = try PortierService.userParam(params)
        guard let role = try params.optionalEnum("role", EnvironmentRole.self) else { throw PortierError.badRequest("params.role is required") }
        self.role = role
    }
}
