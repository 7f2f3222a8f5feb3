import Foundation
import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import PortierTransport
import Synchronization
import Testing

/// Collects a watch's events in the background.
final class WatchRecorder: Sendable {
    let events = Mutex<[JSONObject]>([])
    let ended = Mutex<(any Error)??>(nil)
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ stream: AsyncThrowingStream<JSONObject, any Error>) {
        task.withLock {
            $0 = Task { [self] in
                do {
                    for try await event in stream { events.withLock { $0.append(event) } }
                    ended.withLock { $0 = .some(nil) }
                } catch {
                    ended.withLock { $0 = .some(error) }
                }
            }
        }
    }

    var count: Int { events.withLock { $0.count } }
    var snapshot: [JSONObject] { events.withLock { $0 } }
    var endError: PortierError? { ended.withLock { $0 ?? nil } as? PortierError }
    var hasEnded: Bool { ended.withLock { $0 != nil } }

    /// Revisions (as integers) of the frames so far.
    var revisions: [Int64] { snapshot.compactMap { $0["revision"]?.stringValue.flatMap(RevisionToken.init)?.revision } }
    /// Every change's kind, in order.
    var kinds: [String] { snapshot.flatMap { $0["changes"]?.arrayValue ?? [] }.compactMap { $0.objectValue?["kind"]?.stringValue } }

    func wait(for n: Int, _ what: String = "events") async throws {
        try await waitUntil("\(n) \(what), have \(count)", timeout: .seconds(30)) { count >= n || hasEnded }
    }
}

/// Revisions committed by concurrent tasks.
final class RevisionLog: Sendable {
    let list = Mutex<[Int64]>([])
}

extension PortierClient {
    func watchRecorded(environments: [String]? = nil, after: [String] = []) async throws -> (RequestID, JSONObject, WatchRecorder) {
        let (id, result, events) = try await openWatch(environments: environments, after: after)
        return (id, result, WatchRecorder(events))
    }
}

@Suite("R-WAT-1: the change feed")
struct WatchTests {
    /// Acme's administrator, its environment, an active organisation, and Bob (active, no member yet).
    static func acme(_ client: PortierClient) async throws -> (admin: JSONObject, env: String, org: String, bob: JSONObject) {
        let s = Scenario(client)
        let admin = try await s.environment("acme.test")
        let org = try await s.organisation("Acme BV", as: admin.id)
        let bob = try await s.member("bob@acme.test", as: admin.id)
        return (admin, admin["environment"]!.stringValue!, org, bob)
    }

    @Test("R-WAT-1: watch answers with its id and the current revision, then one frame per transaction with every change of it")
    func framesPerTransaction() async throws {
        try await withClient { _, client in
            let (admin, env, org, bob) = try await Self.acme(client)
            let (id, result, feed) = try await client.watchRecorded(environments: [env])
            #expect(result["watch"] == id.json)
            let start = RevisionToken(result["revisions"]!.arrayValue![0].stringValue!)!
            #expect(start.environment.description == env)

            let add = try await client.send("member.add", actor: admin.id, params: ["organisation": .string(org), "user": .string(bob.id), "role": "member"])
            try await client.call("member.set_role", actor: admin.id, params: ["organisation": .string(org), "user": .string(bob.id), "role": "administrator"])
            try await client.call("user.set_role", actor: admin.id, params: ["user": .string(bob.id), "role": "advanced"])
            try await client.call("user.block", actor: admin.id, params: ["user": .string(bob.id)])
            try await client.call("organisation.update", actor: admin.id, params: ["organisation": .string(org), "name": "Renamed BV"])  // no permission fact
            try await client.call("member.remove", actor: admin.id, params: ["organisation": .string(org), "user": .string(bob.id)])
            try await feed.wait(for: 5)
            let events = feed.snapshot
            #expect(events.count == 5)
            #expect(feed.kinds == ["membership.added", "membership.role_changed", "user.role_changed", "user.status_changed", "membership.removed"])
            #expect(feed.revisions == feed.revisions.sorted() && Set(feed.revisions).count == 5)
            #expect(feed.revisions.first! > start.revision)
            #expect(events.first?["revision"]?.stringValue == add.revision)
            let roleChange = events[1]["changes"]!.arrayValue![0].objectValue!
            #expect(roleChange["organisation"]?.stringValue == org && roleChange["user"]?.stringValue == bob.id)
            #expect(roleChange["role"] == "administrator" && roleChange["previous_role"] == "member")
            let blocked = events[3]["changes"]!.arrayValue![0].objectValue!
            #expect(blocked["status"] == "blocked" && blocked["previous_status"] == "active")
            #expect(events.allSatisfy { $0["environment"]?.stringValue == env })
        }
    }

