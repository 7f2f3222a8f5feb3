import Foundation
import PortierClient
import PortierDomain
import PortierProtocol
@testable import PortierService
import PortierTestSupport
import Synchronization
import Testing

/// R-USR-4 (throttling, hash strength) and R-SEC-2 (bounded, fair hashing).
@Suite("Login protection (R-USR-4, R-SEC-2)")
struct LoginProtectionTests {
    func login(_ client: PortierClient, _ email: String, _ password: String, from: String? = nil) async throws -> ErrorCode? {
        var params: JSONObject = ["email": .string(email), "password": .string(password)]
        if let from { params["client"] = .string(from) }
        return try await client.send("user.authenticate", params: params).errorCode
    }

    @Test("R-USR-4: past 10 failures from one client the address is rate_limited for that client, right password too; other clients still log in; unknown addresses alike")
    func perClient() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            try await s.activeUser("ann@throttle.test")
            for _ in 0..<10 { #expect(try await login(client, "ann@throttle.test", "wrong password!", from: "10.0.0.1") == .invalidCredentials) }
            #expect(try await login(client, "ann@throttle.test", Scenario.password, from: "10.0.0.1") == .rateLimited)
            #expect(try await login(client, "ann@throttle.test", Scenario.password, from: "10.0.0.2") == nil)
            for _ in 0..<10 { #expect(try await login(client, "ghost@throttle.test", "wrong password!", from: "10.0.0.1") == .invalidCredentials) }
            #expect(try await login(client, "ghost@throttle.test", "wrong password!", from: "10.0.0.1") == .rateLimited,
                    "an unknown address is throttled the same way (no enumeration)")
        }
    }

    @Test("R-USR-4: past the per-address limit every client is refused for that address")
    func perAddress() async throws {
        try await withClient(configure: { _, settings in settings.loginFailuresPerAddress = 12 }) { _, client in
            let s = Scenario(client)
            try await s.activeUser("bo@throttle.test")
            for i in 0..<12 { #expect(try await login(client, "bo@throttle.test", "wrong password!", from: "10.0.1.\(i)") == .invalidCredentials) }
            #expect(try await login(client, "bo@throttle.test", Scenario.password, from: "10.9.9.9") == .rateLimited)
            #expect(try await login(client, "bo@throttle.test", Scenario.password) == .rateLimited)
        }
    }

    @Test("R-SEC-2: the refusal pacer lets a burst through per connection, refills over time, and stays bounded")
    func refusalPacer() {
        let clock = TestClock()
        let pacer = RefusalPacer(burst: 3, perSecond: 2, maximumConnections: 100, clock: { clock.value })
        #expect((0..<3).map { _ in pacer.mustWait(1) } == [false, false, false])
        #expect(pacer.mustWait(1), "the burst is used up")
        #expect(!pacer.mustWait(2), "another connection has its own bucket")
        clock.advance(0.5)
        #expect(!pacer.mustWait(1), "one refilled after half a second")
        #expect(pacer.mustWait(1))
        for c in 100..<1000 { _ = pacer.mustWait(UInt64(c)) }
        #expect(pacer.count <= 100)
    }

    @Test("R-USR-4: the throttle's window passes and its memory stays bounded")
    func window() {
        let clock = TestClock()
        let throttle = LoginThrottle(limits: .init(perClient: 2, perAddress: 5, windowSeconds: 60, maximumEntries: 50),
                                     clock: { clock.value })
        throttle.failed("a@x.test", client: "c")
        throttle.failed("a@x.test", client: "c")
        #expect(throttle.isLimited("a@x.test", client: "c"))
        #expect(!throttle.isLimited("a@x.test", client: "d"))
        clock.advance(61)
        #expect(!throttle.isLimited("a@x.test", client: "c"), "the window passed")
        for i in 0..<500 { throttle.failed("u\(i)@x.test", client: "c") }
        #expect(throttle.count <= 50)
        throttle.failed("a@x.test", client: "c")
        throttle.failed("a@x.test", client: "c")
        throttle.clear("a@x.test")
        #expect(!throttle.isLimited("a@x.test", client: "c"), "cleared (a completed reset)")
    }

    @Test("R-SEC-2: activations with unknown, used or malformed tokens cost no password hash")
    func unknownTokensCostNothing() async throws {
        try await withClient { server, client in
            let before = server.service.passwordHashesComputed
            for i in 0..<50 {
                let reply = try await client.send("user.activate", params: ["token": .string("1.\(String(repeating: "a", count: 40))\(i)"), "password": "long enough password"])
                #expect(reply.errorCode == .expiredToken)
            }
            #expect(server.service.passwordHashesComputed == before)
        }
    }

    @Test("R-SEC-2: past its connection's burst, a refused activation or login answers only after the refusal delay, so a pipelined flood of them is paced to the in-flight bound")
    func refusalsArePaced() async throws {
        let delay = 0.3
        try await withClient(configure: { transport, settings in
            settings.credentialRefusalDelay = .milliseconds(Int(delay * 1000))
            settings.refusalBurst = 8
            settings.refusalsPerSecond = 0.001
            transport.maximumInFlightPerConnection = 8
        }) { _, client in
            let clock = ContinuousClock()
            let start = clock.now
            let codes = try await withThrowingTaskGroup(of: ErrorCode?.self) { group in
                for i in 0..<40 {
                    group.addTask {
                        i.isMultiple(of: 2)
                            ? try await client.send("user.activate", params: ["token": .string("1.\(String(repeating: "b", count: 40))\(i)"), "password": "long enough password"]).errorCode
                            : try await login(client, "nobody\(i)@pace.test", "wrong password!")
                    }
                }
                return try await group.reduce(into: [ErrorCode?]()) { $0.append($1) }
            }
            let elapsed = clock.now - start
            #expect(codes.allSatisfy { $0 == .expiredToken || $0 == .invalidCredentials }, "\(codes)")
            // 8 at once (the burst), then 32 through 8 in-flight slots, each held `delay`: at least 4 delays.
            #expect(elapsed >= .milliseconds(Int(4 * delay * 1000) - 50), "answered in \(elapsed)")
        }
    }

    @Test("R-USR-4: a hash stored with older parameters is upgraded at the next successful login")
    func rehash() async throws {
        let database = try await TestDatabase.create()
        let weak = try await TestServer.start(database: database)
        let client = try await weak.client()
        try await Scenario(client).activeUser("cy@rehash.test")
        await client.close()
        await weak.stop()
        let stronger = try await TestServer.start(database: database, configure: { _, s in s.passwordHashing = .init(log2N: 11, blockSize: 8, parallelism: 1) })
        let again = try await stronger.client()
        func stored() throws -> String { try database.owner("SELECT password_hash FROM users WHERE email = 'cy@rehash.test'").first!.string("password_hash") }
        #expect(try stored().hasPrefix("scrypt$10$"))
        #expect(try await login(again, "cy@rehash.test", Scenario.password) == nil)
        #expect(try stored().hasPrefix("scrypt$11$"))
        #expect(try await login(again, "cy@rehash.test", Scenario.password) == nil, "the upgraded hash verifies")
        await again.close()
        await stronger.stop()
    }

    @Test("R-SEC-2: the hasher's queue serves connections, then keys, in turn and refuses a key past its bound")
    func fairQueue() async throws {
        let queue = FairQueue(slots: 1, perKey: 4, total: 6)
        let served = Recorder()
        let (gate, open) = AsyncStream<Void>.makeStream()
        let flood = FairQueue.Key(connection: 1, client: "flood")
        // One of the flood's holds the only slot until the others are queued.
        let holder = Task {
            try await queue.run(flood) {
                served.add("holding")
                for await _ in gate { break }
            }
        }
        try await waitUntil("the holder served") { served.all.contains("holding") }
        var tasks: [Task<Void, any Error>] = []
        for i in 0..<4 {
            tasks.append(Task { try await queue.run(flood) { served.add("flood\(i)") } })
            try await waitUntil("\(i + 1) waiting") { queue.waiting >= i + 1 }
        }
        await #expect(throws: PortierError.self, "a fifth waiting from one key is refused") {
            try await queue.run(flood) {}
        }
        tasks.append(Task { try await queue.run(FairQueue.Key(connection: 2, client: "")) { served.add("login") } })
        try await waitUntil("5 waiting") { queue.waiting >= 5 }
        open.yield()
        try await holder.value
        for task in tasks { try await task.value }
        let order = served.all.filter { $0 != "holding" }
        #expect(order.firstIndex(of: "login")! <= 1, "the login waited for at most one of the flood's turns: \(order)")
    }

    @Test("R-SEC-5: with the queue full of one connection's made-up client keys, a login on another connection drops the flood's newest, not itself; the flood's own newcomer is refused")
    func fullQueueDropsTheFattestFlow() async throws {
        let queue = FairQueue(slots: 1, perKey: 2, total: 6)
        let served = Recorder()
        let (gate, open) = AsyncStream<Void>.makeStream()
        let holder = Task {
            try await queue.run(FairQueue.Key(connection: 1, client: "k0")) {
                served.add("holding")
                for await _ in gate { break }
            }
        }
        try await waitUntil("the holder served") { served.all.contains("holding") }
        // The flooding front end (connection 1): three made-up keys, two each: the queue is full.
        var flood: [Task<Void, any Error>] = []
        for i in 0..<6 {
            flood.append(Task { try await queue.run(FairQueue.Key(connection: 1, client: "k\(i % 3 + 1)")) { served.add("flood") } })
            try await waitUntil("\(i + 1) waiting") { queue.waiting >= i + 1 }
        }
        await #expect(throws: PortierError.self, "the flooding connection's own newcomer is refused when full") {
            try await queue.run(FairQueue.Key(connection: 1, client: "k9")) {}
        }
        let login = Task { try await queue.run(FairQueue.Key(connection: 2, client: "")) { served.add("login") } }
        try await waitUntil("the login queued") { queue.dropped == 1 }
        #expect(queue.waiting == 6, "one of the flood's waiters made room")
        open.yield()
        try await holder.value
        try await login.value
        var refused = 0
        for task in flood { if (try? await task.value) == nil { refused += 1 } }
        #expect(refused == 1, "exactly the dropped waiter of the fattest flow was refused")
        #expect(served.all.filter { $0 != "holding" }.firstIndex(of: "login")! <= 1, "the login waited at most one turn: \(served.all)")
    }
}

/// Strings appended from several tasks.
final class Recorder: Sendable {
    private let items = Mutex<[String]>([])
    func add(_ s: String) { items.withLock { $0.append(s) } }
    var all: [String] { items.withLock { $0 } }
}

/// A settable clock for the throttle.
final class TestClock: Sendable {
    private let now = Mutex<Double>(1000)
    var value: Double { now.withLock { $0 } }
    func advance(_ seconds: Double) { now.withLock { $0 += seconds } }
}
