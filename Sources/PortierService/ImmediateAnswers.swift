import PortierDomain
import PortierIndex
import PortierProtocol

/// The hot path: checks answered on the calling thread (a NIO event loop) when
/// everything they need is already in memory. No task hop, no database, no lock
/// beyond each environment's own, no logging. The same evaluator as every other
/// path (`PermissionEvaluator` over `IndexFacts`).
extension PortierService {
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
                guard fresh(question), let (decision, token) = immediateDecision(question) else { return nil }
                return .success(request.id, decision.jsonObject, revision: token)
            }
            let questions = try CheckBulkParams(request.params).questions
            var results: [JSONValue] = []
            results.reserveCapacity(questions.count)
            for question in questions {
                guard fresh(question), let (decision, _) = immediateDecision(question) else { return nil }
                results.append(decision.json)
            }
            return .success(request.id, ["results": .array(results)])
        } catch {
            // A refusal is answered here; anything else takes the asynchronous path.
            return PortierError(any: error).map { .failure(request.id, $0) }
        }
    }

    /// One question from loaded indexes only, with the revision token of the
    /// facts it was answered from; nil if something is not loaded.
    func immediateDecision(_ question: CheckQuestion) -> (Decision, String)? {
        guard case .id(let id) = question.user else { return nil }
        var facts = IndexFacts(indexes.index)
        guard let decision = try? PermissionEvaluator.decide(question, user: id.userKey, in: &facts),
              !facts.incomplete, let token = facts.token else { return nil }
        return (decision, token)
    }
}
