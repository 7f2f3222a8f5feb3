import PortierDomain
import PortierPasswords
import PortierProtocol
import PortierStorage

extension PortierService {
    /// `user.activate` (R-USR-2, R-ENV-7): token and new password make the user active.
    func activate(_ p: TokenPasswordParams, _ request: Request, context: RequestContext) async throws -> OperationOutput {
        try await pacingRefusals(context) { try await activateNow(p, context: context) }
    }

    private func activateNow(_ p: TokenPasswordParams, context: RequestContext) async throws -> OperationOutput {
        let (token, passwordHash) = try await hashForToken(p, purpose: .activation, context: context)
        let pausing = configuration.pausePoints
        // The environment is locked first: who is administrator must not move
        // under us, and the cleanup of unactivated environments waits (R-SEC-4).
        return try await transaction(environments: [token.environment], locking: token.environment) { tx in
            let environment = token.environment
            let record = try Self.usableToken(tx, token, purpose: .activation)
            if pausing { try tx.pause(at: .activationChecked) }
            guard let user = try tx.user(environment, record.userID, lock: true) else {
                throw PortierError(.expiredToken, "the token is not valid")
            }
            guard user.status == .invited else { throw PortierError.invalidState("the user is already activated") }
            var activated = try tx.activateUser(environment, user.id, passwordHash: passwordHash, promote: false)
            try tx.markTokenUsed(environment: environment, id: record.id)
            let email = try EmailAddress(user.email)
            let confirmed = try tx.confirmClaim(email.domain, environment: environment)
            let target = user.scopedID.description
            let details: JSONValue = ["confirmed_domain": confirmed.map(JSONValue.string) ?? .null]
            try tx.audit(environment: environment, actor: activated.auditActor, op: "user.activate", target: target, details: details.jsonText)
            // R-ENV-7: nobody is promoted while the creator's window is open (a
            // colleague who activates first stays basic). Past it, and before the
            // janitor settled it, the window is settled now: the earliest
            // activated user, this one or an earlier colleague, is promoted.
            if activated.role == .administrator {
                try tx.markEnvironmentActivated(environment)
            } else if try tx.activeAdministrators(environment).isEmpty, try tx.isExpiredUnactivated(environment) {
                _ = try Self.settleActivationWindow(tx, environment)
                activated = try tx.user(environment, user.id) ?? activated
            }
            return .result(["user": activated.json], revision: try tx.bumpRevision(environment))
        }
    }

    /// A token operation's `token` and `password` params: the token, and the
    /// new password's hash, computed in a turn at the hasher (R-SEC-2) after
    /// the token was found usable, so an unknown, used or expired one costs no
    /// hash, and a flood past the turns' bounds is refused before it costs a
    /// query. Hashed before the caller's transaction: no lock is held during
    /// the slow part (the caller checks the token again, locked).
    func hashForToken(_ p: TokenPasswordParams, purpose: TokenPurpose, context: RequestContext) async throws -> (SecretToken, String) {
        let (presented, password) = (p.token, p.password)
        try PasswordHasher.validate(password)
        guard let token = SecretToken(presented: presented) else { throw PortierError(.expiredToken, "the token is not valid") }
        let hash = try await hashTurns.run(Self.hashKey(context, client: nil)) {
            _ = try await transaction(environments: [token.environment]) { tx in try Self.usableToken(tx, token, purpose: purpose) }
            return try await passwords.hash(password)
        }
        return (token, hash)
    }

    /// The token row if it can still be used; otherwise the reason why not.
    static func usableToken(_ tx: Transaction, _ token: SecretToken, purpose: TokenPurpose) throws -> TokenRecord {
        guard let record = try tx.token(environment: token.environment, hash: token.hash), record.purpose == purpose else {
            throw PortierError(.expiredToken, "the token is not valid")
        }
        if record.isUsed { throw PortierError(.expiredToken, "the token was already used") }
        if record.isRevoked { throw PortierError(.expiredToken, "the token was replaced by a newer one") }
        if record.isExpired { throw PortierError(.expiredToken, "the token has expired") }
        return record
    }

    /// `user.authenticate` (R-USR-4): the same `invalid_credentials` for every wrong
    /// case, `blocked` only with the right password. Unknown users cost the same time.
    func authenticate(_ p: LoginParams, _ request: Request, context: RequestContext) async throws -> OperationOutput {
        try await pacingRefusals(context) { try await authenticateNow(p, context: context) }
    }

