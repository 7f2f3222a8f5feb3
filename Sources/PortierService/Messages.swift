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
}
