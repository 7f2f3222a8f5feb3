/// What a connecting peer may ask (R-SEC-1, docs/rules.md). Granted once per connection,
/// at admission, from the peer's uid and primary gid (`CapabilityPolicy`);
/// every request is checked against it before anything else runs.
public struct Capabilities: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `check`, `check.bulk`, both lookups, `watch`, `watch.cancel`, `hello`, `ping`.
    public static let check = Capabilities(rawValue: 1)
    /// Everything done on a user's behalf, sign-up, activation, token
    /// confirmations, authentication, passwords: every other operation.
    public static let manage = Capabilities(rawValue: 2)
    /// `outbox.*`: the clear tokens of the mailer's messages.
    public static let mail = Capabilities(rawValue: 4)
    /// `support.*`.
    public static let support = Capabilities(rawValue: 8)

    public static let names: [(String, Capabilities)] = [("check", .check), ("manage", .manage), ("mail", .mail), ("support", .support)]

    /// The capability an operation needs.
    public static func required(for op: String) -> Capabilities {
        switch op {
        case "check", "check.bulk", "lookup.organisations", "lookup.users", "watch", "watch.cancel", "hello", "ping": .check
        case "outbox.list", "outbox.ack": .mail
        default: op.hasPrefix("support.") ? .support : .manage
        }
    }

    /// Parses `check,manage` (or `none`).
    public init?(names text: String) {
        self = []
        guard text != "none" else { return }
        for part in text.split(separator: ",") {
            let name = String(part.filter { $0 != " " })
            guard let (_, c) = Self.names.first(where: { $0.0 == name }) else { return nil }
            insert(c)
        }
    }

    public var description: String {
        let listed = Self.names.filter { contains($0.1) }.map(\.0)
        return listed.isEmpty ? "none" : listed.joined(separator: ",")
    }
}