    private func authenticateNow(_ p: LoginParams, context: RequestContext) async throws -> OperationOutput {
        let (email, password, client) = (p.email, p.password, p.client)
        // Before anything else, and the same for unknown addresses (R-USR-4).
        if throttle.isLimited(email.normalized, client: client) {
            throw PortierError(.rateLimited, "too many failed logins for this address; try again later")
        }
        // The whole check, database lookup included, runs in a turn at the
        // hasher: a flood past its bounds is refused (`overloaded`) before it
        // costs a query, and a flood within them waits its turn (R-SEC-2).
        let key = Self.hashKey(context, client: client)
        let (found, matches): ((UserRecord, EnvironmentRecord)?, Bool) = try await hashTurns.run(key) {
            let found: (UserRecord, EnvironmentRecord)? = try await transaction { tx in
                guard let owner = try tx.emailOwner(email.normalized), owner.isPrimary else { return nil }
                try tx.setEnvironments([owner.environment])
                guard let user = try tx.user(owner.environment, owner.user), let env = try tx.environment(owner.environment) else { return nil }
                return (user, env)
            }
            let stored = found?.0.status == .invited ? nil : found?.0.passwordHash
            return (found, try await passwords.verify(password, against: stored))
        }
        guard let user = found?.0, let environment = found?.1, let stored = user.passwordHash, user.status != .invited, matches else {
            throttle.failed(email.normalized, client: client)
            throw PortierError.invalidCredentials
        }
        if user.status == .blocked { throw PortierError(.blocked, "the user is blocked; ask an administrator") }
        if passwords.needsRehash(stored) {
            // Stronger parameters than when it was stored: upgrade it now (R-USR-4).
            let upgraded = try await hashTurns.run(key) { try await passwords.hash(password) }
            _ = try await transaction(environments: [user.environment]) { tx in
                try tx.replacePasswordHash(user.environment, user.id, from: stored, to: upgraded)
            }
        }
        return .result(["user": user.json, "environment": environment.json])
    }

    /// Codes of a refused credential request that answer only after
    /// `credentialRefusalDelay`.
    static let pacedRefusals: Set<ErrorCode> = [.expiredToken, .invalidCredentials, .rateLimited, .overloaded]

    /// Runs a credential operation (activation, login, password reset and
    /// change); a refusal past its connection's burst (`RefusalPacer`) waits
    /// `credentialRefusalDelay` before it is thrown (R-SEC-2). The wait holds
    /// no hasher turn and no database connection, only the request's in-flight
    /// slot, so a client that retries at once can refuse itself no faster than
    /// its in-flight bound per delay: refusals stop being cheaper than the
    /// hashes they would otherwise starve of CPU. Cancelled with the request.
    func pacingRefusals(_ context: RequestContext, _ body: () async throws -> OperationOutput) async throws -> OperationOutput {
        do {
            return try await body()
        } catch let error as PortierError where Self.pacedRefusals.contains(error.code) {
            if refusals.mustWait(context.connection) { try await Task.sleep(for: configuration.credentialRefusalDelay) }
            throw error
        }
    }

    /// Whose turn at the hasher a request takes: its connection's and, within
    /// it, the end user's `client` (the front end's few connections carry many).
    static func hashKey(_ context: RequestContext, client: String?) -> FairQueue.Key {
        FairQueue.Key(connection: context.connection, client: client ?? "")
    }
}

/// `user.authenticate`: `{email, password, client?}`.
struct LoginParams: OperationParams {
    static let keys: Set<String> = ["email", "password", "client"]
    let email: EmailAddress
    let password: String
    let client: String?
    init(_ params: JSONObject) throws {
        email = try EmailAddress(try params.requiredString("email"))
        password = try params.requiredString("password")
        client = try params.optionalString("client")
        // R-SEC-5: a throttling key is kept per failed login: bounded, not whatever a caller sends.
        if let client, client.utf8.count > Self.maximumClientBytes {
            throw PortierError.badRequest("client must be at most \(Self.maximumClientBytes) bytes (a front end's key for its end user, e.g. an IP address)")
        }
    }

    /// The longest `client` key (R-SEC-5).
    static let maximumClientBytes = 256
}
