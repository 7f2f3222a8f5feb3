import Foundation
import PortierClient
import PortierDomain
import PortierProtocol
import PortierStorage
import PortierTestSupport
import Testing

/// R-SEC-4, R-ENV-7: the cleanup of an environment nobody activated in time and
/// a late activation exclude each other (both lock the environment's row first):
/// either the environment is gone and the activation refused, or the user is
/// active and the environment kept. Each order forced, 100 rounds.
@Suite("R-SEC-4: cleanup of unactivated environments × activation")
struct CleanupRaceTests {
    enum Order: String, CaseIterable, Sendable { case cleanupFirst, activationFirst }

    @Test("R-SEC-4, R-ENV-7: forced interleavings of the cleanup and a late activation never leave an active user in a deleted environment",
          arguments: Order.allCases)
    func race(_ order: Order) async throws {
        try await withPausingServer { server in
            let client = try await server.client()
            let s = Scenario(client)
            for round in 0..<100 {
                let email = "founder@late-\(order.rawValue.lowercased())-\(round).test"
                let signup = try await s.signup(email)
                let environment = ScopedID(signup.string("user", "id")!, kind: .user)!.environment
                let token = try await s.token(for: email)
                // The activation window passes.
                try server.database.owner("UPDATE unactivated_environments SET deadline = now() - interval '1 second' WHERE environment_id = $1", [environment.raw])
                let service = server.service
                let purge: @Sendable () async throws -> Reply = {
                    let n = try await service.purgeUnactivatedEnvironments()
                    return .success(nil, ["deleted": .int(Int64(n))])
                }
                let activate: @Sendable () async throws -> Reply = {
                    try await client.send("user.activate", params: ["token": .string(token), "password": .string(Scenario.password)])
                }
                let outcome = order == .cleanupFirst
                    ? try await interleave(server, pause: .purgeChecked, first: purge, second: activate)
                    : try await interleave(server, pause: .activationChecked, first: activate, second: purge)
                let activation = order == .cleanupFirst ? outcome[1] : outcome[0]
                let exists = try !server.database.owner("SELECT 1 FROM environments WHERE environment_id = $1", [environment.raw]).rows.isEmpty
                let active = try server.database.owner(
                    "SELECT count(*) AS n FROM users WHERE environment_id = $1 AND status = 'active'", [environment.raw]
                ).first!.int64("n")
                if order == .cleanupFirst {
                    #expect(!exists && active == 0 && !activation.isSuccess, "round \(round): \(activation)")
                } else {
                    #expect(exists && active == 1 && activation.isSuccess, "round \(round): \(activation)")
                }
            }
            await client.close()
        }
    }
}
