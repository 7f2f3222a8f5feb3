import PortierProtocol
import PortierStorage

extension DatabaseError {
    /// The wire error a request gets when this escapes an operation. Messages
    /// from PostgreSQL are not passed on: they may quote values.
    public var portierError: PortierError {
        switch kind {
        case .connection: .unavailable()
        case .timeout: .unavailable("the database did not answer in time; nothing was changed")
        case .uniqueViolation: .conflict("the change collides with existing data")
        case .retryable: PortierError(.unavailable, "the database asked to retry; nothing was changed")
        default: .internal()
        }
    }
}
