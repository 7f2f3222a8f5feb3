import PortierDomain
import PortierIndex
import PortierProtocol
import PortierStorage

/// `lookup.organisations` and `lookup.users` (R-PRM-4): the same rule as
/// `check` (`PermissionEvaluator`), from the index or from PostgreSQL.
extension PortierService {
    /// The organisations where the user holds an organisation-scoped permission.
    func lookupOrganisations(_ p: LookupOrganisationsParams, _ request: Request) async throws -> OperationOutput {
        let (ref, permission, page) = (p.user, p.permission, p.page)
        var fromIndex = request.consistency == nil
        if case .id(let id) = ref {
            fromIndex = try await !needsDatabase(request.consistency, reading: [id.environment])
            // A token names one environment; partner organisations live in others.
            if fromIndex, request.consistency != nil { fromIndex = try await !hasPartnerLinks(id.userKey) }
        }
        if fromIndex {
            guard let key = try await userKey(ref) else { return .result(["organisations": []]) }
            if let home = try await indexes.environment(key.environment) {
                for link in home.links(of: key.id) { _ = try await indexes.environment(link.environment) }
            }
            var facts = IndexFacts(indexes.index)
            let ids = try PermissionEvaluator.organisations(of: key, holding: permission, page: page, in: &facts)
            if !facts.incomplete {
                let rows = ids.compactMap { id in indexes.index.get(id.environment)?.organisation(id.raw).map { (id, $0.json(environment: id.environment)) } }
                return .result(page.result("organisations", rows, id: \.0, json: \.1))
            }
        }
        let rows = try await snapshot(environments: []) { tx -> [OrganisationRecord] in
            guard let key = try Self.locate(tx, ref)?.userKey else { return [] }
            var facts = SQLFacts(tx)
            let ids = try PermissionEvaluator.organisations(of: key, holding: permission, page: page, in: &facts)
            return try facts.organisationRecords(ids)
        }
        return .result(page.result("organisations", rows, id: \.scopedID, json: \.json))
    }

    /// The users holding an organisation-scoped permission in an organisation,
    /// own and partner environments alike.
    func lookupUsers(_ p: LookupUsersParams, _ request: Request) async throws -> OperationOutput {
        let (organisation, permission, page) = (p.organisation, p.permission, p.page)
        var fromIndex = try await !needsDatabase(request.consistency, reading: [organisation.environment])
        if fromIndex, request.consistency != nil { fromIndex = try await !hasPartnerMembers(organisation) }
        if fromIndex {
            if let home = try await indexes.environment(organisation.environment) {
                for environment in Set(home.members(of: organisation.raw).keys.map(\.environment)) { _ = try await indexes.environment(environment) }
            }
            var facts = IndexFacts(indexes.index)
            let keys = try PermissionEvaluator.users(of: organisation, holding: permission, page: page, in: &facts)
            if !facts.incomplete {
                let rows = keys.compactMap { key in indexes.index.get(key.environment)?.user(key.id).map { (key.scopedID, $0.json(environment: key.environment)) } }
                return .result(page.result("users", rows, id: \.0, json: \.1))
            }
        }
        let rows = try await snapshot(environments: []) { tx -> [UserRecord] in
            var facts = SQLFacts(tx)
            let keys = try PermissionEvaluator.users(of: organisation, holding: permission, page: page, in: &facts)
            return keys.compactMap { facts.userRows[$0.scopedID] }
        }
        return .result(page.result("users", rows, id: \.scopedID, json: \.json))
    }

    /// Whether the user belongs to organisations of other environments.
    func hasPartnerLinks(_ key: UserKey) async throws -> Bool {
        try await !(indexes.environment(key.environment)?.links(of: key.id).isEmpty ?? true)
    }

    /// Whether the organisation has members from other environments.
    func hasPartnerMembers(_ org: ScopedID) async throws -> Bool {
        try await indexes.environment(org.environment)?.members(of: org.raw).keys.contains { $0.environment != org.environment } ?? false
    }

    static func organisationPermission(_ params: JSONObject) throws -> Permission {
        let permission = try Permission(name: try params.requiredString("permission"))
        guard permission.rule.scope == .organisation else {
            throw PortierError.badRequest("\(permission.rawValue) is environment-scoped; lookups take organisation-scoped permissions")
        }
        return permission
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

/// `lookup.organisations`: `{user, permission, limit?, cursor?}` (organisation-scoped permission).
struct LookupOrganisationsParams: OperationParams {
    static let keys: Set<String> = PageRequest.keys.union(["user", "permission"])
    let user: UserReference
    let permission: Permission
    let page: PageRequest
    init(_ params: JSONObject) throws {
        user = try PortierService.userParam(params)
        permission = try PortierService.organisationPermission(params)
        page = try PageRequest(params, kind: .organisation)
    }
}

/// `lookup.users`: `{organisation, permission, limit?, cursor?}` (organisation-scoped permission).
struct LookupUsersParams: OperationParams {
    static let keys: Set<String> = PageRequest.keys.union(["organisation", "permission"])
    let organisation: ScopedID
    let permission: Permission
    let page: PageRequest
    init(_ params: JSONObject) throws {
        organisation = try PortierService.organisationParam(params)
        permission = try PortierService.organisationPermission(params)
        page = try PageRequest(params, kind: .user)
    }
}
