import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// Writes a message a request causes, within the recipient's hourly cap
    /// (R-USR-16): past it the request fails with `rate_limited`, and since that
    /// rolls the transaction back, it writes nothing at all.
    static func enqueueCapped(
        _ tx: Transaction, environment: EnvironmentID, kind: OutboxKind, to recipient: String, token: String? = nil,
        payload: String = "{}", configuration: ServiceConfiguration
    ) throws {
        let cap = configuration.messagesPerRecipientPerHour
        guard try tx.takeRecipientMessage(recipient.lowercased(), cap: cap) else {
            throw PortierError(.rateLimited, "at most \(cap) messages an hour go to one address; try again later")
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
        configuration: ServiceConfiguration
    ) throws {
        let normalized = recipient.lowercased()
        if try tx.takeRecipientMessage(normalized, cap: configuration.messagesPerRecipientPerHour) {
            try tx.enqueueMessage(environment: environment, kind: kind, to: recipient, payload: JSONValue.object(payload).jsonText)
            return
        }
        guard try tx.takeRecipientMessage("\(normalized)#summary:\(kind.rawValue)", cap: 1) else { return }
        var summary = payload
        summary["coalesced"] = true
        summary["note"] = "more requests are waiting in the inbox this hour; see inbox.list"
        try tx.enqueueMessage(environment: environment, kind: kind, to: recipient, payload: JSONValue.object(summary).jsonText)
    }
}
