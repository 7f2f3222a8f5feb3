import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

/// A small deterministic random generator, so a failing sequence can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("The in-memory index agrees with PostgreSQL (R-PRM-5)")
struct IndexOracleTests {
    @Test("R-PRM-5: after every step of a random sequence of mutations, every check and lookup from the index equals the SQL oracle", arguments: [UInt64(7), 2026])
    func randomSequences(seed: UInt64) async throws {
        try await withServer { server in
            let client = try await server.client()
            let s = Scenario(client)
            var rng = SplitMix64(state: seed)
            let domains = ["a.test", "b.test", "c.test"]
            var admins: [String] = []
            var users: [String] = []
            var orgs: [String] = []
            for d in domains {
                let admin = try await s.environment(d)
                admins.append(admin.id)
                users.append(admin.id)
                for i in 0..<3 { users.append(try await s.member("u\(i)@\(d)", role: ["basic", "advanced", "administrator"][i], as: admin.id).id) }
                for i in 0..<2 { orgs.append(try await s.organisation("Org \(i) of \(d)", as: admin.id)) }
            }
            var partnerships: [String: String] = [:]

            func environmentOf(_ id: String) -> String { String(id.split(separator: "_")[1]) }
            func adminOf(_ id: String) -> String { admins[domains.indices.first { environmentOf(admins[$0]) == environmentOf(id) }!] }

            for step in 0..<40 {
                let user = users.randomElement(using: &rng)!
                let org = orgs.randomElement(using: &rng)!
                var description = ""
                switch Int.random(in: 0..<9, using: &rng) {
                case 0:
                    let role = ["basic", "advanced", "administrator"].randomElement(using: &rng)!
                    description = "set_role \(user) \(role)"
                    _ = try await client.send("user.set_role", actor: adminOf(user), params: ["user": .string(user), "role": .string(role)])
                case 1:
                    description = "block \(user)"
                    _ = try await client.send("user.block", actor: adminOf(user), params: ["user": .string(user)])
                case 2:
                    description = "unblock \(user)"
                    _ = try await client.send("user.unblock", actor: adminOf(user), params: ["user": .string(user)])
                case 3, 4:
                    let role = ["member", "administrator"].randomElement(using: &rng)!
                    description = "member.add \(org) \(user) \(role)"
                    _ = try await client.send("member.add", actor: adminOf(org), params: ["organisation": .string(org), "user": .string(user), "role": .string(role)])
                case 5:
                    description = "member.remove \(org) \(user)"
                    _ = try await client.send("member.remove", actor: adminOf(org), params: ["organisation": .string(org), "user": .string(user)])
                case 6:
                    description = "inbox.accept for \(user)"
                    if let request = try? await s.inbox(user).first(where: { $0["kind"] == "membership" }) {
                        _ = try await client.send(Bool.random(using: &rng) ? "inbox.accept" : "inbox.decline", actor: user, params: ["request": request["id"]!])
                    }
                case 7:
                    let (a, b) = (Int.random(in: 0..<3, using: &rng), Int.random(in: 0..<3, using: &rng))
                    guard a != b else { continue }
                    let pair = "\(min(a, b))-\(max(a, b))"
                    if let id = partnerships[pair] {
                        description = "partnership.end \(pair)"
                        _ = try await client.send("partnership.end", actor: admins[a], params: ["partnership": .string(id)])
                        partnerships[pair] = nil
                    } else {
                        description = "partners \(pair)"
                        if let id = try? await s.partners(admins[a], "admin@\(domains[b])") { partnerships[pair] = id }
                    }
                default:
                    guard !admins.contains(user) else { continue }
                    description = "user.remove \(user)"
                    _ = try await client.send("user.remove", actor: adminOf(user), params: ["user": .string(user)])
                }

                // Every check, from the index and from PostgreSQL.
                var items: [JSONValue] = []
                for u in users {
                    for p in Permission.allCases {
                        if p.rule.scope == .organisation {
                            for o in orgs { items.append(["user": .string(u), "permission": .string(p.rawValue), "organisation": .string(o)]) }
                        } else {
                            items.append(["user": .string(u), "permission": .string(p.rawValue)])
                        }
                    }
                }
                let fromIndex = try await client.call("check.bulk", params: ["checks": .array(items)])["results"]!
                let fromDatabase = try await client.call("check.bulk", params: ["checks": .array(items)], consistency: .full)["results"]!
                let mismatches = zip(zip(items, fromIndex.arrayValue!), fromDatabase.arrayValue!).filter { $0.0.1 != $0.1 }
                #expect(mismatches.isEmpty, "seed \(seed) step \(step) after \(description): \(mismatches.prefix(3).map { "\($0.0.0.jsonText): index \($0.0.1.jsonText) sql \($0.1.jsonText)" })")

                // A few lookups each step, both directions.
                for _ in 0..<3 {
                    let p = ["documents.view", "members.manage", "organisation.edit"].randomElement(using: &rng)!
                    let u = users.randomElement(using: &rng)!
                    let o = orgs.randomElement(using: &rng)!
                    let params1: JSONObject = ["user": .string(u), "permission": .string(p)]
                    let a1 = try await client.call("lookup.organisations", params: params1)
                    let b1 = try await client.call("lookup.organisations", params: params1, consistency: .full)
                    #expect(a1 == b1, "seed \(seed) step \(step) lookup.organisations \(u) \(p)")
                    let params2: JSONObject = ["organisation": .string(o), "permission": .string(p)]
                    let a2 = try await client.call("lookup.users", params: params2)
                    let b2 = try await client.call("lookup.users", params: params2, consistency: .full)
                    #expect(a2 == b2, "seed \(seed) step \(step) lookup.users \(o) \(p)")
                }
            }
            await client.close()
        }
    }

