import PortierDomain
import Synchronization

/// The permission facts of one environment, in memory.
///
/// Readers take a short lock per lookup; a delta is applied under the same lock.
/// The index is exact at `revision`: it holds every change up to that revision of
/// the environment, and it never goes backwards (R-PRM-5).
public final class EnvironmentIndex: Sendable {
    public let environment: EnvironmentID
    private let state: Mutex<State>
    /// The owning `PermissionIndex`'s clock at last use (least-recently-used eviction).
    let lastUse = Atomic<UInt64>(0)

    struct State {
        var revision: Int64
        var users: [Int64: IndexedUser] = [:]
        var organisations: [Int64: IndexedOrganisation] = [:]
        var byOrganisation: [Int64: [UserKey: MemberFacts]] = [:]
        var byUser: [UserKey: [Int64: MemberFacts]] = [:]
        var links: [Int64: Set<ScopedID>] = [:]
        var membershipCount = 0
        var linkCount = 0
        var lastSync: ContinuousClock.Instant
        var token = ""

        /// Rough memory use: entries times an estimated per-entry cost. O(1).
        var approximateBytes: Int { users.count * 256 + organisations.count * 192 + membershipCount * 160 + linkCount * 64 }

        mutating func setMembership(_ organisation: Int64, _ user: UserKey, _ facts: MemberFacts?) {
            if let facts {
                if byOrganisation[organisation, default: [:]].updateValue(facts, forKey: user) == nil { membershipCount += 1 }
                byUser[user, default: [:]][organisation] = facts
            } else {
                if byOrganisation[organisation]?.removeValue(forKey: user) != nil { membershipCount -= 1 }
                if byOrganisation[organisation]?.isEmpty == true { byOrganisation[organisation] = nil }
                byUser[user]?[organisation] = nil
                if byUser[user]?.isEmpty == true { byUser[user] = nil }
            }
        }

        mutating func setLink(_ link: IndexedLink, _ present: Bool) {
            if present {
                if links[link.user, default: []].insert(link.organisation).inserted { linkCount += 1 }
            } else {
                if links[link.user]?.remove(link.organisation) != nil { linkCount -= 1 }
                if links[link.user]?.isEmpty == true { links[link.user] = nil }
            }
        }
    }

    public init(_ snapshot: EnvironmentSnapshot) {
        environment = snapshot.environment
        var s = State(revision: snapshot.revision, lastSync: .now)
        s.users.reserveCapacity(snapshot.users.count)
        s.organisations.reserveCapacity(snapshot.organisations.count)
        s.byOrganisation.reserveCapacity(snapshot.organisations.count)
        s.byUser.reserveCapacity(snapshot.users.count)
        for u in snapshot.users { s.users[u.id] = u }
        for o in snapshot.organisations { s.organisations[o.id] = o }
        for m in snapshot.memberships { s.setMembership(m.organisation, m.user, m.facts) }
        for l in snapshot.links { s.setLink(l, true) }
        s.token = RevisionToken(environment: snapshot.environment, revision: snapshot.revision).description
        state = Mutex(s)
    }

    /// The revision the index is exact at.
    public var revision: Int64 { state.withLock { $0.revision } }

    /// The revision token `env_<n>:<revision>`, kept ready for replies.
    public var revisionToken: String { state.withLock { $0.token } }

    /// A user with the revision token of the moment it was read (one lock: the
    /// answer and the revision it reports are never from two moments, R-PRM-5).
    public func userFacts(_ id: Int64) -> (user: IndexedUser?, token: String) {
        state.withLock { ($0.users[id], $0.token) }
    }

    /// Whether the organisation exists and the user's membership in it, with the
    /// revision token of the moment they were read (one lock, as `userFacts`).
    /// Whether the organisation exists, whether it is active (R-ORG-2), the
    /// user's membership of it, and the revision token, under one lock.
    public func membershipFacts(organisation: Int64, user: UserKey) -> (exists: Bool, active: Bool, membership: MemberFacts?, token: String) {
        state.withLock { s in
            let row = s.organisations[organisation]
            return (row != nil, row?.status == .active, row != nil ? s.byOrganisation[organisation]?[user] : nil, s.token)
        }
    }

    /// When the index last synchronised with the database.
    public var lastSync: ContinuousClock.Instant { state.withLock { $0.lastSync } }

    /// Applies a delta read after `revision`; older or overlapping deltas are ignored.
    /// Returns whether it was applied.
    @discardableResult
    public func apply(_ delta: EnvironmentDelta) -> Bool {
        state.withLock { s in
            guard delta.fromRevision == s.revision, delta.revision >= s.revision else {
                if delta.revision <= s.revision { s.lastSync = .now }
                return false
            }
            for (id, user) in delta.users { s.users[id] = user ?? nil }
            for (id, org) in delta.organisations { s.organisations[id] = org ?? nil }
            for (key, facts) in delta.memberships { s.setMembership(key.organisation, key.user, facts) }
            for (link, present) in delta.links { s.setLink(link, present) }
            s.revision = delta.revision
            s.token = RevisionToken(environment: delta.environment, revision: delta.revision).description
            s.lastSync = .now
            return true
        }
    }

    public func user(_ id: Int64) -> IndexedUser? { state.withLock { $0.users[id] } }
    public func organisation(_ id: Int64) -> IndexedOrganisation? { state.withLock { $0.organisations[id] } }

    public func membership(organisation: Int64, user: UserKey) -> MemberFacts? {
        state.withLock { $0.byOrganisation[organisation]?[user] }
    }

    /// The user's memberships in this environment's organisations.
    public func memberships(of user: UserKey) -> [Int64: MemberFacts] { state.withLock { $0.byUser[user] ?? [:] } }

    /// The organisation's members, of any environment.
    public func members(of organisation: Int64) -> [UserKey: MemberFacts] { state.withLock { $0.byOrganisation[organisation] ?? [:] } }

    /// Partner organisations the user belongs to.
    public func links(of user: Int64) -> Set<ScopedID> { state.withLock { $0.links[user] ?? [] } }

    public func organisations() -> [IndexedOrganisation] { state.withLock { Array($0.organisations.values) } }

    public func activeAdministrators() -> [Int64] {
        state.withLock { s in s.users.values.filter { $0.role == .administrator && $0.status == .active }.map(\.id) }
    }

    /// Rough memory use, for the budget (see `State.approximateBytes`).
    public var approximateBytes: Int { state.withLock { $0.approximateBytes } }
}
