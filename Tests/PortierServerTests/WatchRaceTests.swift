import PortierClient
import PortierDomain
import PortierProtocol
import PortierStorage
import PortierTestSupport
import Testing

/// R-WAT-1: a watch starts exactly at the revisions its reply names. The race:
/// a change commits after the watch read where the environments stand and
/// before it joined the feed. Forced with a pause point (the registration holds
/// there; the change commits; then it goes on), 100 rounds each, for a watch
/// naming its environment and a first watch of every environment; again with a
/// CPU hog.
@Suite("R-WAT-1: a change committing while a watch registers")
struct WatchRaceTests {
    enum Scope: String, CaseIterable, Sendable { case named, everywhere }

    static let rounds = 100

    @Test("R-WAT-1: a change committed while the watch registers reaches it (none missed, none twice)", arguments: Scope.allCases)
    func race(_ scope: Scope) async throws {
        try await run(scope, hog: false)
    }

    @Test("R-WAT-1: the same forced interleaving with a CPU hog on every core", .enabled(if: cpuHogTests), arguments: Scope.allCases)
    func raceOnBusyMachine(_ scope: Scope) async throws {
        try await run(scope, hog: true)
    }

    func run(_ scope: Scope, hog: Bool) async throws {
        let cpu = hog ? CPUHog() : nil
        defer { cpu?.stop() }
        try await withPausingServer { server in
            let client = try await server.client()
            let s = Scenario(client)
            let admin = try await s.environment("race\(scope.rawValue).test")
            let env = admin["environment"]!.stringValue!
            let bob = try await s.member("bob@race\(scope.rawValue).test", as: admin.id).id
            let adminID = admin.id
            for round in 0..<Self.rounds {
                let watcher = try await server.client()
                let hold = try PauseHold(.watchPositionsRead, conninfo: server.database.ownerConninfo)
                let opening = Task { try await watcher.watchRecorded(environments: scope == .named ? [env] : nil) }
                try await hold.waitUntilReached()
                // The change commits while the registration holds after reading the positions.
                let change = try await client.send("user.set_role", actor: adminID, params: ["user": .string(bob), "role": round % 2 == 0 ? "advanced" : "basic"])
                let committed = try #require(change.revision.flatMap(RevisionToken.init))
                try hold.release()
                let (_, result, feed) = try await opening.value
                if scope == .named {
                    let start = try #require(result["revisions"]?.arrayValue?.first?.stringValue.flatMap(RevisionToken.init))
                    #expect(start.revision < committed.revision, "round \(round): the reply's revision is from before the change")
                }
                try await feed.wait(for: 1)
                try await Task.sleep(for: .milliseconds(20))
                #expect(feed.revisions == [committed.revision], "round \(round): \(feed.revisions)")
                await watcher.close()
                try await waitUntil("the round's watch dropped") { server.service.openWatches == 0 }
            }
            await client.close()
        }
    }
}