    @Test("R-WAT-1: user.remove is one frame with the memberships removed and the user removed")
    func removalIsOneFrame() async throws {
        try await withClient { _, client in
            let (admin, env, org, bob) = try await Self.acme(client)
            try await client.call("member.add", actor: admin.id, params: ["organisation": .string(org), "user": .string(bob.id)])
            let (_, _, feed) = try await client.watchRecorded(environments: [env])
            try await client.call("user.remove", actor: admin.id, params: ["user": .string(bob.id)])
            try await feed.wait(for: 1)
            #expect(feed.count == 1)
            #expect(feed.kinds == ["membership.removed", "user.removed"])
        }
    }

    @Test("R-WAT-1: frames of concurrent changes come in increasing revision order, none skipped, none twice")
    func orderingUnderConcurrentChanges() async throws {
        try await withClient { server, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let env = admin["environment"]!.stringValue!
            var users: [String] = []
            for i in 0..<6 { users.append(try await s.member("u\(i)@acme.test", as: admin.id).id) }
            let (_, _, feed) = try await client.watchRecorded(environments: [env])
            let (_, _, everything) = try await client.watchRecorded()
            let committed = RevisionLog()
            let adminID = admin.id
            try await withThrowingTaskGroup(of: Void.self) { group in
                for user in users {
                    group.addTask {
                        let c = try await server.client()
                        for round in 0..<20 {
                            let reply = try await c.send("user.set_role", actor: adminID, params: ["user": .string(user), "role": round % 2 == 0 ? "advanced" : "basic"])
                            guard case .success(_, let revision?) = reply.outcome else { Issue.record("set_role failed: \(reply)"); return }
                            committed.list.withLock { $0.append(RevisionToken(revision)!.revision) }
                        }
                        await c.close()
                    }
                }
                try await group.waitForAll()
            }
            let expected = committed.list.withLock { $0.sorted() }
            try await feed.wait(for: expected.count)
            try await everything.wait(for: expected.count)
            #expect(feed.revisions == expected)
            #expect(everything.revisions == expected)
        }
    }

