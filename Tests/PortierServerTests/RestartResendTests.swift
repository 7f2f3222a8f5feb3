import Foundation
import PortierClient
import PortierProtocol
import PortierTestSupport
import Testing

/// R-OPS-1 through `PortierClient`: a server that stops while a client has
/// requests queued answers what it read, names the last one in its `closing`
/// frame, and the client resends the rest to the next server on the same
/// socket by itself. Every change lands exactly once.
@Suite("R-OPS-1: restarts lose no request (PortierClient resends what was never read)", .serialized)
struct RestartResendTests {
    @Test("R-OPS-1: sign-ups sent without pause through a restart: every one answered ok, none twice, those the old server never read resent")
    func pipelinedChangesThroughARestart() async throws {
        let first = try await TestServer.start()
        let client = try await first.client()
        let count = 300
        // One sign-up every 5 ms, none awaited before the next: some are in flight
        // at the stop, some reach the old server after its drain stopped reading,
        // some are sent while the client reconnects.
        let replies = Task {
            try await withThrowingTaskGroup(of: Reply.self) { group in
                for i in 0..<count {
                    group.addTask { try await client.send("signup", params: ["email": .string("user\(i)@restart\(i).test")]) }
                    try await Task.sleep(for: .milliseconds(5))
                }
                return try await group.reduce(into: [Reply]()) { $0.append($1) }
            }
        }
        try await waitUntil("some sign-ups committed", timeout: .seconds(60)) {
            ((try? first.database.owner("SELECT count(*) AS n FROM environments").first?.int64("n")) ?? 0) ?? 0 > 20
        }
        await first.stopKeepingFiles()
        let second = try await TestServer.start(database: first.database, directory: first.directory)
        let answered = try await replies.value
        #expect(answered.count == count)
        let failures = answered.compactMap { reply -> String? in
            if case .failure(let error) = reply.outcome { return "\(error.code): \(error.message)" }
            return nil
        }
        #expect(failures.isEmpty, "every sign-up answered ok (a request executed twice would be a conflict): \(failures.prefix(3))")
        #expect(client.closingNotices.count == 1, "the stopping server sent one closing frame")
        #expect(client.resentRequests > 0, "requests the old server never read were sent again on the new connection")
        let environments = try second.database.owner("SELECT count(*) AS n FROM environments").first!.int64("n")
        #expect(environments == Int64(count), "each sign-up made exactly one environment")
        await client.close()
        await second.stop()
    }
}

extension RestartResendTests {
    @Test("R-OPS-1: a client closed while it reopens its connection fails its waiting requests at once, and later ones too")
    func closeWhileReopening() async throws {
        let server = try await TestServer.start()
        let client = try await server.client()
        #expect(try await client.call("ping").isEmpty)
        await server.stop()  // a closing frame, then nobody at the socket: the client keeps trying to reopen
        try await waitUntil("the client is reopening", timeout: .seconds(10)) { !client.isConnected }
        let waiting = Task { try await client.send("ping") }
        try await Task.sleep(for: .milliseconds(200))
        let closedAt = ContinuousClock.now
        await client.close()
        await #expect(throws: PortierError.self) { _ = try await waiting.value }
        #expect(ContinuousClock.now - closedAt < .seconds(5), "failed at the close, not after the reconnect window")
        await #expect(throws: PortierError.self) { _ = try await client.send("ping") }
    }
}
