import PortierDomain
import PortierIndex
import PortierStorage

/// Permission facts read from PostgreSQL inside one transaction: the oracle
/// for the index, and the answer for `consistency: "full"`, tokens the index
/// cannot show yet, and cold environments.
///
/// Row-level security sees only the environments in scope (R-ENV-1); the
/// source widens the scope as a question needs (one `SET LOCAL` when it
/// changes) and keeps the rows it read, so a lookup's reply needs no second read.
struct SQLFacts: PermissionFactSource {
    let tx: Transaction
    private var scope: Set<EnvironmentID> = []
    private(set) var userRows: [ScopedID: UserRecord] = [:]
    private(set) var organisationRows: [ScopedID: OrganisationRecord] = [:]

    init(_ tx: Transaction) { self.tx = tx }

    /// Makes sure `environments` are in scope.
    mutating func see(_ environments: some Sequence<EnvironmentID>) throws {
        let wanted = scope.union(environments)
        guard wanted != scope else { return }
        try tx.setEnvironments(wanted.sorted { $0.raw < $1.raw })
        scope = wanted
    }

    mutating func user(_ key: UserKey) throws -> UserFacts? {
        try see([key.environment])
        guard let row = try tx.user(key.environment, key.id) else { return nil }
        userRows[row.scopedID] = row
        return UserFacts(role: row.role, status: row.status)
    }

    mutating func users(_ keys: [UserKey]) throws -> [UserKey: UserFacts] {
        try see(keys.map(\.environment))
        var found: [UserKey: UserFacts] = [:]
        for row in try tx.users(keys.map(\.scopedID)) {
            userRows[row.scopedID] = row
            found[row.scopedID.userKey] = UserFacts(role: row.role, status: row.status)
        }
        return found
    }

    mutating func organisation(_ organisation: ScopedID, member: UserKey) throws -> (exists: Bool, active: Bool, membership: MemberFacts?) {
        try see([organisation.environment, member.environment])
        guard let row = try tx.organisation(organisation) else { return (false, false, nil) }
        organisationRows[organisation] = row
        let membership = try tx.membership(organisation: organisation, user: member.scopedID)
        return (true, row.status == .active, membership.map { MemberFacts(role: $0.role, status: $0.status) })
    }

    mutating func inactiveOrganisations(_ organisations: [ScopedID]) throws -> Set<ScopedID> {
        Set(try organisationRecords(organisations).filter { $0.status != .active }.map(\.scopedID))
    }

    mutating func organisationExists(_ organisation: ScopedID) throws -> Bool {
        if organisationRows[organisation] != nil { return true }
        try see([organisation.environment])
        guard let row = try tx.organisation(organisation) else { return false }
        organisationRows[organisation] = row
        return true
    }

    mutating func memberships(of user: UserKey) throws -> [ScopedID: MemberFacts] {
        try see([user.environment])
        var rows = try tx.ownMemberships(user: user.scopedID)
        let links = try tx.partnerOrganisationLinks(user: user.scopedID)
        try see(links.map(\.environment))
        rows += try tx.partnerMemberships(user: user.scopedID, organisations: links)
        return Dictionary(rows.map { ($0.organisation, MemberFacts(role: $0.role, status: $0.status)) }, uniquingKeysWith: { first, _ in first })
    }

    mutating func organisations(in environment: EnvironmentID) throws -> [ScopedID] {
        try see([environment])
        return try tx.organisations(environment).map { row in
            organisationRows[row.scopedID] = row
            return row.scopedID
        }
    }

    mutating func members(of organisation: ScopedID) throws -> [UserKey: MemberFacts] {
        try see([organisation.environment])
        let rows = try tx.memberships(organisation: organisation)
        return Dictionary(rows.map { ($0.user.userKey, MemberFacts(role: $0.role, status: $0.status)) }, uniquingKeysWith: { first, _ in first })
    }

    mutating func activeAdministrators(of environment: EnvironmentID) throws -> [UserKey] {
        try see([environment])
        return try tx.activeAdministrators(environment).map { UserKey(environment: environment, id: $0) }
    }

    /// The organisation rows of `ids`, read once: kept from the facts when they were read there.
    mutating func organisationRecords(_ ids: [ScopedID]) throws -> [OrganisationRecord] {
        let missing = ids.filter { organisationRows[$0] == nil }
        if !missing.isEmpty {
            try see(missing.map(\.environment))
            for row in try tx.organisations(missing) { organisationRows[row.scopedID] = row }
        }
        return ids.compactMap { organisationRows[$0] }
    }
}
