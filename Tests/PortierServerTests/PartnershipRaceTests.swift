import Foundation
import PortierClient
import PortierDomain
import PortierProtocol
import PortierStorage
import PortierTestSupport
import Synchronization
import Testing

/// Holds a `PausePoint`'s advisory lock on a connection of its own: the
/// operation that reaches the point waits there until `release`.
final class PauseHold {
    let connection: PostgresConnection
    let point: PausePoint

    init(_ point: PausePoint, conninfo: String) throws {
        self.point = point
        connection = try PostgresConnection(conninfo: conninfo)
        let (a, b) = point.keys
        try connection.query("SELECT pg_advisory_lock($1::int4, $2::int4)", [Int64(a), Int64(b)])
    }

    /// Waits until some transaction waits at the point.
    func waitUntilReached() async throws {
        let (a, b) = point.keys
        for _ in 0..<2000 {
            let n = try connection.query(
                """
                SELECT count(*) AS n FROM pg_locks
                WHERE locktype = 'advisory' AND NOT granted AND classid::bigint = $1 AND objid::bigint = $2
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """,
                [Int64(a), Int64(b)]
            ).first!.int64("n")
            if n > 0 { return }
            try await Task.sleep(for: .milliseconds(2))
        }
        Issue.record("nobody reached \(point.rawValue)")
    }

