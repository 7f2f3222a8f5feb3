import PortierClient
import PortierDomain
import PortierProtocol
import PortierStorage
import PortierTestSupport
import Testing

/// R-SEC-4, R-USR-7, R-MEM-1: `user.remove` and a `member.add` of the same user
/// never leave a membership of a deleted user behind. Memberships of the
/// organisation's own environment have no foreign key to the user, so only the
/// locks can keep them apart: both take the user's environment row first.
/// Each order forced with a pause point, for a user of the organisation's own
/// environment and a partner's, 100 rounds each; again with a CPU hog.
@Suite("R-SEC-4: user.remove races member.add of the same user")
struct UserRemoveRaceTests {
    enum Order: String, CaseIterable, Sendable {
        /// member.add holds after finding the user; user.remove comes in (and waits).
        case addThenRemove
        /// user.remove holds with the user locked; member.add comes in (and waits).
        case removeThenAdd
    }

    enum Home: String, CaseIterable, Sendable { case sameEnvironment, partnerEnvironment }

    static let rounds = 100

    @Test("R-SEC-4: forced interleavings of user.remove and member.add leave no membership of a removed user",
          arguments: Order.allCases, Home.allCases)
    func race(_ order: Order, _ home: Home) async throws {
        try await run(order, home, hog: false)
    }

    @Test("R-SEC-4: the same forced interleavings with a CPU hog on every core", .enabled(if: cpuHogTests),
          arguments: Order.allCases, Home.allCases)
    func raceOnBusyMachine(_ order: Order, _ home: Home) async throws {
        try await run(order, home, hog: true)
    }

    func run(_ order: Order, _ home: Home, hog: Bool) async throws {
        let cpu = hog ? CPUHog() : nil
        defer { cpu?.stop() }
        try await withPausingServer { server in
            let client = try await server.client()
            let s = Scenario(client)
            let tag = "\(order.rawValue)\(home.rawValue)".lowercased()
            let alice = try await s.environment("acme\(tag).test").id
            let org = try await s.organisation("Acme BV", as: alice)
            let userDomain = home == .partnerEnvironment ? "books\(tag).test" : "acme\(tag).test"
            let userAdmin = home == .partnerEnvironment ? try await s.environment(userDomain).id : alice
            if home == .partnerEnvironment { _ = try await s.partners("admin@acme\(tag).test", "admin@\(userDomain)") }
            for round in 0..<Self.rounds {
                let bob = try await s.member("bob\(round)@\(userDomain)", as: userAdmin).id
                let add: @Sendable () async throws -> Reply = {
                    try await client.send("member.add", actor: alice, params: ["organisation": .string(org), "user": .string(bob)])
                }
                let remove: @Sendable () async throws -> Reply = {
                    try await client.send("user.remove", actor: userAdmin, params: ["user": .string(bob)])
                }
                switch order {
                case .addThenRemove:
                    let outcome = try await interleave(server, pause: .memberAddUserChecked, first: add, second: remove)
                    #expect(outcome[0].isSuccess && outcome[1].isSuccess, "round \(round): \(outcome)")
                case .removeThenAdd:
                    let outcome = try await interleave(server, pause: .userRemoveLocked, first: remove, second: add)
                    #expect(outcome[0].isSuccess, "round \(round): remove: \(outcome[0])")
                    #expect(outcome[1].errorCode == .notFound, "round \(round): add after the removal: \(outcome[1])")
                }
                let user = ScopedID(bob, kind: .user)!
                let left = try server.database.owner(
                    "SELECT (SELECT count(*) FROM memberships WHERE user_environment_id = $1 AND user_id = $2)"
                        + " + (SELECT count(*) FROM membership_links WHERE environment_id = $1 AND user_id = $2)"
                        + " + (SELECT count(*) FROM users WHERE environment_id = $1 AND user_id = $2) AS n",
                    [user.environment.raw, user.raw]
                ).first!.int64("n")
                #expect(left == 0, "round \(round): the removed user left \(left) rows")
                #expect(try await s.check(bob, "documents.view", in: org).0 == false, "round \(round): access after the removal")
            }
            await client.close()
        }
    }
}
