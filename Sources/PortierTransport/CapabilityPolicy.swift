import PortierProtocol

/// Which peer holds which capabilities on one socket (R-SEC-1), like
/// PostgreSQL's peer authentication with an ident map: rules by uid or primary
/// gid (SO_PEERCRED shows no supplementary groups), a default for every other
/// peer, and the socket's bound, which no rule can pass (the service socket
/// never grants `support`, the support socket never grants `mail`).
///
/// A peer's capabilities are the union of its uid's rules and its gid's rules;
/// with none, the default; plus `mail` for the mailer uids. Decided once per
/// connection, at admission.
public struct CapabilityPolicy: Sendable, Equatable {
    /// One rule: `uid:1001=check`, `gid:2000=check,manage`.
    public struct Rule: Sendable, Equatable, CustomStringConvertible {
        public enum Subject: Sendable, Equatable { case uid(UInt32), gid(UInt32) }
        public var subject: Subject
        public var capabilities: Capabilities

        public init(_ subject: Subject, _ capabilities: Capabilities) {
            self.subject = subject
            self.capabilities = capabilities
        }

        /// Parses `uid:N=caps` or `gid:N=caps`.
        public init?(_ text: String) {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let caps = Capabilities(names: parts[1]) else { return nil }
            let who = parts[0].split(separator: ":").map(String.init)
            guard who.count == 2, let n = UInt32(who[1]) else { return nil }
            switch who[0] {
            case "uid": subject = .uid(n)
            case "gid": subject = .gid(n)
            default: return nil
            }
            capabilities = caps
        }

        public var description: String {
            switch subject {
            case .uid(let n): "uid:\(n)=\(capabilities)"
            case .gid(let n): "gid:\(n)=\(capabilities)"
            }
        }
    }

    /// What the socket can grant at all.
    public var bound: Capabilities
    /// For peers no rule names.
    public var defaults: Capabilities
    public var rules: [Rule]
    /// Uids that hold `mail` on top of what the rules or the default give them.
    public var mailers: Set<UInt32>

    public init(bound: Capabilities, defaults: Capabilities, rules: [Rule] = [], mailers: Set<UInt32> = []) {
        self.bound = bound
        self.defaults = defaults
        self.rules = rules
        self.mailers = mailers
    }

    /// The service socket out of the box: every peer holds `check` and `manage`;
    /// `mail` also the mailer uids and the server's own uid. A rule naming a
    /// mailer narrows the rest (`uid:N=none` with `--mailer-uid N`: mail only).
    public static func service(mailerUIDs: [UInt32], serverUID: UInt32, rules: [Rule] = []) -> CapabilityPolicy {
        CapabilityPolicy(bound: [.check, .manage, .mail], defaults: [.check, .manage], rules: rules, mailers: Set(mailerUIDs + [serverUID]))
    }

    /// The support socket out of the box: `check`, `manage` and `support`.
    public static func support(rules: [Rule] = []) -> CapabilityPolicy {
        CapabilityPolicy(bound: [.check, .manage, .support], defaults: [.check, .manage, .support], rules: rules)
    }

    /// A peer's capabilities (unknown credentials: the default).
    public func capabilities(for peer: PeerCredentials?) -> Capabilities {
        guard let peer else { return defaults.intersection(bound) }  // (a socket without SO_PEERCRED)
        var granted: Capabilities = []
        var named = false
        for rule in rules {
            switch rule.subject {
            case .uid(let uid) where uid == peer.uid, .gid(let uid) where uid == peer.gid:
                granted.formUnion(rule.capabilities)
                named = true
            default: break
            }
        }
        if !named { granted = defaults }
        if mailers.contains(peer.uid) { granted.insert(.mail) }
        return granted.intersection(bound)
    }
}