    @Test("R-WAT-1: a change spanning two environments (a partner membership) appears in both feeds")
    func partnerMembershipInBothFeeds() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let alice = try await s.environment("acme.test")
            let carol = try await s.environment("globex.test")
            let envA = alice["environment"]!.stringValue!
            let envB = carol["environment"]!.stringValue!
            try await s.partners(alice.id, "admin@globex.test")
            let org = try await s.organisation("Acme BV", as: alice.id)
            let (_, _, feedA) = try await client.watchRecorded(environments: [envA])
            let (_, _, feedB) = try await client.watchRecorded(environments: [envB])
            try await client.call("member.add", actor: alice.id, params: ["organisation": .string(org), "user": .string(carol.id)])
            let request = try await s.inbox(carol.id).first!["id"]!.stringValue!
            try await client.call("inbox.accept", actor: carol.id, params: ["request": .string(request)])
            try await feedA.wait(for: 2)
            try await feedB.wait(for: 2)
            #expect(feedA.kinds == ["membership.added", "membership.accepted"])
            #expect(feedB.kinds == ["membership.added", "membership.accepted"])
            #expect(feedB.snapshot.allSatisfy { $0["environment"]?.stringValue == envB })
            let change = feedB.snapshot[1]["changes"]!.arrayValue![0].objectValue!
            #expect(change["organisation"]?.stringValue == org && change["user"]?.stringValue == carol.id)
        }
    }

    @Test("R-WAT-1: after replays every frame after the token; with the history pruned the answer is resync_required")
    func replayAndResync() async throws {
        try await withClient(configure: { _, service in service.watchHistorySeconds = 3600 }) { server, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let env = admin["environment"]!.stringValue!
            let bob = try await s.member("bob@acme.test", as: admin.id)
            let before = try await client.send("user.set_role", actor: admin.id, params: ["user": .string(bob.id), "role": "advanced"])
            var tokens: [String] = []
            for role in ["basic", "advanced", "basic"] {
                tokens.append(try await client.send("user.set_role", actor: admin.id, params: ["user": .string(bob.id), "role": .string(role)]).revision!)
            }
            let (_, _, replay) = try await client.watchRecorded(environments: [env], after: [before.revision!])
            try await replay.wait(for: 3)
            #expect(replay.snapshot.map { $0["revision"]!.stringValue! } == tokens)
            // A live change after the replay follows it.
            let live = try await client.send("user.set_role", actor: admin.id, params: ["user": .string(bob.id), "role": "advanced"]).revision!
            try await replay.wait(for: 4)
            #expect(replay.snapshot.last?["revision"]?.stringValue == live)

            // Prune everything: resuming from before the floor is resync_required; from the floor or later is fine.
            server.service.reconfigure { $0.watchHistorySeconds = 0 }
            let pruned = try await server.service.pruneLogs()
            #expect(pruned.permissionEvents >= 4)
            let gone = try await client.send("watch", params: ["environments": [.string(env)], "after": [.string(before.revision!)]])
            #expect(gone.errorCode == .resyncRequired)
            let fine = try await client.send("watch", params: ["environments": [.string(env)], "after": [.string(live)]])
            #expect(fine.isSuccess)
        }
    }

    @Test("R-WAT-1: bad watch params are bad_request, unknown environments named are not_found; nothing is registered")
    func badParams() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let env = admin["environment"]!.stringValue!
            let cases: [(JSONObject, ErrorCode)] = [
                (["environments": []], .badRequest),
                (["environments": "env_1"], .badRequest),
                (["environments": [1]], .badRequest),
                (["environments": [.string(env), .string(env)]], .badRequest),
                (["environments": ["usr_1_1"]], .badRequest),
                (["after": ["nope"]], .badRequest),
                (["after": [.string(env + ":1"), .string(env + ":2")]], .badRequest),
                (["environments": [.string(env)], "after": ["env_999999:1"]], .badRequest),
                (["environments": [.string(env)], "after": [.string(env + ":99999999")]], .badRequest),
                (["environments": ["env_999999"]], .notFound),
                (["what": 1], .badRequest),
            ]
            for (params, code) in cases {
                let reply = try await client.send("watch", params: params)
                #expect(reply.errorCode == code, "\(params)")
            }
            // A watch of every environment resuming one that no longer exists: nothing to resume there.
            #expect(try await client.send("watch", params: ["after": ["env_999999:0"]]).isSuccess)
            #expect(try await client.send("watch.cancel", params: ["watch": 12345]).errorCode == .notFound)
            #expect(try await client.send("watch.cancel", params: ["watch": [1]]).errorCode == .badRequest)
        }
    }

    @Test("R-WAT-1: watch.cancel ends the watch; a connection holds at most max_watches, and a watch id in use is conflict")
    func cancelAndLimits() async throws {
        try await withClient(configure: { _, service in service.watchesPerConnection = 2 }) { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let env = admin["environment"]!.stringValue!
            let bob = try await s.member("bob@acme.test", as: admin.id)
            let hello = try await client.call("hello")
            #expect(hello["limits"]?.objectValue?["max_watches"] == 2)
            let (first, _, feed) = try await client.watchRecorded(environments: [env])
            let (_, _, other) = try await client.watchRecorded()
            let third = try await client.send("watch", params: [:])
            #expect(third.errorCode == .overloaded)
            try await client.call("user.set_role", actor: admin.id, params: ["user": .string(bob.id), "role": "advanced"])
            try await feed.wait(for: 1)
            try await client.cancelWatch(first)
            try await waitUntil("the cancelled stream ends") { feed.hasEnded }
            #expect(feed.endError == nil)
            try await client.call("user.set_role", actor: admin.id, params: ["user": .string(bob.id), "role": "basic"])
            try await other.wait(for: 2)
            #expect(feed.count == 1)
            // The cancelled slot is free again.
            #expect(try await client.send("watch", params: [:]).isSuccess)
        }
    }

    @Test("R-WAT-1: a watch needs the check capability (R-SEC-1)")
    func needsCheckCapability() async throws {
        let me = getuid()
        try await withServer(configure: { transport, _ in
            transport.service.capabilities = .service(mailerUIDs: [], serverUID: me + 1, rules: [CapabilityPolicy.Rule("uid:\(me)=manage")!])
        }) { server in
            let client = try await server.client()
            #expect(try await client.send("watch", params: [:]).errorCode == .forbidden)
            #expect(try await client.send("watch.cancel", params: ["watch": 1]).errorCode == .forbidden)
            await client.close()
        }
    }

    @Test("R-WAT-1: a connection with a watch is not idle; a graceful stop ends each watch with unavailable")
    func notIdleAndStop() async throws {
        // Idle after 1 s: the watch must be open by then (on a loaded machine a
        // shorter timeout closed the connection before the watch request came).
        let server = try await TestServer.start(configure: { transport, _ in transport.idleTimeout = .seconds(1) })
        let client = try await server.client()
        let (_, _, feed) = try await client.watchRecorded()
        try await Task.sleep(for: .seconds(3))
        #expect(client.isConnected)
        #expect(!feed.hasEnded)
        await server.stop()
        try await waitUntil("the watch ends") { feed.hasEnded }
        #expect(feed.endError?.code == .unavailable)
        await client.close()
    }
}

