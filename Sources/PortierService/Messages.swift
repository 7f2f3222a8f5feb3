import PortierDomain
import PortierProtocol
import PortierStorage

/// Who causes a message, for the caps of R-USR-16.
enum MessageSender {
    /// An environment's request (an invitation, a proposal, a membership request).
    case environment(EnvironmentID)
    /// The person's own unauthenticated request of this kind (a sign-up, a
    /// password reset): capped on its own and never counted against, or
    /// refused by, the total other senders fill.
    case own(String)

    var key: String {
        switch self {
        case .environment(let id): id.description
        case .own(let kind): "own:" + kind
        }
    }

    /// The recipient's total over all senders applies to environments' messages only.
    func total(_ configuration: ServiceConfiguration) -> Int? {
        switch self {
        case .environment: configuration.messagesPerRecipientTotalPerHour
        case .own: nil
        }
    }
}

extension PortierService {
    /// Writes a message a request causes, within the hourly caps (R-USR-16):
    /// per sender and recipient, and a larger total per recipient for
    /// environments' messages. Past a cap the request fails with `rate_limited`,
    /// and since that rolls the transaction back, it writes nothing at all.
    static func enqueueCapped(
        _ tx: Transaction, environment: EnvironmentID, kind: OutboxKind, to recipient: String, token: String? = nil,
        payload: String = "{}", sender: MessageSender, configuration: ServiceConfiguration
    ) throws {
        let cap = configuration.messagesPerRecipientPerHour
        guard try tx.takeRecipientMessage(recipient.lowercased(), sender: sender.key, perSender: cap, total: sender.total(configuration)) else {
            throw PortierError(.rateLimited, "at most \(cap) messages an hour go to one address from one sender (and \(configuration.messagesPerRecipientTotalPerHour) from all); try again later")
        }
        try tx.enqueueMessage(environment: environment, kind: kind, to: recipient, token: token, payload: payload)
    }

    /// Writes the notice of work inside a relationship both sides agreed to (a
    /// membership request to a partner's user, R-USR-16): never refused. Within
    /// the recipient's hourly cap it is an ordinary message; past it, one
    /// summary an hour (`coalesced: true`) says more requests wait in the inbox,
    /// and later ones that hour write no message (the inbox holds them all).
    /// The summary is counted under a key of its own, not against the cap.
    static func enqueueCoalesced(
        _ tx: Transaction, environment: EnvironmentID, kind: OutboxKind, to recipient: String, payload: JSONObject,
        sender: MessageSender, configuration: ServiceConfiguration
    ) throws {
        let normalized = recipient.lowercased()
        if try tx.takeRecipientMessage(normalized, sender: sender.key, perSender: configuration.messagesPerRecipientPerHour, total: sender.total(configuration)) {
            try tx.enqueueMessage(environment: environment, kind: kind, to: recipient, payload: JSONValue.object(payload).jsonText)
            return
        }
        guard try tx.takeRecipientMessage("\(normalized)#summary:\(kind.rawValue)", sender: "", perSender: 1, total: nil) else { return }
        var summary = payload
        summary["coalesced"] = true
        summary["note"] = "more requests are waiting in the inbox this hour; see inbox.list"
        try tx.enqueueMessage(environment: environment, kind: kind, to: recipient, payload: JSONValue.object(summary).jsonText)
    }
}