    @Test("R-PRM-5, docs/rules.md §7: a cold environment's first check and lookups are answered by PostgreSQL while its index loads in the background; then from the index, with the same answers")
    func coldEnvironment() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let admin = try await s.environment("cold.test")
            let org = try await s.organisation("Cold BV", as: admin.id)
            let member = try await s.member("m@cold.test", role: "basic", as: admin.id)
            _ = try await client.call("member.add", actor: admin.id, params: ["organisation": .string(org), "user": .string(member.id), "role": "member"])
            // Mutations do not load an index: nothing has read the environment yet.
            #expect(server.service.permissionIndex.count == 0)

            let check: JSONObject = ["user": .string(member.id), "permission": "documents.view", "organisation": .string(org)]
            let cold = try await client.send("check", params: check)
            guard case .success(let coldResult, let coldRevision) = cold.outcome else { Issue.record("\(cold)"); return }
            #expect(coldResult["allowed"] == true && coldResult["reason"] == "member")
            #expect(coldRevision == nil, "a cold check is answered by PostgreSQL, which names no index revision")

            // The load started in the background; a bulk check waits for it.
            let bulk = try await client.call("check.bulk", params: ["checks": [.object(check)]])
            #expect(bulk["results"]?.arrayValue?.first?.objectValue == coldResult)
            #expect(server.service.permissionIndex.count == 1)
            let warm = try await client.send("check", params: check)
            guard case .success(let warmResult, let warmRevision) = warm.outcome else { Issue.record("\(warm)"); return }
            #expect(warmResult == coldResult)
            #expect(warmRevision?.hasPrefix("env_\(org.split(separator: "_")[1]):") == true, "\(String(describing: warmRevision))")

            // Lookups: the same answers from PostgreSQL and from the index.
            let lookup: JSONObject = ["user": .string(member.id), "permission": "documents.view"]
            #expect(try await client.call("lookup.organisations", params: lookup) == client.call("lookup.organisations", params: lookup, consistency: .full))
        }
    }
}