extension Reply {
    var revision: String? { if case .success(_, let r) = outcome { r } else { nil } }
}

// Serialized: the slow-reader cases commit over a thousand changes each; in
// parallel they loaded the machine enough to stretch other suites' timed bounds.
@Suite("R-WAT-1: the change feed across instances, slow readers and restarts", .serialized)
struct WatchLifecycleTests {
    @Test("R-WAT-1: a watch on instance B sees the changes committed through instance A, in order, none skipped")
    func crossInstance() async throws {
        let a = try await TestServer.start()
        let b = try await TestServer.start(database: a.database)
        let clientA = try await a.client()
        let clientB = try await b.client()
        do {
            let s = Scenario(clientA)
            let admin = try await s.environment("acme.test")
            let env = admin["environment"]!.stringValue!
            let bob = try await s.member("bob@acme.test", as: admin.id)
            let (_, _, named) = try await clientB.watchRecorded(environments: [env])
            let (_, _, everything) = try await clientB.watchRecorded()
            var expected: [Int64] = []
            for round in 0..<30 {
                let reply = try await clientA.send("user.set_role", actor: admin.id, params: ["user": .string(bob.id), "role": round % 2 == 0 ? "advanced" : "basic"])
                expected.append(RevisionToken(reply.revision!)!.revision)
            }
            try await named.wait(for: expected.count)
            try await everything.wait(for: expected.count)
            #expect(named.revisions == expected)
            #expect(everything.revisions == expected)
        } catch {
            Issue.record(error)
        }
        await clientA.close()
        await clientB.close()
        await a.stop()
        await b.stop()
    }

