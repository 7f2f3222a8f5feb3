import PortierDomain

/// A failure reported by PostgreSQL or libpq, classified by SQLSTATE.
public struct DatabaseError: Error, Sendable, CustomStringConvertible {
    /// What the server should make of it.
    public enum Kind: Sendable, Equatable {
        /// 23505: a unique constraint (the `constraint` names which).
        case uniqueViolation
        /// 23503: a foreign key.
        case foreignKeyViolation
        /// 23514 / 23502 / 22xxx: a check, not-null or data error: a bug or bad input that got through.
        case dataViolation
        /// 40001 / 40P01: serialization failure or deadlock: safe to retry.
        case retryable
        /// 42501: insufficient privilege (including row-level security refusals).
        case permissionDenied
        /// The connection is gone or could not be made (08xxx, 57P01…).
        case connection
        /// 57014 / 55P03: a statement or lock wait ran past its timeout, or no
        /// pooled connection became free in time (R-SEC-2).
        case timeout
        /// Anything else.
        case other
    }

    public let kind: Kind
    public let sqlState: String?
    public let message: String
    public let constraint: String?

    public init(kind: Kind, sqlState: String?, message: String, constraint: String? = nil) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.constraint = constraint
    }

    /// Classifies a SQLSTATE (see PostgreSQL's Appendix A).
    public static func kind(forSQLState state: String?) -> Kind {
        guard let state else { return .connection }
        switch state {
        case "23505": return .uniqueViolation
        case "23503": return .foreignKeyViolation
        case "23514", "23502": return .dataViolation
        case "40001", "40P01": return .retryable
        case "42501": return .permissionDenied
        case "57P01", "57P02", "57P03": return .connection
        case "57014", "55P03": return .timeout
        default:
            if state.hasPrefix("08") { return .connection }
            if state.hasPrefix("22") { return .dataViolation }
            return .other
        }
    }

    public var description: String {
        "database error \(sqlState ?? "-"): \(message)" + (constraint.map { " (constraint \($0))" } ?? "")
    }
}
