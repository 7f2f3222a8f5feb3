import PortierDomain

/// A user as the permission index keeps it.
public struct IndexedUser: Sendable, Equatable {
    public let id: Int64
    public let role: EnvironmentRole
    public let status: UserStatus
    public let email: String
    public let name: String

    public init(id: Int64, role: EnvironmentRole, status: UserStatus, email: String, name: String) {
        self.id = id
        self.role = role
        self.status = status
        self.email = email
        self.name = name
    }
}

/// An organisation as the permission index keeps it.
public struct IndexedOrganisation: Sendable, Equatable {
    public let id: Int64
    public let name: String
    public let kvkNumber: String?
    public let country: String?
    public let status: OrganisationStatus

    public init(id: Int64, name: String, kvkNumber: String?, country: String?, status: OrganisationStatus) {
        self.id = id
        self.name = name
        self.kvkNumber = kvkNumber
        self.country = country
        self.status = status
    }
}

/// A user anywhere on the platform: environment and id.
public struct UserKey: Sendable, Hashable, Comparable {
    public let environment: EnvironmentID
    public let id: Int64
    public init(environment: EnvironmentID, id: Int64) {
        self.environment = environment
        self.id = id
    }
    public static func < (a: Self, b: Self) -> Bool { (a.environment.raw, a.id) < (b.environment.raw, b.id) }
}

/// A membership's role and status.
public struct MemberFacts: Sendable, Equatable {
    public let role: OrganisationRole
    public let status: MembershipStatus
    public init(role: OrganisationRole, status: MembershipStatus) {
        self.role = role
        self.status = status
    }
}

/// A membership of one of the environment's organisations (the user may be a partner's).
public struct IndexedMembership: Sendable, Equatable {
    public let organisation: Int64
    public let user: UserKey
    public let facts: MemberFacts
    public init(organisation: Int64, user: UserKey, facts: MemberFacts) {
        self.organisation = organisation
        self.user = user
        self.facts = facts
    }
}

/// One of the environment's users belongs to a partner environment's organisation.
public struct IndexedLink: Sendable, Hashable {
    public let user: Int64
    public let organisation: ScopedID
    public init(user: Int64, organisation: ScopedID) {
        self.user = user
        self.organisation = organisation
    }
}

/// Everything one environment contributes to permission checks, read in one snapshot.
public struct EnvironmentSnapshot: Sendable {
    public let environment: EnvironmentID
    public let revision: Int64
    public let users: [IndexedUser]
    public let organisations: [IndexedOrganisation]
    public let memberships: [IndexedMembership]
    public let links: [IndexedLink]

    public init(environment: EnvironmentID, revision: Int64, users: [IndexedUser], organisations: [IndexedOrganisation],
                memberships: [IndexedMembership], links: [IndexedLink]) {
        self.environment = environment
        self.revision = revision
        self.users = users
        self.organisations = organisations
        self.memberships = memberships
        self.links = links
    }
}

/// What changed in one environment between two revisions: for each changed key,
/// its row now (nil: gone).
public struct EnvironmentDelta: Sendable {
    public struct MembershipKey: Sendable, Hashable {
        public let organisation: Int64
        public let user: UserKey
        public init(organisation: Int64, user: UserKey) {
            self.organisation = organisation
            self.user = user
        }
    }

    public let environment: EnvironmentID
    public let fromRevision: Int64
    public let revision: Int64
    public var users: [Int64: IndexedUser?] = [:]
    public var organisations: [Int64: IndexedOrganisation?] = [:]
    public var memberships: [MembershipKey: MemberFacts?] = [:]
    public var links: [IndexedLink: Bool] = [:]

    public init(environment: EnvironmentID, fromRevision: Int64, revision: Int64) {
        self.environment = environment
        self.fromRevision = fromRevision
        self.revision = revision
    }
}
