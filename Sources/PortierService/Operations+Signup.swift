import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// `signup` (R-ENV-2…R-ENV-8): a new environment, or joining the one that
    /// claims the email's domain. The user starts `invited`; the activation link
    /// goes to the outbox.
    func signup(_ p: SignupParams) async throws -> OperationOutput {
        let (email, name) = (p.email, p.name)
        let configuration = self.configuration
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await transaction { tx in try Self.signup(tx, email: email, name: name, configuration: configuration) }
            } catch let error as DatabaseError where error.kind == .uniqueViolation {
                switch error.constraint {
                // Two first sign-ups on one domain raced: the loser retries and joins.
                case "domain_claims_pkey" where attempt < 3: continue
                case "email_directory_pkey": throw PortierError.conflict("an account with this email already exists")
                default: throw error
                }
            }
        }
    }

    private static func signup(_ tx: Transaction, email: EmailAddress, name: String, configuration: ServiceConfiguration) throws -> OperationOutput {
        try releaseExpiredInvitation(tx, email, scope: [])
        if try tx.emailOwner(email.normalized) != nil {
            throw PortierError.conflict("an account with this email already exists")
        }
        // The domain's claim or a parent's (R-ENV-10): sales.acme.test joins the environment claiming acme.test.
        var claimant = try tx.coveringClaim(email.domain)?.environment
        if let stale = claimant, try tx.isExpiredUnactivated(stale) {
            // R-ENV-7: nobody activated in time; the claim is free again. Locked
            // and checked again first, as an activation locks it (R-SEC-4).
            try tx.setEnvironments([stale])
            try tx.lockEnvironment(stale)
            guard try tx.isExpiredUnactivated(stale) else { throw PortierError(.unavailable, "the environment was just activated; retry") }
            // A colleague activated: the environment stays (and gets its administrator); the sign-up joins it.
            if try settleActivationWindow(tx, stale) { claimant = nil }
        }
        let environment: EnvironmentID
        let user: UserRecord
        let joined: String
        switch SignupPlan.decide(email: email, claimedBy: claimant?.raw, shared: configuration.sharedMailDomains) {
        case .createEnvironment(let claim):
            environment = try tx.createEnvironment(
                name: claim ?? email.normalized, claim: claim, activationDeadlineSeconds: configuration.activationWindowSeconds
            )
            user = try tx.insertUser(environment: environment, email: email, name: name, role: .administrator)
            joined = "created"
        case .joinEnvironment(let raw):
            environment = EnvironmentID(raw)
            try tx.setEnvironments([environment])
            user = try tx.insertUser(environment: environment, email: email, name: name, role: .basic)
            joined = "existing"
            // R-ENV-8: nobody joins unnoticed. Past the hourly notice limit the
            // administrators get one summary an hour instead (R-USR-16); the
            // sign-up itself is never refused for it.
            let admins = try tx.users(environment, role: .administrator, excludingStatus: .blocked)
            let recent = try tx.recentDomainJoinNotices(environment)
            let joinsThisHour = try tx.recentEvents(environment, op: "signup", withinSeconds: 3600)
            if joinsThisHour < configuration.domainJoinNoticesPerHour {
                for admin in admins {
                    let details: JSONValue = ["user": .string(user.scopedID.description), "email": .string(email.display)]
                    try tx.enqueueMessage(environment: environment, kind: .domainJoin, to: admin.email, payload: details.jsonText)
                }
            } else if !recent.summarised {
                for admin in admins {
                    let details: JSONValue = ["coalesced": true, "joined_this_hour": .int(Int64(joinsThisHour + 1)),
                                              "note": "more people joined through the domain; see user.list"]
                    try tx.enqueueMessage(environment: environment, kind: .domainJoin, to: admin.email, payload: details.jsonText)
                }
            }
        }
        let token = SecretToken(environment: environment)
        try tx.issueToken(
            environment: environment, user: user.id, purpose: .activation, hash: token.hash,
            emailNorm: nil, lifetimeSeconds: configuration.tokenLifetimeSeconds
        )
        let message: JSONValue = ["user": .string(user.scopedID.description)]
        try enqueueCapped(tx, environment: environment, kind: .activation, to: email.display, token: token.text, payload: message.jsonText, sender: .own("signup"), configuration: configuration)
        let details: JSONValue = ["joined": .string(joined), "role": .string(user.role.rawValue), "email": .string(email.display)]
        try tx.audit(environment: environment, actor: user.auditActor, op: "signup", target: user.scopedID.description, details: details.jsonText)
        let revision = try tx.bumpRevision(environment)
        guard let record = try tx.environment(environment) else { throw PortierError.internal() }
        return .result(["user": user.json, "environment": record.json, "joined": .string(joined)], revision: revision)
    }

    /// A person's display name: trimmed, at most 200 characters.
    static func personName(_ raw: String?) throws(PortierError) -> String {
        do throws(InvalidInput) {
            return try DisplayNames.validate(raw ?? "", allowEmpty: true)
        } catch {
            throw .badRequest(error.message)
        }
    }
}

/// `signup`: `{email, name?}`.
struct SignupParams: OperationParams {
    static let keys: Set<String> = ["email", "name"]
    let email: EmailAddress
    let name: String
    init(_ params: JSONObject) throws {
        email = try EmailAddress(try params.requiredString("email"))
        name = try PortierService.personName(params.optionalString("name"))
    }
}
