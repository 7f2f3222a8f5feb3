import NIOCore
import NIOPosix
import PortierLoad
import PortierProtocol
import PortierTestSupport
import Synchronization
import Testing

@Suite("portier-load run: measures and verifies")
struct RunTests {
    @Test("R-PRM-5: a mixed run against a real server finds no wrong answer, and its flows' checks see their own mutations")
    func mixedRunAgainstTheServer() async throws {
        let (database, plan) = try await seeded()
        let server = try await TestServer.start(database: database)
        defer { Task { await server.stop() } }
        var options = LoadOptions(socket: server.servicePath)
        options.mailSocket = server.servicePath
        options.connections = 2
        options.depth = 4
        // The request count ends the run; the duration is only a bound, wide for a
        // loaded CI machine (30 s ran out once with the whole suite in parallel).
        options.duration = .seconds(120)
        options.requests = 1500
        options.mutationShare = 0.3
        options.watchers = 4
        options.watchesPerConnection = 2
        let results = try await LoadRunner(plan: plan, options: options).run()
        #expect(results.mismatches == 0, "\(results.mismatchSamples)")
        #expect((results.latency["check"]?.totalCount ?? 0) > 500)
        // R-WAT-1: every watcher saw every change of the run, in order, once.
        let watch = try #require(results.watch)
        #expect(watch.expected > 20 && watch.frames >= 4 * watch.expected, "\(watch.expected) expected, \(watch.frames) frames")
        #expect(watch.missed == 0 && watch.outOfOrder == 0 && watch.ended == 0, "\(watch.samples)")
        for op in ["member.add", "member.remove", "user.set_role", "user.invite", "partnership.propose", "inbox.accept", "partnership.end"] {
            #expect((results.latency[op]?.totalCount ?? 0) > 0, "no \(op) in the mix")
        }
        // Only the invitation rate limit may refuse work here (R-USR-13).
        let codes = Set(results.errors.values.flatMap(\.keys))
        #expect(codes.isSubset(of: ["rate_limited"]), "\(results.errors)")
        let report = LoadReport(results)
        #expect(report.table.contains("| check |"))
        #expect(report.svg.hasPrefix("<svg") && report.svg.contains("polyline"))
    }

    @Test("R-PRM-3: the run's verification catches a server that answers every check with allowed")
    func catchesALyingServer() async throws {
        let (_, plan) = try await seeded()
        let path = "/tmp/pt-liar-\(UInt32.random(in: 0...UInt32.max)).sock"
        let liar = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([ByteToMessageHandler(FrameDecoder(maximumFrameBytes: 1 << 20)), Liar()])
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        defer { liar.close(promise: nil) }
        var options = LoadOptions(socket: path)
        options.connections = 1
        options.depth = 2
        options.requests = 300
        options.mutationShare = 0.1
        options.watchers = 1
        let results = try await LoadRunner(plan: plan, options: options).run()
        #expect(results.mismatches > 0)
        #expect(results.mismatchSamples.contains { $0.contains("expected") })
        // R-WAT-1: its watch answers and then sends nothing: every change is missed.
        #expect((results.watch?.missed ?? 0) > 0)
    }
}

/// Answers every request as if everything were allowed and no lookup found anything.
final class Liar: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let revisions = Atomic<Int64>(0)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        guard case .object(let request)? = try? JSONParser.parse(frame.readBytes(length: frame.readableBytes) ?? []) else { return }
        let id: RequestID = request["id"]?.intValue.map { .int($0) } ?? .string(request["id"]?.stringValue ?? "")
        // Every reply claims a revision, so the run expects its changes in the feed.
        let revision = "env_1:\(revisions.add(1, ordering: .relaxed).newValue)"
        let reply = Reply.success(id, ["allowed": true, "reason": "member", "organisations": [], "users": [], "revisions": []], revision: revision)
        var out = context.channel.allocator.buffer(capacity: 128)
        out.writeReplyFrame(reply)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }
}

@Suite("portier-load across three instances on one database (R-PRM-5, R-WAT-1)")
struct InstancesTests {
    @Test("R-PRM-5: with three portierd on one database, every flow's check on another instance with the mutation's token sees it; without a token the other instance converges")
    func threeInstances() async throws {
        let (database, plan) = try await seeded()
        var servers: [TestServer] = []
        for _ in 0..<3 { servers.append(try await TestServer.start(database: database)) }
        defer { for server in servers { Task { await server.stop() } } }
        var options = LoadOptions(sockets: servers.map(\.servicePath))
        options.mailSocket = servers[0].servicePath
        options.connections = 3
        options.depth = 3
        options.duration = .seconds(30)
        options.requests = 1200
        options.mutationShare = 0.3
        options.recordAcknowledged = true
        options.watchers = 6
        options.watchesPerConnection = 2
        let results = try await LoadRunner(plan: plan, options: options).run()
        #expect(results.mismatches == 0, "\(results.mismatchSamples)")
        // R-WAT-1: watchers on every instance saw every change made through any of them.
        let watch = try #require(results.watch)
        #expect(watch.expected > 20 && watch.missed == 0 && watch.outOfOrder == 0 && watch.ended == 0, "\(watch.samples)")
        let convergence = results.latency["convergence"]
        #expect((convergence?.totalCount ?? 0) > 0, "no convergence was measured")
        #expect(results.errors["convergence"] == nil, "an instance did not converge within 2 s: \(results.errors)")
        let codes = Set(results.errors.values.flatMap(\.keys))
        #expect(codes.isSubset(of: ["rate_limited"]), "\(results.errors)")
        let check = try AcknowledgedCheck.verify(results.acknowledged, conninfo: database.ownerConninfo)
        #expect(check.ok && check.mutations > 0, "\(check.missing)")
    }
}
