import PortierDomain
import PortierIndex

/// Permission facts from the loaded environment indexes, without waiting and
/// without the database. An environment that is not loaded makes the source
/// `incomplete`: the caller then loads it or asks PostgreSQL instead, and
/// throws the answer away (it may be wrong).
struct IndexFacts: PermissionFactSource {
    let index: PermissionIndex
    /// An environment asked about was not loaded.
    private(set) var incomplete = false
    /// The revision token of the index the last user or organisation facts came
    /// from, read under the same lock as those facts (R-PRM-5): for a check, the
    /// organisation's environment if it has one, else the user's.
    private(set) var token: String?

    init(_ index: PermissionIndex) { self.index = index }

    private mutating func environment(_ id: EnvironmentID) -> EnvironmentIndex? {
        guard let loaded = index.get(id) else {
            incomplete = true
            return nil
        }
        return loaded
    }

    mutating func user(_ key: UserKey) -> UserFacts? {
        guard let home = environment(key.environment) else { return nil }
        let (user, token) = home.userFacts(key.id)
        self.token = token
        return user.map { UserFacts(role: $0.role, status: $0.status) }
    }

    mutating func users(_ keys: [UserKey]) -> [UserKey: UserFacts] {
        var found: [UserKey: UserFacts] = [:]
        for key in keys {
            if let user = environment(key.environment)?.user(key.id) { found[key] = UserFacts(role: user.role, status: user.status) }
        }
        return found
    }

    mutating func organisation(_ organisation: ScopedID, member: UserKey) -> (exists: Bool, active: Bool, membership: MemberFacts?) {
        guard let home = environment(organisation.environment) else { return (false, false, nil) }
        let (exists, active, membership, token) = home.membershipFacts(organisation: organisation.raw, user: member)
        self.token = token
        return (exists, active, membership)
    }

    mutating func inactiveOrganisations(_ organisations: [ScopedID]) -> Set<ScopedID> {
        Set(organisations.filter { id in
            guard let row = environment(id.environment)?.organisation(id.raw) else { return false }
            return row.status != .active
        })
    }

    mutating func organisationExists(_ organisation: ScopedID) -> Bool {
        environment(organisation.environment)?.organisation(organisation.raw) != nil
    }

    mutating func memberships(of user: UserKey) -> [ScopedID: MemberFacts] {
        guard let home = environment(user.environment) else { return [:] }
        var found: [ScopedID: MemberFacts] = [:]
        for (organisation, facts) in home.memberships(of: user) {
            found[ScopedID(.organisation, environment: user.environment, raw: organisation)] = facts
        }
        // Partner organisations: the membership lives in the organisation's environment.
        for link in home.links(of: user.id) {
            guard let partner = environment(link.environment) else { continue }
            let (exists, _, membership, _) = partner.membershipFacts(organisation: link.raw, user: user)
            if exists, let membership { found[link] = membership }
        }
        return found
    }

    mutating func organisations(in id: EnvironmentID) -> [ScopedID] {
        environment(id)?.organisations().map { ScopedID(.organisation, environment: id, raw: $0.id) } ?? []
    }

    mutating func members(of organisation: ScopedID) -> [UserKey: MemberFacts] {
        environment(organisation.environment)?.members(of: organisation.raw) ?? [:]
    }

    mutating func activeAdministrators(of id: EnvironmentID) -> [UserKey] {
        environment(id)?.activeAdministrators().map { UserKey(environment: id, id: $0) } ?? []
    }
}
