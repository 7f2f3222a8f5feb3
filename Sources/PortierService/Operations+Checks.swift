import PortierDomain
import PortierIndex
import PortierProtocol
import PortierStorage

/// One question: may `user` hold `permission` (in `organisation`)?
struct CheckQuestion: Sendable {
    let user: UserReference
    let permission: Permission
    let organisation: ScopedID?

    /// Reads `{user, permission, organisation?}`; an unknown permission, or a missing
    /// organisation for an organisation-scoped one, is `bad_request` (R-PRM-3).
    private static let keys: Set<String> = ["user", "permission", "organisation"]

    init(_ params: JSONObject, field: String = "params") throws {
        try params.rejectUnknownKeys(allowed: Self.keys)
        user = try UserReference(try params.requiredString("user"), field: "\(field).user")
        permission = try Permission(name: try params.requiredString("permission"))
        if let text = try params.optionalString("organisation") {
            guard let id = ScopedID(text, kind: .organisation) else { throw PortierError.badRequest("\(field).organisation must be an organisation id") }
            organisation = permission.rule.scope == .organisation ? id : nil
        } else {
            guard permission.rule.scope == .environment else {
                throw PortierError.badRequest("\(permission.rawValue) is organisation-scoped: \(field).organisation is required")
            }
            organisation = nil
        }
    }

    /// The environments the answer depends on: the user's and the organisation's;
    /// nil while the user is named by email (its environment is not known yet).
    var environments: Set<EnvironmentID>? {
        guard case .id(let id) = user else { return nil }
        return Set([id.environment] + (organisation.map { [$0.environment] } ?? []))
    }
}

extension PortierService {
    /// Whether to answer from PostgreSQL: asked for (`full`), the index cannot
    /// show the revision asked for (R-PRM-5), or an environment read is not
    /// loaded yet.
    ///
    /// A token names one environment, and a mutation that changed several
    /// (a partner membership, a partnership) returns the token of one of them: a
    /// read that depends on an environment other than the token's cannot be shown
    /// fresh by the index, so it is answered from PostgreSQL. `reading` nil means
    /// "not known without the database".
    ///
    /// A cold environment loads in the background while PostgreSQL answers (one
    /// question costs a few indexed queries; loading a large environment costs
    /// tens of milliseconds). `waitForLoad` is for reads of many questions
    /// (`check.bulk`), which the load pays for.
    func needsDatabase(_ consistency: Consistency?, reading environments: Set<EnvironmentID>?, waitForLoad: Bool = false) async throws -> Bool {
        func cold() -> Bool { !waitForLoad && !(environments.map(indexes.loadedOrWarming) ?? true) }
        switch consistency {
        case nil: return cold()
        case .full?: return true
        case .atLeast(let text)?:
            guard let token = RevisionToken(text) else { throw PortierError.badRequest("consistency.at_least is not a revision token") }
            guard environments == [token.environment] else { return true }
            if cold() { return true }
            return try await !satisfies(token)
        }
    }

    /// `check` (SPEC §7, R-PRM-1…3): from the index; from PostgreSQL for `full`,
    /// a token the index cannot show yet, or a cold environment (`needsDatabase`).
    func check(_ request: Request) async throws -> OperationOutput {
        let question = try CheckQuestion(request.params)
        if try await needsDatabase(request.consistency, reading: question.environments) {
            let decision = try await pool.transaction { tx in try Self.decide(tx, question) }
            return .result(decision.jsonObject)
        }
        let (decision, token) = try await indexedDecision(question)
        return OperationOutput(result: decision.jsonObject, revision: token)
    }

    /// `check.bulk`: up to 1,000 questions, answered in order in one snapshot.
    func checkBulk(_ request: Request) async throws -> OperationOutput {
        try request.params.rejectUnknownKeys(allowed: ["checks"])
        let items = try request.params.requiredArray("checks")
        guard !items.isEmpty, items.count <= 1000 else { throw PortierError.badRequest("params.checks must hold 1 to 1000 checks") }
        var questions: [CheckQuestion] = []
        for (i, item) in items.enumerated() {
            guard case .object(let o) = item else { throw PortierError.badRequest("params.checks[\(i)] must be an object") }
            questions.append(try CheckQuestion(o, field: "params.checks[\(i)]"))
        }
        let asked = questions
        let reading = asked.reduce(Set<EnvironmentID>?.some([])) { all, q in q.environments.flatMap { e in all.map { $0.union(e) } } }
        if try await needsDatabase(request.consistency, reading: reading, waitForLoad: true) {
            let decisions = try await pool.snapshot(environments: []) { tx in try asked.map { try Self.decide(tx, $0) } }
            return .result(["results": .array(decisions.map(\.json))])
        }
        var decisions: [Decision] = []
        decisions.reserveCapacity(asked.count)
        for question in asked { decisions.append(try await indexedDecision(question).0) }
        return .result(["results": .array(decisions.map(\.json))])
    }

    /// Gathers the facts of one question inside `tx` and lets the domain decide.
    static func decide(_ tx: Transaction, _ q: CheckQuestion) throws -> Decision {
        guard let user = try resolveAnyUser(tx, q.user) else { return q.permission.decide(PermissionFacts(user: nil)) }
        var facts = PermissionFacts(user: (user.role, user.status, user.environment))
        if let orgID = q.organisation {
            try tx.setEnvironments(scope(user.environment, orgID.environment))
            if try tx.organisation(orgID) != nil {
                facts.organisationEnvironment = orgID.environment
                facts.membership = try tx.membership(organisation: orgID, user: user.scopedID).map { ($0.role, $0.status) }
            }
        }
        return q.permission.decide(facts)
    }

