import PortierClient
import PortierDomain
import PortierProtocol

/// Mutation flows. Each reserves what it changes (so concurrent flows do not
/// collide), marks its environments touched (so reads there are no longer
/// checked against the plan), verifies its own changes with the revision token
/// of each mutation, and undoes them, leaving the data as seeded.
extension LoadRunner {
    func userRef(_ env: EnvironmentPlan, _ user: Int64) -> String { "usr_\(env.id.raw)_\(user)" }
    func creator(_ env: EnvironmentPlan) -> String { userRef(env, env.firstUser) }

    /// A check sent with `token` that must answer `allowed`.
    func expect(_ client: PortierClient, _ allowed: Bool, user: String, _ permission: Permission, organisation: String? = nil, after token: String?, _ what: String) async {
        guard let token else { return }
        var params: JSONObject = ["user": .string(user), "permission": .string(permission.rawValue)]
        if let organisation { params["organisation"] = .string(organisation) }
        guard let result = await send(client, "check", params: params, consistency: .atLeast(token))?.result else { return }
        if result["allowed"]?.boolValue != allowed {
            stats.mismatch("\(what): check \(permission.rawValue) with token \(token) answered \(result["allowed"]?.boolValue.map(String.init) ?? "?"), expected \(allowed)")
        }
    }

    /// An active seeded user (not the creator) of `env`, reserved; nil if none free.
    func reserveActiveUser(_ env: EnvironmentPlan, role: EnvironmentRole? = nil, rng: inout SplitMix) -> Int64? {
        guard env.userCount > 1 else { return nil }
        for _ in 0..<8 {
            let index = Int.random(in: 1..<env.userCount, using: &rng)
            let user = env.user(at: index)
            guard user.status == .active, role == nil || user.role == role else { continue }
            if reserve([0, user.id]) { return user.id }
        }
        return nil
    }

    /// member.add, check (allowed), member.remove, check (denied).
    func membershipFlow(_ clients: Clients, rng: inout SplitMix) async {
        let client = clients.own
        let env = nextEnvironment(&rng)
        guard let user = reserveActiveUser(env, rng: &rng) else { return }
        defer { release([0, user]) }
        let offsets = Set(env.membershipOffsets(ofUserAt: Int(user - env.firstUser)))
        guard let offset = (0..<env.organisationCount).filter({ !offsets.contains($0) }).randomElement(using: &rng) else { return }
        touch(env.index)
        let org = "org_\(env.id.raw)_\(env.firstOrganisation + Int64(offset))"
        let member = userRef(env, user)
        let added = await send(client, "member.add", actor: creator(env), params: ["organisation": .string(org), "user": .string(member)])
        guard let added, added.result != nil else { return }
        if clients.separate { await convergence(clients.peer, user: member, organisation: org) }
        await expect(clients.peer, true, user: member, .documentsView, organisation: org, after: added.revision, "after member.add")
        let removed = await send(client, "member.remove", actor: creator(env), params: ["organisation": .string(org), "user": .string(member)])
        await expect(clients.peer, false, user: member, .documentsView, organisation: org, after: removed?.revision, "after member.remove")
    }

    /// user.set_role advanced, check (allowed), back to basic, check (denied).
    func roleFlow(_ clients: Clients, rng: inout SplitMix) async {
        let client = clients.own
        let env = nextEnvironment(&rng)
        guard let user = reserveActiveUser(env, role: .basic, rng: &rng) else { return }
        defer { release([0, user]) }
        touch(env.index)
        let ref = userRef(env, user)
        let promoted = await send(client, "user.set_role", actor: creator(env), params: ["user": .string(ref), "role": "advanced"])
        guard let promoted, promoted.result != nil else { return }
        await expect(clients.peer, true, user: ref, .partnershipsManage, after: promoted.revision, "after user.set_role advanced")
        let demoted = await send(client, "user.set_role", actor: creator(env), params: ["user": .string(ref), "role": "basic"])
        await expect(clients.peer, false, user: ref, .partnershipsManage, after: demoted?.revision, "after user.set_role basic")
    }

