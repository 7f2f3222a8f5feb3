import Foundation
import PortierDomain

/// The seeded data, rebuilt deterministically from a `LoadManifest`. Holds one
/// small record per environment; users, memberships and their attributes are
/// computed on demand from ids, so a million users cost no memory here.
///
/// Shapes: environment sizes follow a Pareto distribution (most environments
/// small, a few with thousands of users); accountants' environments have many
/// organisations and partnerships with client environments, where the
/// accountant's administrator is an active member of a client organisation.
public struct LoadPlan: Sendable {
    public let manifest: LoadManifest
    public let environments: [EnvironmentPlan]
    public let partnerships: [PartnershipPlan]
    /// Partner memberships by the client organisation's environment index.
    public let partnerMembers: [Int: [PartnerMembership]]
    /// The partnered pairs of environment indexes, as [accountant, client].
    public let partnerPairs: Set<[Int]>

    public var shape: LoadShape { manifest.shape }

    public init(_ manifest: LoadManifest) {
        self.manifest = manifest
        let shape = manifest.shape
        var rng = SplitMix(seed: shape.seed)
        let n = shape.environments
        precondition(n > 0 && shape.users >= n && shape.organisations >= n, "every environment needs a user and an organisation")

        // Sizes: Pareto (alpha 1.16, the 80/20 shape), capped at 250× the smallest, so
        // that at the full shape most environments have 15–50 users and the largest a few thousand.
        let rawUsers = (0..<n).map { _ in min(250.0, pow(1 - Double.random(in: 0..<1, using: &rng), -1 / 1.16)) }
        let accountant = (0..<n).map { _ in Double.random(in: 0..<1, using: &rng) < shape.accountantShare }
        let users = Self.apportion(shape.users, weights: rawUsers)
        let organisations = Self.apportion(shape.organisations, weights: (0..<n).map {
            accountant[$0] ? Double(users[$0]) + 20 : Double(users[$0]) * 0.05 + 1
        })
        var plans: [EnvironmentPlan] = []
        plans.reserveCapacity(n)
        var nextUser = manifest.base.user + 1, nextOrganisation = manifest.base.organisation + 1
        for e in 0..<n {
            plans.append(EnvironmentPlan(
                index: e, id: EnvironmentID(manifest.base.environment + Int64(e) + 1),
                firstUser: nextUser, userCount: users[e],
                firstOrganisation: nextOrganisation, organisationCount: organisations[e],
                accountant: accountant[e], seed: shape.seed
            ))
            nextUser += Int64(users[e])
            nextOrganisation += Int64(organisations[e])
        }
        // Memberships beyond each creator's one per organisation: spread by user
        // count, within what each environment can hold (eligible users × organisations).
        let eligible = plans.map { plan in (1..<max(1, plan.userCount)).filter { plan.user(at: $0).status != .invited } }
        let capacity = (0..<n).map { eligible[$0].count * plans[$0].organisationCount }
        let extra = Self.apportion(max(0, shape.memberships - shape.organisations), weights: users.map(Double.init), capacity: capacity)
        for e in 0..<n where !eligible[e].isEmpty {
            let perUser = extra[e] / eligible[e].count
            let remainder = extra[e] % eligible[e].count
            plans[e].membershipsPerUser = perUser
            plans[e].oneMoreThroughIndex = remainder == 0 ? 0 : eligible[e][remainder - 1]
        }
        environments = plans

        // Partnerships: accountant → distinct client environments.
        let clients = (0..<n).filter { !accountant[$0] }
        var seen = Set<[Int]>()
        var links: [PartnershipPlan] = []
        var members: [Int: [PartnerMembership]] = [:]
        for a in 0..<n where accountant[a] && !clients.isEmpty {
            for _ in 0..<shape.partnershipsPerAccountant {
                let c = clients[Int.random(in: 0..<clients.count, using: &rng)]
                guard seen.insert([a, c]).inserted else { continue }
                links.append(PartnershipPlan(id: manifest.base.partnership + Int64(links.count) + 1, accountant: a, client: c))
                let client = plans[c]
                members[c, default: []].append(PartnerMembership(
                    organisation: client.firstOrganisation, user: plans[a].firstUser, userEnvironment: a
                ))
            }
        }
        partnerships = links
        partnerMembers = members
        partnerPairs = seen
    }

    /// Splits `total` over `weights` with no share above its capacity: what does
    /// not fit is spread again over those with room (as much as fits in all).
    static func apportion(_ total: Int, weights: [Double], capacity: [Int]) -> [Int] {
        var shares = [Int](repeating: 0, count: weights.count)
        var left = min(total, capacity.reduce(0, +))
        while left > 0 {
            let room = weights.indices.map { capacity[$0] - shares[$0] }
            let open = room.indices.map { room[$0] > 0 ? max(weights[$0], 1e-9) : 0 }
            let round = apportion(left, weights: open, minimum: 0)
            var placed = 0
            for i in shares.indices {
                let add = min(round[i], room[i])
                shares[i] += add
                placed += add
            }
            left -= placed
            if placed == 0 { break }
        }
        return shares
    }

    /// Splits `total` over `weights` (each share at least `minimum`), exactly.
    static func apportion(_ total: Int, weights: [Double], minimum: Int = 1) -> [Int] {
        let n = weights.count
        let spare = total - minimum * n
        precondition(spare >= 0)
        let sum = weights.reduce(0, +)
        var shares = weights.map { minimum + Int(Double(spare) * $0 / sum) }
        var left = total - shares.reduce(0, +)
        // Hand out the rounding remainder to the largest weights first.
        for i in weights.indices.sorted(by: { weights[$0] > weights[$1] }) where left > 0 {
            shares[i] += 1
            left -= 1
        }
        return shares
    }

