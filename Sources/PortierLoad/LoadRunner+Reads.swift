import PortierClient
import PortierDomain
import PortierProtocol

extension LoadRunner {
    static let organisationPermissions: [Permission] = [.documentsView, .documentsSend, .membersManage, .organisationEdit]
    static let environmentPermissions: [Permission] = [.usersInvite, .partnershipsManage]

    /// One check (80 %) or lookup (10 % each way), verified against the plan
    /// when its environment is untouched.
    func read(_ client: PortierClient, rng: inout SplitMix) async {
        let env = nextEnvironment(&rng)
        let userIndex = Zipf.quick(env.userCount, using: &rng)
        let user = env.firstUser + Int64(userIndex)
        let userRef = "usr_\(env.id.raw)_\(user)"
        let roll = Int.random(in: 0..<10, using: &rng)
        if roll == 0 {
            let rows = await allPages(client, "lookup.organisations", params: ["user": .string(userRef), "permission": "documents.view"], key: "organisations")
            guard let rows, !isTouched(env.index) else { return }
            let got = Set(rows.compactMap { $0.objectValue?["id"]?.stringValue })
            let expected = Set(expectedOrganisations(of: user, in: env))
            if got != expected { stats.mismatch("lookup.organisations \(userRef): got \(got.count) organisations, expected \(expected.count)") }
            return
        }
        let memberships = env.membershipOffsets(ofUserAt: userIndex)
        // Half the checks ask about an organisation the user is member of, so both answers occur.
        let offset = !memberships.isEmpty && Bool.random(using: &rng)
            ? memberships.randomElement(using: &rng)!
            : Int.random(in: 0..<env.organisationCount, using: &rng)
        let organisation = env.firstOrganisation + Int64(offset)
        let orgRef = "org_\(env.id.raw)_\(organisation)"
        if roll == 1 {
            let rows = await allPages(client, "lookup.users", params: ["organisation": .string(orgRef), "permission": "documents.view"], key: "users")
            // Verified for environments small enough to enumerate their members cheaply.
            guard let rows, env.userCount <= 500, !isTouched(env.index) else { return }
            let got = Set(rows.compactMap { $0.objectValue?["id"]?.stringValue })
            let expected = Set(expectedUsers(of: organisation, in: env))
            if got != expected { stats.mismatch("lookup.users \(orgRef): got \(got.count) users, expected \(expected.count)") }
            return
        }
        let organisationScoped = Int.random(in: 0..<4, using: &rng) > 0
        let permission = organisationScoped
            ? Self.organisationPermissions.randomElement(using: &rng)!
            : Self.environmentPermissions.randomElement(using: &rng)!
        var params: JSONObject = ["user": .string(userRef), "permission": .string(permission.rawValue)]
        if organisationScoped { params["organisation"] = .string(orgRef) }
        let reply = await send(client, "check", params: params)
        guard let result = reply?.result, !isTouched(env.index) else { return }
        let expected = plan.decide(permission, user: user, organisation: organisationScoped ? (env.index, organisation) : nil)
        verify(result, expected, "check \(permission.rawValue) \(userRef)\(organisationScoped ? " " + orgRef : "")")
    }

    /// Every row of a paged list (§11), following `next_cursor`; each page is
    /// a request of its own in the statistics. Nil if a page failed.
    func allPages(_ client: PortierClient, _ op: String, actor: String? = nil, params: JSONObject, key: String) async -> [JSONValue]? {
        var rows: [JSONValue] = []
        var cursor: String?
        repeat {
            var p = params
            if let cursor { p["cursor"] = .string(cursor) }
            guard let result = await send(client, op, actor: actor, params: p)?.result else { return nil }
            rows += result[key]?.arrayValue ?? []
            cursor = result["next_cursor"]?.stringValue
        } while cursor != nil
        return rows
    }

    func verify(_ result: JSONObject, _ expected: Decision, _ what: String) {
        let allowed = result["allowed"]?.boolValue
        let reason = result["reason"]?.stringValue
        if allowed != expected.allowed || reason != expected.reason.rawValue {
            stats.mismatch("\(what): got \(allowed.map(String.init) ?? "?") (\(reason ?? "?")), expected \(expected)")
        }
    }

    /// Organisations where the seeded user may view documents: own memberships and partner ones.
    func expectedOrganisations(of user: Int64, in env: EnvironmentPlan) -> [String] {
        let index = Int(user - env.firstUser)
        guard env.user(at: index).status == .active else { return [] }
        var ids = env.membershipOffsets(ofUserAt: index).map { "org_\(env.id.raw)_\(env.firstOrganisation + Int64($0))" }
        for (client, members) in plan.partnerMembers {
            for m in members where m.user == user {
                ids.append("org_\(plan.environments[client].id.raw)_\(m.organisation)")
            }
        }
        return ids
    }

    /// Users who may view the organisation's documents: its active members, own and partner.
    func expectedUsers(of organisation: Int64, in env: EnvironmentPlan) -> [String] {
        let offset = Int(organisation - env.firstOrganisation)
        var ids: [String] = []
        for index in 0..<env.userCount where env.user(at: index).status == .active && env.membershipOffsets(ofUserAt: index).contains(offset) {
            ids.append("usr_\(env.id.raw)_\(env.firstUser + Int64(index))")
        }
        for m in plan.partnerMembers[env.index] ?? [] where m.organisation == organisation {
            ids.append("usr_\(plan.environments[m.userEnvironment].id.raw)_\(m.user)")
        }
        return ids
    }
}
