/// A value the domain rules refuse (an email, a domain, a name, a permission
/// name…), with a message a caller can act on. The protocol layer answers it
/// as `bad_request`; the domain itself knows nothing of the wire.
public struct InvalidInput: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    public static func badRequest(_ message: String) -> InvalidInput { InvalidInput(message) }
}
