import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// `outbox.list` (R-OUT-1): unacknowledged messages of all environments, oldest
    /// first, for the mailer. Paged with `limit` and `cursor`.
    func outboxList(_ p: ListParams<ListedMessages>) async throws -> OperationOutput {
        let page = p.page
        let messages = try await transaction { tx in
            try tx.becomeMailer()
            // Message ids are global (one sequence): the order is the id's number.
            return try tx.pendingMessages(after: page.after?.raw ?? 0, limit: page.fetch)
        }
        return .result(page.result("messages", messages, id: { ScopedID(.message, environment: $0.environment, raw: $0.id) }, json: \.json))
    }

    /// `outbox.ack`: marks messages delivered and erases their tokens. Acknowledging
    /// twice is harmless; an id that does not exist fails the whole request.
    func outboxAck(_ p: OutboxAckParams) async throws -> OperationOutput {
        let requested = p.ids.map { (environment: $0.environment, id: $0.raw) }
        let wanted = Set(requested.map(\.id))
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

/// `outbox.ack`: `{ids}`, 1 to 1,000 message ids from `outbox.list`.
struct OutboxAckParams: OperationParams {
    static let keys: Set<String> = ["ids"]
    let ids: [ScopedID]
    init(_ params: JSONObject) throws {
        let raw = try params.requiredArray("ids")
        guard !raw.isEmpty, raw.count <= 1000 else { throw PortierError.badRequest("params.ids must hold 1 to 1000 message ids") }
        ids = try raw.map { value in
            guard case .string(let text) = value, let id = ScopedID(text, kind: .message) else {
                throw PortierError.badRequest("params.ids must be message ids from outbox.list")
            }
            return id
        }
    }
}
