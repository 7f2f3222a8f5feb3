import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// Most extra addresses one user may have.
    static let maximumExtraEmails = 20

    /// `user.email.add` (R-USR-11, R-ENV-6): the actor adds an address to itself;
    /// it is usable once verified. The address is reserved only at verification,
    /// so nobody can squat on someone else's address by adding it unverified.
    func emailAdd(_ p: EmailParams, _ request: Request) async throws -> OperationOutput {
        let email = p.email
        let actorRef = try await actorReference(request)
        let configuration = self.configuration
        return try await transaction(environments: [actorRef.environment]) { tx in
            let user = try Self.activeActor(tx, actorRef)
            if try tx.emailOwner(email.normalized) != nil { throw PortierError.conflict("this address already belongs to a user") }
            try Self.refuseOthersDomain(tx, email, for: user.environment)
            let extras = try tx.extraEmails(user.environment, user: user.id)
            if extras.contains(where: { $0.emailNorm == email.normalized }) { throw PortierError.conflict("this address was already added; verify it") }
            guard extras.count < Self.maximumExtraEmails else { throw PortierError.invalidState("a user can have at most \(Self.maximumExtraEmails) extra addresses") }
            try tx.insertExtraEmail(user.environment, user: user.id, email: email)
            let token = SecretToken(environment: user.environment)
            try tx.issueToken(
                environment: user.environment, user: user.id, purpose: .emailVerification, hash: token.hash,
                emailNorm: email.normalized, lifetimeSeconds: configuration.tokenLifetimeSeconds
            )
            let details: JSONValue = ["user": .string(user.scopedID.description), "email": .string(email.display)]
            try Self.enqueueCapped(tx, environment: user.environment, kind: .emailVerification, to: email.display, token: token.text, payload: details.jsonText, sender: .environment(user.environment), configuration: configuration)
            try tx.audit(environment: user.environment, actor: user.auditActor, op: "user.email.add", target: user.scopedID.description, details: JSONValue.object(["email": .string(email.display)]).jsonText)
            let record = ExtraEmailRecord(email: email.display, emailNorm: email.normalized, verified: false)
            return .result(["email": record.json], revision: try tx.bumpRevision(user.environment))
        }
    }

    /// `user.email.verify` (R-USR-11): the token from the verification message makes the address usable.
    func emailVerify(_ p: EmailTokenParams, _ request: Request) async throws -> OperationOutput {
        guard let token = p.token else {
            throw PortierError(.expiredToken, "the token is not valid")
        }
        do {
            return try await transaction(environments: [token.environment]) { tx in
                let record = try Self.usableToken(tx, token, purpose: .emailVerification)
                guard let emailNorm = record.emailNorm, let user = try tx.user(token.environment, record.userID),
                      let extra = try tx.extraEmail(token.environment, user: user.id, emailNorm: emailNorm)
                else { throw PortierError(.expiredToken, "the address was removed") }
                if try tx.emailOwner(emailNorm) != nil { throw PortierError.conflict("this address now belongs to another user") }
                try tx.registerEmail(emailNorm, environment: user.environment, user: user.id, isPrimary: false)
                try tx.markExtraEmailVerified(user.environment, user: user.id, emailNorm: emailNorm)
                try tx.markTokenUsed(environment: user.environment, id: record.id)
                try tx.audit(environment: user.environment, actor: user.auditActor, op: "user.email.verify", target: user.scopedID.description, details: JSONValue.object(["email": .string(extra.email)]).jsonText)
                let verified = ExtraEmailRecord(email: extra.email, emailNorm: emailNorm, verified: true)
                guard case .object(var json) = verified.json else { throw PortierError.internal() }
                json["user"] = .string(user.scopedID.description)
                return .result(["email": .object(json)], revision: try tx.bumpRevision(user.environment))
            }
        } catch let error as DatabaseError where error.kind == .uniqueViolation && error.constraint == "email_directory_pkey" {
            throw PortierError.conflict("this address now belongs to another user")
        }
    }

    /// `user.email.remove` (R-USR-11): the primary address cannot be removed.
    func emailRemove(_ p: EmailParams, _ request: Request) async throws -> OperationOutput {
        let email = p.email
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment]) { tx in
            let user = try Self.activeActor(tx, actorRef)
            if email.normalized == (try EmailAddress(user.email)).normalized {
                throw PortierError.badRequest("the primary address cannot be removed")
            }
            guard try tx.extraEmail(user.environment, user: user.id, emailNorm: email.normalized) != nil else {
                throw PortierError.notFound("address")
            }
            try tx.deleteExtraEmail(user.environment, user: user.id, emailNorm: email.normalized)
            try tx.audit(environment: user.environment, actor: user.auditActor, op: "user.email.remove", target: user.scopedID.description, details: JSONValue.object(["email": .string(email.display)]).jsonText)
            return .result([:], revision: try tx.bumpRevision(user.environment))
        }
    }
}

/// `user.email.verify`: `{token}`; nil when the text cannot be a token at all
/// (answered `expired_token`, like any token that does not work).
struct EmailTokenParams: OperationParams {
    static let keys: Set<String> = ["token"]
    let token: SecretToken?
    init(_ params: JSONObject) throws { token = SecretToken(presented: try params.requiredString("token")) }
}