    /// user.invite of a new address, check (denied: not activated); with the
    /// mail socket, now and then, the activation token from the outbox and user.activate.
    func inviteFlow(_ clients: Clients, support: PortierClient?, rng: inout SplitMix) async {
        let client = clients.own
        let env = nextEnvironment(&rng)
        touch(env.index)
        let n = sequence.add(1, ordering: .relaxed).newValue
        let email = "load-\(plan.shape.seed)-\(n)-\(UInt32.random(in: 0...UInt32.max, using: &rng))@\(env.domain)"
        guard let invited = await send(client, "user.invite", actor: creator(env), params: ["email": .string(email)]),
              let user = invited.result?["user"]?.objectValue?["id"]?.stringValue else { return }
        await expect(clients.peer, false, user: user, .documentsView, organisation: "org_\(env.id.raw)_\(env.firstOrganisation)", after: invited.revision, "after user.invite")
        // Activation hashes a password (scrypt at N = 2^17: a third of a second of
        // one core, by design): one invitation in a hundred, so that activations
        // stay as rare next to checks as they are on the real platform.
        // The mailer reads every page (§11): the newest message is on the last.
        guard let support, Int.random(in: 0..<100, using: &rng) == 0,
              let messages = await allPages(support, "outbox.list", params: ["limit": 1000], key: "messages")?.compactMap(\.objectValue),
              let message = messages.last(where: { $0["to"]?.stringValue == email }),
              let token = message["token"]?.stringValue else { return }
        let activated = await send(client, "user.activate", params: ["token": .string(token), "password": .string(plan.manifest.password)])
        if let activated, activated.result == nil, case .failure(let error) = activated.outcome {
            stats.mismatch("user.activate of \(email) failed: \(error.code.rawValue)")
        }
        // Plays the mailer: acknowledges this message and the notifications listed
        // with it (other flows' activation messages are theirs to read).
        let done = messages
            .filter { $0["to"]?.stringValue == email || $0["kind"]?.stringValue != "activation" }
            .compactMap { $0["id"] }
        for start in stride(from: 0, to: done.count, by: 1000) {
            _ = await send(support, "outbox.ack", params: ["ids": .array(Array(done[start..<min(start + 1000, done.count)]))])
        }
    }

    /// partnership.propose, inbox.accept by the partner's administrator,
    /// member.add of the proposer's creator to a partner organisation (pending),
    /// inbox.accept by that user, check (allowed), partnership.end, check (denied).
    func partnerFlow(_ clients: Clients, rng: inout SplitMix) async {
        let client = clients.own
        let a = nextEnvironment(&rng), b = nextEnvironment(&rng)
        guard a.index != b.index else { return }
        let pair = [1, Int64(min(a.index, b.index)), Int64(max(a.index, b.index))]
        let seeded = plan.partnerPairs.contains([a.index, b.index]) || plan.partnerPairs.contains([b.index, a.index])
        guard !seeded, reserve(pair) else { return }
        defer { release(pair) }
        // The proposer's creator also becomes member elsewhere: hold it like a user.
        guard reserve([0, a.firstUser]) else { return }
        defer { release([0, a.firstUser]) }
        touch(a.index, b.index)
        guard let proposed = await send(client, "partnership.propose", actor: creator(a), params: ["environment": .string(b.id.description)]),
              let partnership = proposed.result?["partnership"]?.objectValue?["id"]?.stringValue else { return }
        var ended = false
        defer { if !ended { Task { [self] in _ = await send(client, "partnership.end", actor: creator(a), params: ["partnership": .string(partnership)]) } } }
        guard let request = await pendingRequest(client, of: creator(b), where: { $0["partnership"]?.stringValue == partnership }),
              await send(client, "inbox.accept", actor: creator(b), params: ["request": .string(request)])?.result != nil else { return }
        let org = "org_\(b.id.raw)_\(b.firstOrganisation)"
        guard await send(client, "member.add", actor: creator(b), params: ["organisation": .string(org), "user": .string(creator(a))])?.result != nil,
              let invitation = await pendingRequest(client, of: creator(a), where: { $0["organisation"]?.stringValue == org }),
              let accepted = await send(client, "inbox.accept", actor: creator(a), params: ["request": .string(invitation)]) else { return }
        await expect(clients.peer, true, user: creator(a), .documentsView, organisation: org, after: accepted.revision, "after inbox.accept of a partner membership")
        let end = await send(client, "partnership.end", actor: creator(a), params: ["partnership": .string(partnership)])
        ended = end?.result != nil
        await expect(clients.peer, false, user: creator(a), .documentsView, organisation: org, after: end?.revision, "after partnership.end")
    }

    /// Without a token, how long until another instance sees a membership made
    /// on this one (recorded as the pseudo-operation `convergence`; gives up after 2 s).
    private func convergence(_ peer: PortierClient, user: String, organisation: String) async {
        let start = ContinuousClock.now
        let params: JSONObject = ["user": .string(user), "permission": "documents.view", "organisation": .string(organisation)]
        while ContinuousClock.now - start < .seconds(2) {
            guard let reply = try? await peer.send("check", params: params) else { return }
            if reply.result?["allowed"]?.boolValue == true {
                stats.record("convergence", microseconds: UInt64((ContinuousClock.now - start).microseconds), error: nil)
                return
            }
            try? await Task.sleep(for: .milliseconds(1))
        }
        stats.record("convergence", microseconds: UInt64((ContinuousClock.now - start).microseconds), error: "not_converged")
    }

    private func pendingRequest(_ client: PortierClient, of actor: String, where match: (JSONObject) -> Bool) async -> String? {
        let requests = await allPages(client, "inbox.list", actor: actor, params: [:], key: "requests") ?? []
        return requests.compactMap(\.objectValue).first { $0["status"]?.stringValue == "pending" && match($0) }?["id"]?.stringValue
    }
}
