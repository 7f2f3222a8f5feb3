import PortierDomain

/// The closed list of error codes a reply can carry (docs/rules.md §10).
///
/// The raw values are the wire contract: never rename one. `Protocol/README.md`
/// documents each code; a test keeps the two in step.
public enum ErrorCode: String, Sendable, CaseIterable, Codable {
    /// The request is malformed or a parameter is missing, of the wrong type or invalid.
    case badRequest = "bad_request"
    /// The `op` names no operation.
    case unknownOp = "unknown_op"
    /// The actor (or the connecting peer) may not do this.
    case forbidden
    /// The target does not exist, or is not visible to this actor.
    case notFound = "not_found"
    /// The change collides with existing data (an email or domain already taken…).
    case conflict
    /// The change would leave the environment without an active administrator (R-USR-8).
    case lastAdministrator = "last_administrator"
    /// The target is not in a state that allows this (e.g. activating an active user).
    case invalidState = "invalid_state"
    /// A token is unknown, expired, used or superseded (R-USR-2).
    case expiredToken = "expired_token"
    /// Email and password do not identify an active user (R-USR-4).
    case invalidCredentials = "invalid_credentials"
    /// The user is blocked (R-USR-4, R-USR-6).
    case blocked
    /// A rate limit was reached (R-USR-13).
    case rateLimited = "rate_limited"
    /// A frame's header announced more bytes than the limit; the connection is closed.
    case frameTooLarge = "frame_too_large"
    /// The server is at a limit (connections, in-flight requests); retry later.
    case overloaded
    /// A dependency (the database) is unreachable; retry later.
    case unavailable
    /// A bug: the server could not complete the request. Nothing was changed.
    case `internal`
    /// A watch asked to resume (`after`) from history that has been pruned:
    /// re-read, then watch from the current revision (R-WAT-1).
    case resyncRequired = "resync_required"
}

/// A typed failure that maps one-to-one onto a wire error.
public struct PortierError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public static func badRequest(_ message: String) -> PortierError { .init(.badRequest, message) }
    public static func forbidden(_ message: String = "the actor may not do this") -> PortierError { .init(.forbidden, message) }
    public static func notFound(_ what: String) -> PortierError { .init(.notFound, "\(what) not found") }
    public static func conflict(_ message: String) -> PortierError { .init(.conflict, message) }
    public static func invalidState(_ message: String) -> PortierError { .init(.invalidState, message) }
    public static func `internal`(_ message: String = "internal error") -> PortierError { .init(.internal, message) }
    public static func unavailable(_ message: String = "the database is unavailable") -> PortierError { .init(.unavailable, message) }

    /// R-USR-8: the message tells what to do instead.
    public static let lastAdministrator = PortierError(
        .lastAdministrator,
        "this is the last active administrator of the environment: appoint another administrator first"
    )
    /// R-USR-4: the same answer for every kind of wrong credentials.
    public static let invalidCredentials = PortierError(.invalidCredentials, "email or password is not valid")
}

extension PortierError {
    /// A value the domain refused is the client's mistake: `bad_request`.
    public init(_ invalid: InvalidInput) { self.init(.badRequest, invalid.message) }

    /// Any error as the wire error it stands for: a `PortierError` as is, a
    /// refused value as `bad_request`, nil for anything else (the caller decides).
    public init?(any error: any Error) {
        switch error {
        case let error as PortierError: self = error
        case let invalid as InvalidInput: self.init(invalid)
        default: return nil
        }
    }
}