    /// Waits until `done` or until a transaction waits for a row lock (the
    /// competing request is blocked behind the paused one).
    func waitUntilBlockedOrDone(_ done: @escaping () -> Bool) async throws {
        for _ in 0..<5000 {
            if done() { return }
            let n = try connection.query(
                """
                SELECT count(*) AS n FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event IN ('tuple', 'transactionid')
                """
            ).first!.int64("n")
            if n > 0 { return }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    func release() throws {
        let (a, b) = point.keys
        try connection.query("SELECT pg_advisory_unlock($1::int4, $2::int4)", [Int64(a), Int64(b)])
    }
}

/// A flag shared between tasks and threads.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}

/// Whether this run includes the tests on a busy machine. `Scripts/test.sh`
/// runs them in a phase of their own, after the others: a hog running next to
/// the rest of the suite would only make those tests' own timed bounds miss.
let cpuHogTests = ProcessInfo.processInfo.environment["PORTIER_TEST_CPU_HOG"] == "1"

/// A server whose operations wait at their pause points while a test holds
/// them. A paused transaction waits on an advisory lock: no lock or statement
/// timeout may end it.
func withPausingServer(_ body: (TestServer) async throws -> Void) async throws {
    try await withServer(configure: { _, service in service.pausePoints = true }, configureDatabase: {
        $0.lockTimeout = .seconds(120)
        $0.statementTimeout = .seconds(120)
    }, body)
}

/// Runs `first` until it waits at `pause`, then `second` until it is done or
/// blocked behind `first`, then lets `first` go; returns both replies.
func interleave(
    _ server: TestServer, pause: PausePoint,
    first: @escaping @Sendable () async throws -> Reply, second: @escaping @Sendable () async throws -> Reply
) async throws -> [Reply] {
    let hold = try PauseHold(pause, conninfo: server.database.ownerConninfo)
    let a = Task { try await first() }
    try await hold.waitUntilReached()
    let secondDone = Flag()
    let b = Task {
        defer { secondDone.set() }
        return try await second()
    }
    // Done, or waiting behind the first: for its row lock in PostgreSQL, or for
    // its environment's turn in this process (transactions that lock an
    // environment take turns before they take a connection).
    try await hold.waitUntilBlockedOrDone { secondDone.isSet || server.service.pool.turnUsage.waiting > 0 }
    try hold.release()
    return [try await a.value, try await b.value]
}

/// Burns CPU while alive (the "busy machine" of R-PRM-5 and R-SEC-4).
final class CPUHog: Sendable {
    private let stopped = Flag()

    init(threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        for _ in 0..<threads {
            Thread { [stopped] in
                var x: UInt64 = 1
                while !stopped.isSet { for _ in 0..<100_000 { x = x &* 6364136223846793005 &+ 1 } }
                if x == 0 { print(x) }
            }.start()
        }
    }

    func stop() { stopped.set() }
}

/// R-SEC-4, R-PTN-2, R-MEM-3: a partnership that ends while a partner's
/// membership is being added or accepted leaves no membership behind. Each
/// interleaving is forced with a pause point and run 100 times, on a quiet
/// machine and with a CPU hog on every core.
@Suite("R-SEC-4: partnership end races member.add and inbox.accept")
struct PartnershipRaceTests {
    enum Race: String, CaseIterable, Sendable {
        /// member.add holds after its partnership check; partnership.end comes in.
        case addThenEnd
        /// partnership.end holds with the partnership locked; inbox.accept comes in.
        case endThenAccept
        /// inbox.accept holds after its partnership check; partnership.end comes in.
        case acceptThenEnd
    }

    static let rounds = 100

    @Test("R-SEC-4: forced interleavings of partnership.end with member.add and inbox.accept leave no membership of an ended partnership",
          arguments: Race.allCases)
    func race(_ race: Race) async throws {
        try await run(race, hog: false)
    }

    @Test("R-SEC-4: the same forced interleavings with a CPU hog on every core", .enabled(if: cpuHogTests), arguments: Race.allCases)
    func raceOnBusyMachine(_ race: Race) async throws {
        try await run(race, hog: true)
    }

    func run(_ race: Race, hog: Bool) async throws {
        let cpu = hog ? CPUHog() : nil
        defer { cpu?.stop() }
        try await withPausingServer { server in
            let client = try await server.client()
            let s = Scenario(client)
            let (acme, books) = ("acme\(race.rawValue.lowercased()).test", "books\(race.rawValue.lowercased()).test")
            let alice = try await s.environment(acme).id
            let org = try await s.organisation("Acme BV", as: alice)
            let bert = try await s.environment(books).id
            let bob = try await s.member("bob@books\(race.rawValue.lowercased()).test", as: bert).id
            for round in 0..<Self.rounds {
                let partnership = try await s.partners("admin@\(acme)", "admin@\(books)")
                let outcome: [Reply]
                switch race {
                case .addThenEnd:
                    outcome = try await interleave(server, pause: .memberAddUserChecked,
                        first: { try await client.send("member.add", actor: alice, params: ["organisation": .string(org), "user": .string(bob)]) },
                        second: { try await client.send("partnership.end", actor: bert, params: ["partnership": .string(partnership)]) })
                    #expect(outcome[1].isSuccess, "round \(round): end")
                    // Whatever the add left, accepting it now must not give access.
                    for request in try await s.inbox(bob) where request["kind"] == "membership" {
                        let accepted = try await client.send("inbox.accept", actor: bob, params: ["request": .string(request.id)])
                        #expect(!accepted.isSuccess, "round \(round): accepted after the end")
                    }
                case .endThenAccept, .acceptThenEnd:
                    try await client.call("member.add", actor: alice, params: ["organisation": .string(org), "user": .string(bob)])
                    let request = try await s.inbox(bob).first { $0["kind"] == "membership" }!.id
                    let accept: @Sendable () async throws -> Reply = { try await client.send("inbox.accept", actor: bob, params: ["request": .string(request)]) }
                    let end: @Sendable () async throws -> Reply = { try await client.send("partnership.end", actor: alice, params: ["partnership": .string(partnership)]) }
                    if race == .endThenAccept {
                        outcome = try await interleave(server, pause: .partnershipEndLocked, first: end, second: accept)
                        #expect(outcome[0].isSuccess, "round \(round): end")
                        #expect(outcome[1].errorCode == .invalidState, "round \(round): accept after the end: \(outcome)")
                    } else {
                        outcome = try await interleave(server, pause: .inboxAcceptPartnershipChecked, first: accept, second: end)
                        #expect(outcome[0].isSuccess && outcome[1].isSuccess, "round \(round): \(outcome)")
                    }
                }
                let left = try server.database.owner(
                    "SELECT count(*) AS n FROM memberships WHERE environment_id = $1 AND organisation_id = $2 AND user_id = $3",
                    [ScopedID(org, kind: .organisation)!.environment.raw, ScopedID(org, kind: .organisation)!.raw, ScopedID(bob, kind: .user)!.raw]
                ).first!.int64("n")
                #expect(left == 0, "round \(round): a membership of the ended partnership is left")
                #expect(try await s.check(bob, "documents.view", in: org).0 == false, "round \(round): access after the end")
            }
            await client.close()
        }
    }
}
