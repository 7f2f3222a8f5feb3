import PortierDomain
import PortierIndex
import PortierProtocol

/// The hot path: checks answered on the calling thread (a NIO event loop) when
/// everything they need is already in memory. No task hop, no database, no lock
/// beyond each environment's own, no logging.
extension PortierService {
    private static let bulkKeys: Set<String> = ["checks"]

    /// The reply to `request` if it can be given right now from loaded indexes;
    /// nil when it needs the asynchronous path (a load, a catch-up, an email to
    /// resolve, `consistency: "full"`, or any other operation).
    public func immediateAnswer(_ request: Request) -> Reply? {
        switch request.op {
        case "check", "check.bulk": break
        default: return nil
        }
        // With a token, only reads of the token's one environment (see `needsDatabase`).
        var tokenEnvironment: EnvironmentID?
        switch request.consistency {
        case nil: break
        case .full?: return nil
        case .atLeast(let text)?:
            guard let token = RevisionToken(text), let loaded = indexes.index.get(token.environment),
                  loaded.revision >= token.revision else { return nil }
            tokenEnvironment = token.environment
        }
        func fresh(_ q: CheckQuestion) -> Bool { tokenEnvironment.map { q.environments == [$0] } ?? true }
        do {
            if request.op == "check" {
                let question = try CheckQuestion(request.params)
                guard fresh(question), let (decision, source) = immediateDecision(question) else { return nil }
                return .success(request.id, decision.jsonObject, revision: source)
            }
            try request.params.rejectUnknownKeys(allowed: Self.bulkKeys)
            let items = try request.params.requiredArray("checks")
            guard !items.isEmpty, items.count <= 1000 else { return nil }
            var results: [JSONValue] = []
            results.reserveCapacity(items.count)
            for (i, item) in items.enumerated() {
                guard case .object(let o) = item else { return nil }
                let question = try CheckQuestion(o, field: "params.checks[\(i)]")
                guard fresh(question), let (decision, _) = immediateDecision(question) else { return nil }
                results.append(decision.json)
            }
            return .success(request.id, ["results": .array(results)])
        } catch let error as PortierError {
            return .failure(request.id, error)
        } catch {
            return nil
        }
    }

    /// One question from loaded indexes only, with the revision token of the
    /// facts it was answered from; nil if something is not loaded.
    func immediateDecision(_ q: CheckQuestion) -> (Decision, String)? {
        guard case .id(let id) = q.user, let home = indexes.index.get(id.environment) else { return nil }
        var organisationIndex: EnvironmentIndex?
        if let org = q.organisation {
            guard let loaded = indexes.index.get(org.environment) else { return nil }
            organisationIndex = loaded
        }
        return Self.decide(q, user: UserKey(environment: id.environment, id: id.raw), home: home, organisationIndex: organisationIndex)
    }

    /// Decides from the indexes at hand: the user's home environment's and, for an
    /// organisation-scoped question, the organisation's (nil: that environment does
    /// not exist). Returns the revision token of the index the answer came from,
    /// read under the same lock as the facts from it.
    static func decide(_ q: CheckQuestion, user key: UserKey, home: EnvironmentIndex, organisationIndex: EnvironmentIndex?) -> (Decision, String) {
        let (found, homeToken) = home.userFacts(key.id)
        guard let user = found else { return (q.permission.decide(PermissionFacts(user: nil)), homeToken) }
        var facts = PermissionFacts(user: (user.role, user.status, key.environment))
        guard let org = q.organisation, let orgIndex = organisationIndex else { return (q.permission.decide(facts), homeToken) }
        let (exists, membership, token) = orgIndex.membershipFacts(organisation: org.raw, user: key)
        if exists {
            facts.organisationEnvironment = org.environment
            facts.membership = membership.map { ($0.role, $0.status) }
        }
        return (q.permission.decide(facts), token)
    }
}
