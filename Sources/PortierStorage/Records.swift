import PortierDomain

/// A user row as the service needs it.
public struct UserRecord: Sendable, Equatable {
    public let environment: EnvironmentID
    public let id: Int64
    public var email: String
    public var name: String
    public var role: EnvironmentRole
    public var status: UserStatus
    public var passwordHash: String?

    public var scopedID: ScopedID { ScopedID(.user, environment: environment, raw: id) }

    init(row: Row) throws {
        environment = EnvironmentID(try row.int64("environment_id"))
        id = try row.int64("user_id")
        email = try row.string("email")
        name = try row.string("name")
        guard let role = EnvironmentRole(rawValue: try row.string("role")),
              let status = UserStatus(rawValue: try row.string("status"))
        else { throw DatabaseError(kind: .other, sqlState: nil, message: "invalid role or status in users") }
        self.role = role
        self.status = status
        passwordHash = row["password_hash"]
    }
}

/// An environment with its claims and administrators, as `environment.get` shows it.
public struct EnvironmentRecord: Sendable, Equatable {
    public let id: EnvironmentID
    public let name: String
    public let revision: Int64
    public let domains: [(domain: String, status: DomainClaimStatus)]
    public let activeAdministrators: [Int64]

    public static func == (a: Self, b: Self) -> Bool {
        a.id == b.id && a.name == b.name && a.revision == b.revision
            && a.domains.map(\.domain) == b.domains.map(\.domain) && a.activeAdministrators == b.activeAdministrators
    }
}

/// A single-use token row (only its hash is stored).
public struct TokenRecord: Sendable {
    public let id: Int64
    public let userID: Int64
    public let purpose: TokenPurpose
    public let emailNorm: String?
    public let isExpired: Bool
    public let isUsed: Bool
    public let isRevoked: Bool
}

/// An outbox message as the mailer reads it.
public struct OutboxRecord: Sendable {
    public let environment: EnvironmentID
    public let id: Int64
    public let kind: String
    public let recipient: String
    public let token: String?
    public let payload: String
    public let createdAt: String
}

/// Who an audit event is attributed to.
public enum AuditActor: Sendable {
    case user(Int64, label: String)
    case system
    case support(label: String)

    var userID: Int64? { if case .user(let id, _) = self { id } else { nil } }
    var label: String {
        switch self {
        case .user(_, let label): label
        case .system: "system"
        case .support(let label): "support:\(label)"
        }
    }
}

/// How timestamps leave the database: RFC 3339 in UTC with milliseconds
/// (`2026-12-01T13:19:30.736Z`), the one format of every result (§11).
enum SQLTime {
    /// The SQL expression formatting `column` (a timestamptz).
    static func rfc3339(_ column: String) -> String {
        "to_char(\(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    }
}

/// How a read locks the rows it returns.
public enum RowLock: String, Sendable {
    /// Against deletion and key changes only.
    case keyShare = " FOR KEY SHARE"
    /// Against everything: the row is about to change.
    case update = " FOR UPDATE"
}