    public var totals: (users: Int, organisations: Int, memberships: Int) {
        var memberships = 0
        for e in environments { memberships += e.membershipCount }
        memberships += partnerMembers.values.reduce(0) { $0 + $1.count }
        return (environments.reduce(0) { $0 + $1.userCount }, environments.reduce(0) { $0 + $1.organisationCount }, memberships)
    }

    /// The environment holding user `id`.
    public func environment(ofUser id: Int64) -> EnvironmentPlan {
        var low = 0, high = environments.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if environments[mid].firstUser <= id { low = mid } else { high = mid - 1 }
        }
        return environments[low]
    }

    /// What `check` must answer for a seeded user and organisation (docs/rules.md §7),
    /// from the same pure rule the server uses.
    public func decide(_ permission: Permission, user: Int64, organisation: (environment: Int, id: Int64)?) -> Decision {
        let home = environment(ofUser: user)
        let attributes = home.user(at: Int(user - home.firstUser))
        var facts = PermissionFacts(user: (attributes.role, attributes.status, home.id), organisationEnvironment: nil, membership: nil)
        if let organisation {
            let orgEnvironment = environments[organisation.environment]
            facts.organisationEnvironment = orgEnvironment.id
            if orgEnvironment.index == home.index {
                facts.membership = home.membership(user: user, organisation: organisation.id)
            } else if partnerMembers[orgEnvironment.index]?.contains(where: { $0.user == user && $0.organisation == organisation.id }) == true {
                facts.membership = (.member, .active)
            }
        }
        return permission.decide(facts)
    }
}

/// One environment of the plan.
public struct EnvironmentPlan: Sendable {
    public let index: Int
    public let id: EnvironmentID
    public let firstUser: Int64
    public let userCount: Int
    public let firstOrganisation: Int64
    public let organisationCount: Int
    public let accountant: Bool
    let seed: UInt64
    /// Organisations each eligible user (not the creator, not invited) is member of…
    public var membershipsPerUser = 0
    /// …plus one more for eligible users up to this index.
    public var oneMoreThroughIndex = 0

    init(index: Int, id: EnvironmentID, firstUser: Int64, userCount: Int, firstOrganisation: Int64, organisationCount: Int, accountant: Bool, seed: UInt64) {
        self.index = index
        self.id = id
        self.firstUser = firstUser
        self.userCount = userCount
        self.firstOrganisation = firstOrganisation
        self.organisationCount = organisationCount
        self.accountant = accountant
        self.seed = seed
    }

    /// The domain the environment claims (confirmed: its creator activated).
    public var domain: String { "e\(id.raw).load.test" }

    /// Role and status of the user at `index` (0 is the creator: an active administrator).
    public func user(at index: Int) -> SeededUser {
        let id = firstUser + Int64(index)
        if index == 0 { return SeededUser(id: id, role: .administrator, status: .active, organisationAdministrator: true) }
        let h = SplitMix.mix(seed ^ UInt64(bitPattern: id))
        let roll = h % 100
        let role: EnvironmentRole = roll < 3 ? .administrator : roll < 15 ? .advanced : .basic
        let statusRoll = (h >> 8) % 100
        let status: UserStatus = statusRoll < 7 ? .invited : statusRoll < 10 ? .blocked : .active
        return SeededUser(id: id, role: role, status: status, organisationAdministrator: (h >> 16) % 100 < 5)
    }

    public func email(ofUser id: Int64) -> String { "u\(id)@\(domain)" }

    /// The organisations user `index` is member of, in order (the creator: all of them).
    public func organisations(ofUserAt index: Int) -> Range<Int> {
        if index == 0 { return 0..<organisationCount }
        guard user(at: index).status != .invited else { return 0..<0 }
        let count = membershipsPerUser + (index <= oneMoreThroughIndex ? 1 : 0)
        return 0..<min(count, organisationCount)
    }

    /// The organisation offsets (0-based, in this environment) of user `index`'s memberships.
    public func membershipOffsets(ofUserAt index: Int) -> [Int] {
        let range = organisations(ofUserAt: index)
        if index == 0 { return Array(range) }
        return range.map { (index + $0) % organisationCount }
    }

    public var membershipCount: Int {
        (0..<userCount).reduce(0) { $0 + organisations(ofUserAt: $1).count }
    }

    /// The membership of `user` in `organisation` (both of this environment), if any.
    public func membership(user id: Int64, organisation: Int64) -> (role: OrganisationRole, status: MembershipStatus)? {
        let index = Int(id - firstUser)
        let offset = Int(organisation - firstOrganisation)
        guard membershipOffsets(ofUserAt: index).contains(offset) else { return nil }
        return (user(at: index).organisationAdministrator ? .administrator : .member, .active)
    }
}

/// A seeded user's attributes.
public struct SeededUser: Sendable, Equatable {
    public let id: Int64
    public let role: EnvironmentRole
    public let status: UserStatus
    /// Organisation role in every membership the user has.
    public let organisationAdministrator: Bool
}

/// An active partnership, proposed by the accountant's environment and accepted by the client's.
public struct PartnershipPlan: Sendable {
    public let id: Int64
    public let accountant: Int
    public let client: Int
}

/// An accountant's user, active member of a client's organisation.
public struct PartnerMembership: Sendable {
    public let organisation: Int64
    public let user: Int64
    public let userEnvironment: Int
}
