import PortierDomain
import PortierIndex

/// A user's permission facts: environment role and status.
struct UserFacts: Sendable, Equatable {
    let role: EnvironmentRole
    let status: UserStatus
}

/// Where the permission evaluator reads its facts: the in-memory index
/// (`IndexFacts`) or PostgreSQL inside a transaction (`SQLFacts`). The two
/// answer the same questions; the evaluator decides from either, so a check,
/// `check.bulk` and both lookups follow one rule whatever answers them.
///
/// Methods are `mutating` so that a source can remember what it saw (the index
/// remembers the revision of the facts, SQL the rows it read).
protocol PermissionFactSource {
    /// The user's facts, or nil when no such user exists.
    mutating func user(_ key: UserKey) throws -> UserFacts?
    /// Facts of several users; a key without a user is absent.
    mutating func users(_ keys: [UserKey]) throws -> [UserKey: UserFacts]
    /// Whether the organisation exists.
    mutating func organisationExists(_ organisation: ScopedID) throws -> Bool
    /// Whether the organisation exists and, if so, whether it is active and `member`'s membership of it.
    mutating func organisation(_ organisation: ScopedID, member: UserKey) throws -> (exists: Bool, active: Bool, membership: MemberFacts?)
    /// Those of `organisations` that exist and are not active (R-ORG-2: they grant nothing).
    mutating func inactiveOrganisations(_ organisations: [ScopedID]) throws -> Set<ScopedID>
    /// The user's memberships of existing organisations, own and partner environments alike.
    mutating func memberships(of user: UserKey) throws -> [ScopedID: MemberFacts]
    /// The organisations of an environment (an environment administrator's candidates).
    mutating func organisations(in environment: EnvironmentID) throws -> [ScopedID]
    /// The organisation's members, of any environment (empty if it does not exist).
    mutating func members(of organisation: ScopedID) throws -> [UserKey: MemberFacts]
    /// The active environment administrators of an environment.
    mutating func activeAdministrators(of environment: EnvironmentID) throws -> [UserKey]
}

/// The one evaluator of docs/rules.md §7 over a fact source: `check`, `check.bulk`,
/// `lookup.organisations` and `lookup.users` from the index and from SQL all
/// come through here. The rule itself is `Permission.decide(_:)` (PortierDomain);
/// this type gathers its facts and, for the lookups, its candidates.
enum PermissionEvaluator {
    /// One question (the user already located; nil: no such user).
    static func decide<Source: PermissionFactSource>(_ question: CheckQuestion, user key: UserKey?, in source: inout Source) throws -> Decision {
        guard let key, let user = try source.user(key) else { return question.permission.decide(PermissionFacts(user: nil)) }
        var facts = PermissionFacts(user: (user.role, user.status, key.environment))
        if let organisation = question.organisation {
            let (exists, active, membership) = try source.organisation(organisation, member: key)
            if exists {
                facts.organisationEnvironment = organisation.environment
                facts.organisationActive = active
                facts.membership = membership.map { ($0.role, $0.status) }
            }
        }
        return question.permission.decide(facts)
    }

    /// The organisations where `key` holds `permission` (organisation-scoped), in
    /// id order after the page's cursor, at most `page.fetch` of them.
    ///
    /// Candidates: the user's memberships and, for an environment administrator,
    /// every organisation of its environment. Only the ids are sorted; the rule
    /// runs on candidates after the cursor, in order, until the page is full.
    static func organisations<Source: PermissionFactSource>(of key: UserKey, holding permission: Permission, page: PageRequest, in source: inout Source) throws -> [ScopedID] {
        guard let user = try source.user(key), user.status == .active else { return [] }
        let memberships = try source.memberships(of: key)
        var candidates = Set(memberships.keys)
        if user.role == .administrator { candidates.formUnion(try source.organisations(in: key.environment)) }
        var found: [ScopedID] = []
        let ordered = candidates.filter(page.isAfterCursor).sorted(by: idOrder)
        let inactive = try source.inactiveOrganisations(ordered)
        for id in ordered {
            guard found.count < page.fetch else { break }
            let facts = PermissionFacts(user: (user.role, user.status, key.environment), organisationEnvironment: id.environment,
                                        organisationActive: !inactive.contains(id),
                                        membership: memberships[id].map { ($0.role, $0.status) })
            if permission.decide(facts).allowed { found.append(id) }
        }
        return found
    }

    /// The users who hold `permission` (organisation-scoped) in `organisation`,
    /// in id order after the page's cursor, at most `page.fetch` of them.
    ///
    /// Candidates: its members and its environment's active administrators.
    /// Users are read in batches of what the page still lacks.
    static func users<Source: PermissionFactSource>(of organisation: ScopedID, holding permission: Permission, page: PageRequest, in source: inout Source) throws -> [UserKey] {
        guard try source.organisationExists(organisation) else { return [] }
        let active = try source.inactiveOrganisations([organisation]).isEmpty
        let members = try source.members(of: organisation)
        let candidates = Set(members.keys).union(try source.activeAdministrators(of: organisation.environment))
        let ordered = candidates.filter { page.isAfterCursor($0.scopedID) }.sorted()
        var found: [UserKey] = []
        var next = ordered.startIndex
        while found.count < page.fetch, next < ordered.endIndex {
            let batch = Array(ordered[next..<min(next + page.fetch - found.count, ordered.endIndex)])
            next += batch.count
            let users = try source.users(batch)
            for key in batch {
                guard let user = users[key] else { continue }
                let facts = PermissionFacts(user: (user.role, user.status, key.environment), organisationEnvironment: organisation.environment,
                                            organisationActive: active, membership: members[key].map { ($0.role, $0.status) })
                if permission.decide(facts).allowed { found.append(key) }
            }
        }
        return found
    }

    /// The order of every paged list: environment, then number.
    static func idOrder(_ a: ScopedID, _ b: ScopedID) -> Bool { (a.environment.raw, a.raw) < (b.environment.raw, b.raw) }
}

extension UserKey {
    /// The user's wire id.
    var scopedID: ScopedID { ScopedID(.user, environment: environment, raw: id) }
}

extension ScopedID {
    /// The user this id names (for a user id).
    var userKey: UserKey { UserKey(environment: environment, id: raw) }
}
