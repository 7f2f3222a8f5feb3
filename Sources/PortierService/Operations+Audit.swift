import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// `audit.list` (R-AUD-1): the environment's log, newest first, for administrators.
    func auditList(_ request: Request) async throws -> OperationOutput {
        try request.params.rejectUnknownKeys(allowed: ["limit", "cursor"])
        let (limit, cursor) = try Self.page(request.params, kind: .event)
        let actorRef = try await actorReference(request)
        return try await pool.transaction(environments: [actorRef.environment]) { tx in
            _ = try Self.administrator(tx, actorRef, to: "read the audit log")
            let env = actorRef.environment
            let events = try tx.auditEvents(env, before: cursor ?? Int64.max, limit: limit)
            var result: JSONObject = ["events": .array(events.map { $0.json(environment: env) })]
            if events.count == limit, let last = events.last {
                result["next_cursor"] = .string(ScopedID(.event, environment: env, raw: last.id).description)
            }
            return .result(result)
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