    /// A user of any environment by id or email (primary or verified extra), or nil.
    static func resolveAnyUser(_ tx: Transaction, _ ref: UserReference) throws -> UserRecord? {
        guard let target = try locate(tx, ref) else { return nil }
        try tx.setEnvironments([target.environment])
        return try tx.user(target.environment, target.raw)
    }

    /// `lookup.organisations` (R-PRM-4): the organisations where the user holds an
    /// organisation-scoped permission, decided by the same rule as `check`.
    func lookupOrganisations(_ request: Request) async throws -> OperationOutput {
        try request.params.rejectUnknownKeys(allowed: ["user", "permission", "limit", "cursor"])
        let ref = try Self.userParam(request.params)
        let permission = try Self.organisationPermission(request.params)
        let page = try PageRequest(request.params, kind: .organisation)
        var fromIndex = request.consistency == nil
        if case .id(let id) = ref {
            fromIndex = try await !needsDatabase(request.consistency, reading: [id.environment])
            if fromIndex, request.consistency != nil { fromIndex = try await !hasPartnerLinks(UserKey(environment: id.environment, id: id.raw)) }
        }
        if fromIndex {
            guard let key = try await userKey(ref) else { return .result(["organisations": []]) }
            let found = try await indexedOrganisations(of: key, permission, page: page)
            return .result(page.result("organisations", found, id: { ScopedID(.organisation, environment: $0.0, raw: $0.1.id) }) { $0.1.json(environment: $0.0) })
        }
        let organisations = try await pool.transaction { tx -> [OrganisationRecord] in
            guard let user = try Self.resolveAnyUser(tx, ref), user.status == .active else { return [] }
            var memberships = try tx.ownMemberships(user: user.scopedID)
            let links = try tx.partnerOrganisationLinks(user: user.scopedID)
            try tx.setEnvironments([user.environment] + Set(links.map(\.environment)).sorted())
            memberships += try tx.partnerMemberships(user: user.scopedID, organisations: links)
            var candidates = Set(memberships.map(\.organisation))
            if user.role == .administrator { candidates.formUnion(try tx.organisations(user.environment).map(\.scopedID)) }
            let byOrganisation = Dictionary(uniqueKeysWithValues: memberships.map { ($0.organisation, $0) })
            return try tx.organisations(candidates.filter(page.isAfterCursor)).filter { org in
                let m = byOrganisation[org.scopedID]
                let facts = PermissionFacts(user: (user.role, user.status, user.environment), organisationEnvironment: org.environment,
                                            membership: m.map { ($0.role, $0.status) })
                return permission.decide(facts).allowed
            }
        }
        return .result(page.result("organisations", Array(organisations.prefix(page.fetch)), id: \.scopedID, json: \.json))
    }

    /// `lookup.users` (R-PRM-4): the users holding an organisation-scoped permission
    /// in an organisation, own and partner environments alike.
    func lookupUsers(_ request: Request) async throws -> OperationOutput {
        try request.params.rejectUnknownKeys(allowed: ["organisation", "permission", "limit", "cursor"])
        let orgID = try Self.organisationParam(request.params)
        let permission = try Self.organisationPermission(request.params)
        let page = try PageRequest(request.params, kind: .user)
        var fromIndex = try await !needsDatabase(request.consistency, reading: [orgID.environment])
        if fromIndex, request.consistency != nil { fromIndex = try await !hasPartnerMembers(orgID) }
        if fromIndex {
            let found = try await indexedUsers(of: orgID, permission, page: page)
            return .result(page.result("users", found, id: { ScopedID(.user, environment: $0.0, raw: $0.1.id) }) { $0.1.json(environment: $0.0) })
        }
        let users = try await pool.transaction(environments: [orgID.environment]) { tx -> [UserRecord] in
            guard try tx.organisation(orgID) != nil else { return [] }
            let memberships = try tx.memberships(organisation: orgID)
            try tx.setEnvironments(Array(Set(memberships.map(\.user.environment) + [orgID.environment])).sorted())
            let byUser = Dictionary(uniqueKeysWithValues: memberships.map { ($0.user, $0) })
            let admins = try tx.activeAdministrators(orgID.environment).map { ScopedID(.user, environment: orgID.environment, raw: $0) }
            let candidates = Set(memberships.map(\.user) + admins).filter(page.isAfterCursor)
            return try tx.users(Array(candidates)).filter { user in
                let m = byUser[user.scopedID]
                let facts = PermissionFacts(user: (user.role, user.status, user.environment), organisationEnvironment: orgID.environment,
                                            membership: m.map { ($0.role, $0.status) })
                return permission.decide(facts).allowed
            }
        }
        return .result(page.result("users", Array(users.prefix(page.fetch)), id: \.scopedID, json: \.json))
    }

    static func organisationPermission(_ params: JSONObject) throws -> Permission {
        let permission = try Permission(name: try params.requiredString("permission"))
        guard permission.rule.scope == .organisation else {
            throw PortierError.badRequest("\(permission.rawValue) is environment-scoped; lookups take organisation-scoped permissions")
        }
        return permission
    }
}
