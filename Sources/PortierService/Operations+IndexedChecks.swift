import PortierDomain
import PortierIndex
import PortierProtocol
import PortierStorage

/// Checks and lookups answered from the in-memory index (SPEC §7, R-PRM-5).
/// The SQL path in Operations+Checks.swift stays: it answers `consistency: "full"`
/// and is the oracle the tests compare against.
extension PortierService {
    /// The user's environment and id; an email costs one lookup in the directory.
    func userKey(_ ref: UserReference) async throws -> UserKey? {
        if case .id(let id) = ref { return UserKey(environment: id.environment, id: id.raw) }
        let found = try await pool.snapshot(environments: []) { tx in try Self.locate(tx, ref) }
        return found.map { UserKey(environment: $0.environment, id: $0.raw) }
    }

    /// Makes sure the token's environment is at least at its revision; false when
    /// this instance cannot show it (the caller falls back to SQL).
    func satisfies(_ token: RevisionToken) async throws -> Bool {
        if try await indexes.environment(token.environment, atLeast: token.revision) != nil { return true }
        // A deleted environment has nothing to wait for; otherwise the index is behind.
        return try await indexes.environment(token.environment) == nil
    }

    /// Whether the user belongs to organisations of other environments (then a
    /// read with a token, which names one environment, goes to PostgreSQL).
    func hasPartnerLinks(_ key: UserKey) async throws -> Bool {
        try await !(indexes.environment(key.environment)?.links(of: key.id).isEmpty ?? true)
    }

    /// Whether the organisation has members from other environments (see `hasPartnerLinks`).
    func hasPartnerMembers(_ org: ScopedID) async throws -> Bool {
        try await indexes.environment(org.environment)?.members(of: org.raw).keys.contains { $0.environment != org.environment } ?? false
    }

    /// One question, from the indexes, loading what is missing.
    func indexedDecision(_ q: CheckQuestion) async throws -> (Decision, String?) {
        guard let key = try await userKey(q.user), let home = try await indexes.environment(key.environment) else {
            return (q.permission.decide(PermissionFacts(user: nil)), nil)
        }
        let organisationIndex = try await q.organisation.asyncMap { try await indexes.environment($0.environment) } ?? nil
        return Self.decide(q, user: key, home: home, organisationIndex: organisationIndex)
    }

    /// The organisations where `key` holds `permission`, from the indexes.
    func indexedOrganisations(of key: UserKey, _ permission: Permission, page: PageRequest) async throws -> [(EnvironmentID, IndexedOrganisation)] {
        guard let home = try await indexes.environment(key.environment), let user = home.user(key.id), user.status == .active else { return [] }
        let facts = PermissionFacts(user: (user.role, user.status, key.environment))
        var candidates: [ScopedID: MemberFacts?] = [:]
        for (org, m) in home.memberships(of: key) { candidates[ScopedID(.organisation, environment: key.environment, raw: org)] = m }
        if user.role == .administrator {
            for org in home.organisations() where candidates[ScopedID(.organisation, environment: key.environment, raw: org.id)] == nil {
                candidates[ScopedID(.organisation, environment: key.environment, raw: org.id)] = .some(nil)
            }
        }
        var result: [(EnvironmentID, IndexedOrganisation)] = []
        for link in home.links(of: key.id) where candidates[link] == nil { candidates[link] = .some(nil) }
        // Only the ids are sorted; the rule runs on candidates after the cursor,
        // in order, until the page (plus one) is full.
        for id in candidates.keys.filter(page.isAfterCursor).sorted(by: Self.idOrder) {
            guard result.count < page.fetch else { break }
            guard let orgIndex = try await indexes.environment(id.environment), let org = orgIndex.organisation(id.raw) else { continue }
            let membership = candidates[id]! ?? orgIndex.membership(organisation: id.raw, user: key)
            var f = facts
            f.organisationEnvironment = id.environment
            f.membership = membership.map { ($0.role, $0.status) }
            if permission.decide(f).allowed { result.append((id.environment, org)) }
        }
        return result
    }

    /// The order of every paged list: environment, then number.
    static func idOrder(_ a: ScopedID, _ b: ScopedID) -> Bool { (a.environment.raw, a.raw) < (b.environment.raw, b.raw) }

    /// The users who hold `permission` in `org`, from the indexes.
    func indexedUsers(of org: ScopedID, _ permission: Permission, page: PageRequest) async throws -> [(EnvironmentID, IndexedUser)] {
        guard let orgIndex = try await indexes.environment(org.environment), orgIndex.organisation(org.raw) != nil else { return [] }
        var candidates = orgIndex.members(of: org.raw).mapValues { Optional($0) }
        for admin in orgIndex.activeAdministrators() {
            let key = UserKey(environment: org.environment, id: admin)
            if candidates[key] == nil { candidates[key] = .some(nil) }
        }
        var result: [(EnvironmentID, IndexedUser)] = []
        let ordered = candidates.keys.map { ScopedID(.user, environment: $0.environment, raw: $0.id) }.filter(page.isAfterCursor).sorted(by: Self.idOrder)
        for id in ordered {
            guard result.count < page.fetch else { break }
            let key = UserKey(environment: id.environment, id: id.raw)
            guard let home = try await indexes.environment(key.environment), let user = home.user(key.id) else { continue }
            let facts = PermissionFacts(user: (user.role, user.status, key.environment), organisationEnvironment: org.environment,
                                        membership: candidates[key]!.map { ($0.role, $0.status) })
            if permission.decide(facts).allowed { result.append((key.environment, user)) }
        }
        return result
    }
}

extension IndexedUser {
    func json(environment: EnvironmentID) -> JSONValue {
        WireObject.user(ScopedID(.user, environment: environment, raw: id), email: email, name: name, role: role, status: status)
    }
}

extension IndexedOrganisation {
    func json(environment: EnvironmentID) -> JSONValue {
        WireObject.organisation(ScopedID(.organisation, environment: environment, raw: id), name: name, kvkNumber: kvkNumber, country: country, status: status)
    }
}

extension Optional {
    /// `map` for an async transform.
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