    @Test("R-WAT-1: a watch whose client does not read is ended with overloaded (past its backlog bound, or past the write-stall timeout); the connection's other requests go on",
          arguments: [(8 << 10, 60_000), (4 << 20, 300)])
    func slowReaderIsCutOff(backlog: Int, stallMilliseconds: Int64) async throws {
        try await withServer(configure: { transport, _ in
            transport.maximumOutputBytes = 8 << 10
            transport.maximumWatchBacklogBytes = backlog
            transport.writeStallTimeout = .milliseconds(stallMilliseconds)
        }) { server in
            let client = try await server.client()
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            var users: [String] = []
            for i in 0..<8 { users.append(try await s.member("u\(i)@acme.test", as: admin.id).id) }
            let slow = try RawClient(path: server.servicePath)
            _ = slow.writeUntilBlocked(Self.frame(#"{"id":"w","op":"watch"}"#), limit: 1)
            try await Task.sleep(for: .milliseconds(200))
            let adminID = admin.id
            // Far more events than the socket buffers, the output bound and the backlog hold together.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for user in users {
                    group.addTask {
                        let c = try await server.client()
                        for round in 0..<150 {
                            _ = try await c.send("user.set_role", actor: adminID, params: ["user": .string(user), "role": round % 2 == 0 ? "advanced" : "basic"])
                        }
                        await c.close()
                    }
                }
                try await group.waitForAll()
            }
            try await waitUntil("the hub dropped the slow watch") { server.service.openWatches == 0 }
            // Now read: event frames, then the watch's end.
            let seen = slow.readFrames(until: { $0.contains(#""code":"overloaded""#) }, within: 20)
            #expect(seen.last?.contains(#""id":"w""#) == true, "no overloaded frame for the watch")
            if stallMilliseconds > 10_000 {
                // The backlog bound ended the watch, not the stall: the connection still answers.
                _ = slow.writeUntilBlocked(Self.frame(#"{"id":"p","op":"ping"}"#), limit: 1)
                let ping = slow.readFrames(until: { $0.contains(#""id":"p""#) }, within: 10)
                #expect(ping.last?.contains(#""ok":true"#) == true)
            }
            // (Past the stall timeout the watches end first; a client that still
            // does not read is then cut off like any other, docs/rules.md §10.)
            await client.close()
        }
    }

    @Test("R-WAT-1: PortierWatch resumes by itself across a server restart, from its last revision: nothing missed, nothing twice")
    func clientResumesAcrossRestart() async throws {
        let directory = "/tmp/pt-\(UInt32.random(in: 0...UInt32.max))"
        var first: TestServer? = try await TestServer.start(directory: directory)
        let other = try await TestServer.start(database: first!.database)
        let client = try await other.client()
        let s = Scenario(client)
        let admin = try await s.environment("acme.test")
        let env = admin["environment"]!.stringValue!
        let bob = try await s.member("bob@acme.test", as: admin.id)
        let path = first!.servicePath
        let seen = RevisionLog()
        let resumed = Mutex(0)
        let reader = Task {
            for try await update in PortierWatch(path: path, environments: [env]) {
                switch update {
                case .event(let event): seen.list.withLock { $0.append(RevisionToken(event.revision)!.revision) }
                case .resumed: resumed.withLock { $0 += 1 }
                }
            }
        }
        defer { reader.cancel() }
        var expected: [Int64] = []
        func change(_ role: String) async throws {
            expected.append(RevisionToken(try await client.send("user.set_role", actor: admin.id, params: ["user": .string(bob.id), "role": .string(role)]).revision!)!.revision)
        }
        try await waitUntil("the watch is open") { first!.service.openWatches == 1 }
        try await change("advanced")
        try await waitUntil("the first event") { seen.list.withLock { $0.count } == 1 }
        await first!.stop()
        first = nil
        // Changes while the watched instance is down, through the other one.
        for role in ["basic", "advanced", "basic"] { try await change(role) }
        let restarted = try await TestServer.start(database: other.database, directory: directory)
        try await change("advanced")
        try await waitUntil("every change seen", timeout: .seconds(30)) { seen.list.withLock { $0.count } >= expected.count }
        try await Task.sleep(for: .milliseconds(200))
        #expect(seen.list.withLock { $0 } == expected)
        #expect(resumed.withLock { $0 } >= 1)
        reader.cancel()
        await client.close()
        await restarted.stop()
        await other.stop()
    }

    @Test("R-WAT-1: a connection that closes while its watch is being registered leaves no watch behind", arguments: 0..<3)
    func closeDuringRegistration(_ round: Int) async throws {
        try await withServer { server in
            for i in 0..<30 {
                let raw = try RawClient(path: server.servicePath)
                _ = raw.writeUntilBlocked(Self.frame(#"{"id":\#(i),"op":"watch"}"#), limit: 1)
                if i % 2 == 1 { try await Task.sleep(for: .microseconds(200 * round)) }
                _ = raw  // closed here, whether the reply came or not
            }
            try await waitUntil("every watch of a closed connection dropped", timeout: .seconds(10)) { server.service.openWatches == 0 }
            let client = try await server.client()
            #expect(try await client.send("watch", params: [:]).isSuccess)
            #expect(server.service.openWatches == 1)
            await client.close()
            try await waitUntil("the last watch dropped at close") { server.service.openWatches == 0 }
        }
    }

    static func frame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        return withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload
    }
}

extension RawClient {
    /// Reads whole frames (as text) until one satisfies `done`, or `within` seconds pass.
    func readFrames(until done: (String) -> Bool, within seconds: Double) -> [String] {
        var frames: [String] = []
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n == 0 { break }
            if n < 0 { continue }
            pending += buffer[0..<n]
            while pending.count >= 4 {
                let length = Int(UInt32(pending[0]) << 24 | UInt32(pending[1]) << 16 | UInt32(pending[2]) << 8 | UInt32(pending[3]))
                guard pending.count >= 4 + length else { break }
                let text = String(decoding: pending[4..<(4 + length)], as: UTF8.self)
                pending.removeFirst(4 + length)
                frames.append(text)
                if done(text) { return frames }
            }
        }
        return frames
    }
}
