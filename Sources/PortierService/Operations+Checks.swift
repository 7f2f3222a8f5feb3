import PortierDomain
import PortierIndex
import PortierProtocol
import PortierStorage

/// One question: may `user` hold `permission` (in `organisation`)?
struct CheckQuestion: OperationParams {
    let user: UserReference
    let permission: Permission
    let organisation: ScopedID?

    static let keys: Set<String> = ["user", "permission", "organisation"]

    init(_ params: JSONObject) throws { try self.init(params, field: "params") }

    /// Reads `{user, permission, organisation?}`; an unknown permission, or a missing
    /// organisation for an organisation-scoped one, is `bad_request` (R-PRM-3).
    init(_ params: JSONObject, field: String) throws {
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

/// `check.bulk`: `{checks}`, 1 to 1,000 questions.
struct CheckBulkParams: OperationParams {
    static let keys: Set<String> = ["checks"]
    static let limit = 1000
    let questions: [CheckQuestion]

    init(_ params: JSONObject) throws {
        try params.rejectUnknownKeys(allowed: Self.keys)
        let items = try params.requiredArray("checks")
        guard !items.isEmpty, items.count <= Self.limit else { throw PortierError.badRequest("params.checks must hold 1 to \(Self.limit) checks") }
        var questions: [CheckQuestion] = []
        questions.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            guard case .object(let o) = item else { throw PortierError.badRequest("params.checks[\(i)] must be an object") }
            questions.append(try CheckQuestion(o, field: "params.checks[\(i)]"))
        }
        self.questions = questions
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

    /// Makes sure the token's environment is at least at its revision; false when
    /// this instance cannot show it (the caller falls back to SQL).
    func satisfies(_ token: RevisionToken) async throws -> Bool {
        if try await indexes.environment(token.environment, atLeast: token.revision) != nil { return true }
        // A deleted environment has nothing to wait for; otherwise the index is behind.
        return try await indexes.environment(token.environment) == nil
    }

    /// `check` (docs/rules.md §7, R-PRM-1…3): from the index; from PostgreSQL for `full`,
    /// a token the index cannot show yet, or a cold environment (`needsDatabase`).
    /// Most checks never get here: `immediateAnswer` takes them on the event loop.
    func check(_ question: CheckQuestion, _ request: Request) async throws -> OperationOutput {
        if try await needsDatabase(request.consistency, reading: question.environments) {
            return .result(try await databaseDecisions([question])[0].jsonObject)
        }
        let (decision, token) = try await indexedDecision(question)
        return OperationOutput(result: decision.jsonObject, revision: token)
    }

    /// `check.bulk`: up to 1,000 questions, answered in order, from the index or
    /// all of them in one database snapshot.
    func checkBulk(_ p: CheckBulkParams, _ request: Request) async throws -> OperationOutput {
        let questions = p.questions
        let reading = questions.reduce(Set<EnvironmentID>?.some([])) { all, q in q.environments.flatMap { e in all.map { $0.union(e) } } }
        var decisions: [Decision] = []
        if try await needsDatabase(request.consistency, reading: reading, waitForLoad: true) {
            decisions = try await databaseDecisions(questions)
        } else {
            decisions.reserveCapacity(questions.count)
            for question in questions { decisions.append(try await indexedDecision(question).0) }
        }
        return .result(["results": .array(decisions.map(\.json))])
    }

    /// One question from the indexes, loading what is missing, with the revision
    /// token of the facts it was answered from; from PostgreSQL if the index
    /// cannot answer (an environment that does not exist, or was evicted meanwhile).
    func indexedDecision(_ question: CheckQuestion) async throws -> (Decision, String?) {
        guard let key = try await userKey(question.user) else { return (question.permission.decide(PermissionFacts(user: nil)), nil) }
        _ = try await indexes.environment(key.environment)
        if let organisation = question.organisation { _ = try await indexes.environment(organisation.environment) }
        var facts = IndexFacts(indexes.index)
        let decision = try PermissionEvaluator.decide(question, user: key, in: &facts)
        if facts.incomplete { return (try await databaseDecisions([question])[0], nil) }
        return (decision, facts.token)
    }

    /// Questions answered from PostgreSQL, in one snapshot.
    func databaseDecisions(_ questions: [CheckQuestion]) async throws -> [Decision] {
        try await snapshot(environments: []) { tx in
            var facts = SQLFacts(tx)
            return try questions.map { q in try PermissionEvaluator.decide(q, user: try Self.locate(tx, q.user)?.userKey, in: &facts) }
        }
    }

    /// The user's environment and id; an email costs one lookup in the directory.
    func userKey(_ ref: UserReference) async throws -> UserKey? {
        if case .id(let id) = ref { return id.userKey }
        return try await snapshot(environments: []) { tx in try Self.locate(tx, ref) }?.userKey
    }
}
