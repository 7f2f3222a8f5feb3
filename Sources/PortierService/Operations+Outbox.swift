import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// `outbox.list` (R-OUT-1): unacknowledged messages of all environments, oldest
    /// first, for the mailer. Paged with `limit` and `cursor`.
    func outboxList(_ request: Request) async throws -> OperationOutput {
        try request.params.rejectUnknownKeys(allowed: ["limit", "cursor"])
        let page = try PageRequest(request.params, kind: .message)
        let messages = try await transaction { tx in
            try tx.becomeMailer()
            // Message ids are global (one sequence): the order is the id's number.
            return try tx.pendingMessages(after: page.after?.raw ?? 0, limit: page.fetch)
        }
        return .result(page.result("messages", messages, id: { ScopedID(.message, environment: $0.environment, raw: $0.id) }, json: \.json))
    }

    /// `outbox.ack`: marks messages delivered and erases their tokens. Acknowledging
    /// twice is harmless; an id that does not exist fails the whole request.
    func outboxAck(_ request: Request) async throws -> OperationOutput {
        try request.params.rejectUnknownKeys(allowed: ["ids"])
        let raw = try request.params.requiredArray("ids")
        guard !raw.isEmpty, raw.count <= 1000 else { throw PortierError.badRequest("params.ids must hold 1 to 1000 message ids") }
        var ids: [(environment: EnvironmentID, id: Int64)] = []
        for value in raw {
            guard case .string(let text) = value, let id = ScopedID(text, kind: .message) else {
                throw PortierError.badRequest("params.ids must be message ids from outbox.list")
            }
            ids.append((id.environment, id.raw))
        }
        let wanted = Set(ids.map(\.id))
        let requested = ids
        try await transaction { tx in
            try tx.becomeMailer()
            let found = try tx.acknowledgeMessages(requested)
            if let missing = wanted.subtracting(found).first {
                // Throwing rolls the whole acknowledgement back: nothing changes.
                throw PortierError.notFound("message \(requested.first { $0.id == missing }.map { ScopedID(.message, environment: $0.environment, raw: $0.id).description } ?? "")")
            }
        }
        return .result([:])
    }
}
