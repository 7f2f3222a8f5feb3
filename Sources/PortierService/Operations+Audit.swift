import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// `audit.list` (R-AUD-1): the environment's log, newest first, for administrators.
    func auditList(_ p: ListParams<ListedEvents>, _ request: Request) async throws -> OperationOutput {
        let page = p.page
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment]) { tx in
            _ = try Self.administrator(tx, actorRef, to: "read the audit log")
            let env = actorRef.environment
            // Newest first: the page starts before the cursor.
            let events = try tx.auditEvents(env, before: page.after?.raw ?? Int64.max, limit: page.fetch)
            return .result(page.result("events", events, id: { ScopedID(.event, environment: env, raw: $0.id) }, json: { $0.json(environment: env) }))
        }
    }
}

extension AuditEventRecord {
    func json(environment: EnvironmentID) -> JSONValue {
        var o: JSONObject = [
            "id": .string(ScopedID(.event, environment: environment, raw: id).description),
            "at": .string(at),
            "actor": actorUserID.map { .string(ScopedID(.user, environment: environment, raw: $0).description) } ?? .null,
            "actor_label": .string(actorLabel),
            "op": .string(op),
            "target": .orNull(target),
        ]
        if let parsed = try? JSONParser.parse(details), case .object(let d) = parsed, !d.isEmpty { o["details"] = .object(d) }
        return .object(o)
    }
}
