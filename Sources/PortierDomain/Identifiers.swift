/// External identifiers: opaque strings to clients, parsed here into the
/// environment they live in and their row id.
///
/// An id carries its environment (`usr_<env>_<n>`) so that a request naming a
/// user or organisation is routed to that one environment without a global lookup
/// (and to one shard under Citus). Clients must treat ids as opaque.
public enum EntityKind: String, Sendable {
    case environment = "env"
    case user = "usr"
    case organisation = "org"
    case partnership = "ptn"
    case request = "req"
    case message = "msg"
    case event = "evt"
}

/// An environment's id.
public struct EnvironmentID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let raw: Int64
    public init(_ raw: Int64) { self.raw = raw }

    public var description: String { "env_\(raw)" }

    /// Parses `env_<n>`; nil for anything else.
    public init?(_ text: String) {
        guard text.hasPrefix("env_"), let n = Int64(text.dropFirst(4)), n > 0 else { return nil }
        self.raw = n
    }

    public static func < (a: Self, b: Self) -> Bool { a.raw < b.raw }
}

/// The id of a row that lives in one environment (user, organisation, request, …).
public struct ScopedID: Sendable, Hashable, CustomStringConvertible {
    public let kind: EntityKind
    public let environment: EnvironmentID
    public let raw: Int64

    public init(_ kind: EntityKind, environment: EnvironmentID, raw: Int64) {
        self.kind = kind
        self.environment = environment
        self.raw = raw
    }

    public var description: String { "\(kind.rawValue)_\(environment.raw)_\(raw)" }

    /// Parses `<kind>_<env>_<n>`; nil when the text is not an id of this kind.
    /// Scans the UTF-8 bytes once without allocating: checks parse ids on every request.
    public init?(_ text: String, kind: EntityKind) {
        var utf8 = text.utf8[...]
        for byte in kind.rawValue.utf8 {
            guard utf8.first == byte else { return nil }
            utf8 = utf8.dropFirst()
        }
        guard utf8.first == UInt8(ascii: "_") else { return nil }
        utf8 = utf8.dropFirst()
        guard let env = Self.positiveNumber(&utf8), utf8.first == UInt8(ascii: "_") else { return nil }
        utf8 = utf8.dropFirst()
        guard let n = Self.positiveNumber(&utf8), utf8.isEmpty else { return nil }
        self.init(kind, environment: EnvironmentID(env), raw: n)
    }

    /// Reads decimal digits (at most 18, no sign, not zero) from the front of `utf8`.
    private static func positiveNumber(_ utf8: inout Substring.UTF8View) -> Int64? {
        var value: Int64 = 0
        var digits = 0
        while let byte = utf8.first, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
            guard digits < 18 else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            digits += 1
            utf8 = utf8.dropFirst()
        }
        return digits > 0 && value > 0 ? value : nil
    }
}

/// A reference to a user as a request gives it: an id or an email address.
public enum UserReference: Sendable, Hashable {
    case id(ScopedID)
    case email(EmailAddress)

    /// `usr_…` is an id; anything with an `@` is an email; the rest is refused.
    public init(_ text: String, field: String) throws(InvalidInput) {
        if let id = ScopedID(text, kind: .user) {
            self = .id(id)
        } else if text.contains("@") {
            self = .email(try EmailAddress(text))
        } else {
            throw .badRequest("\(field) must be a user id or an email address")
        }
    }
}

/// A revision token (R-PRM-5): the environment and its revision after a commit.
/// Written `<env>:<revision>`, e.g. `env_3:17`.
public struct RevisionToken: Sendable, Hashable, CustomStringConvertible {
    public let environment: EnvironmentID
    public let revision: Int64

    public init(environment: EnvironmentID, revision: Int64) {
        self.environment = environment
        self.revision = revision
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let env = EnvironmentID(String(parts[0])),
              let rev = Int64(parts[1]), rev >= 0 else { return nil }
        self.init(environment: env, revision: rev)
    }

    public var description: String { "\(environment):\(revision)" }
}
