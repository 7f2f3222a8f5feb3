import PortierDomain
import PortierPasswords
import PortierProtocol
import PortierStorage

extension PortierService {
    /// `user.password.forgot` (R-USR-14): always `{}`, exactly at
    /// `passwordForgotFloor`, whatever the address, the caps or the database
    /// do: the work (for the primary address of an active user, a single-use
    /// reset token and a `password_reset` message; earlier outstanding tokens
    /// stay valid, so asking again cannot kill a victim's link) runs on its own
    /// and its failures are logged, not answered, so neither content nor
    /// timing tells a user's address from an unknown one. A floor of zero
    /// (tests) answers when the work is done instead.
    func passwordForgot(_ p: EmailParams) async throws -> OperationOutput {
        let email = p.email
        let floor = configuration.passwordForgotFloor
        let deadline = ContinuousClock.now + floor
        let work = Task { [self] in
            do {
                try await issuePasswordReset(email)
            } catch {
                logger.warning("user.password.forgot failed", metadata: ["error": "\(error)"])
            }
        }
        if floor == .zero { await work.value } else { try await Task.sleep(until: deadline) }
        return .result([:])
    }

    /// The work of `user.password.forgot`: nothing for an unknown, inactive or
    /// extra address; past the recipient's cap, nothing either (R-USR-16).
    private func issuePasswordReset(_ email: EmailAddress) async throws {
        let configuration = self.configuration
        do {
            try await transaction { tx in
                guard let owner = try tx.emailOwner(email.normalized), owner.isPrimary else { return }
                try tx.setEnvironments([owner.environment])
                guard let user = try tx.user(owner.environment, owner.user), user.status == .active else { return }
                let token = SecretToken(environment: user.environment)
                try tx.issueToken(environment: user.environment, user: user.id, purpose: .passwordReset, hash: token.hash,
                                  emailNorm: nil, lifetimeSeconds: configuration.passwordResetLifetimeSeconds)
                let message: JSONValue = ["user": .string(user.scopedID.description), "expires_in_seconds": .int(configuration.passwordResetLifetimeSeconds)]
                try Self.enqueueCapped(tx, environment: user.environment, kind: .passwordReset, to: user.email, token: token.text,
                                       payload: message.jsonText, sender: .own("password_reset"), configuration: configuration)
                try tx.audit(environment: user.environment, actor: .system, op: "user.password.forgot", target: user.scopedID.description)
            }
        } catch let error as PortierError where error.code == .rateLimited {
            // Past the recipient's cap nothing was written, and the caller is not told (R-USR-16).
        }
    }

    /// `user.password.reset` (R-USR-14): a reset token and a new password. Sets
    /// the password, kills every outstanding reset token of the user (and
    /// withdraws their messages), clears the address's login throttling.
    func passwordReset(_ p: TokenPasswordParams, _ request: Request, context: RequestContext) async throws -> OperationOutput {
        try await pacingRefusals(context) {
            let (token, passwordHash) = try await hashForToken(p, purpose: .passwordReset, context: context)
            // The environment first, like every change of a user (no lock-order cycle).
            let user = try await transaction(environments: [token.environment], locking: token.environment) { tx in
                let record = try Self.usableToken(tx, token, purpose: .passwordReset)
                guard let user = try tx.user(token.environment, record.userID, lock: true) else { throw PortierError(.expiredToken, "the token is not valid") }
                if user.status == .blocked { throw PortierError(.blocked, "the user is blocked; ask an administrator") }
                guard user.status == .active else { throw PortierError(.expiredToken, "the token is not valid") }
                try tx.setPasswordHash(user.environment, user.id, to: passwordHash)
                try tx.markTokenUsed(environment: user.environment, id: record.id)
                try Self.killPasswordResets(tx, user)
                try tx.audit(environment: user.environment, actor: user.auditActor, op: "user.password.reset", target: user.scopedID.description)
                return user
            }
            throttle.clear(user.email.lowercased())  // stored addresses are normalised ASCII
            return .result(["user": user.json])
        }
    }

    /// `user.password.change` (R-USR-15): the actor's own password, given the
    /// current one. A wrong current password is `invalid_credentials` and counts
    /// towards the login throttling (R-USR-4); a change kills every outstanding
    /// reset token.
    func passwordChange(_ p: PasswordChangeParams, _ request: Request, context: RequestContext) async throws -> OperationOutput {
        try await pacingRefusals(context) {
            let (current, new) = (p.currentPassword, p.newPassword)
            try PasswordHasher.validate(new)
            let actorRef = try await actorReference(request)
            let key = Self.hashKey(context, client: nil)
            let actor = try await transaction(environments: [actorRef.environment]) { tx in try Self.activeActor(tx, actorRef) }
            let address = actor.email.lowercased()
            if throttle.isLimited(address, client: nil) {
                throw PortierError(.rateLimited, "too many failed password checks for this address; try again later")
            }
            guard let stored = actor.passwordHash else { throw PortierError.invalidCredentials }
            let (matches, newHash) = try await hashTurns.run(key) {
                guard try await passwords.verify(current, against: stored) else { return (false, "") }
                return (true, try await passwords.hash(new))
            }
            guard matches else {
                throttle.failed(address, client: nil)
                throw PortierError.invalidCredentials
            }
            return try await transaction(environments: [actorRef.environment], locking: actorRef.environment) { tx in
                _ = try Self.activeActor(tx, actorRef)
                guard try tx.replacePasswordHash(actor.environment, actor.id, from: stored, to: newHash) else {
                    throw PortierError.conflict("the password was changed meanwhile; try again with the current one")
                }
                try Self.killPasswordResets(tx, actor)
                try tx.audit(environment: actor.environment, actor: actor.auditActor, op: "user.password.change", target: actor.scopedID.description)
                return .result([:])
            }
        }
    }

    /// Every outstanding reset token of `user` stops working, and the messages
    /// carrying them that the mailer has not taken are withdrawn.
    static func killPasswordResets(_ tx: Transaction, _ user: UserRecord) throws {
        try tx.revokeTokens(environment: user.environment, user: user.id, purpose: .passwordReset)
        try tx.withdrawMessages(environment: user.environment, kind: .passwordReset, to: user.email)
    }
}

/// `user.password.change`: `{current_password, new_password}`.
struct PasswordChangeParams: OperationParams {
    static let keys: Set<String> = ["current_password", "new_password"]
    let currentPassword: String
    let newPassword: String
    init(_ params: JSONObject) throws {
        currentPassword = try params.requiredString("current_password")
        newPassword = try params.requiredString("new_password")
    }
}
