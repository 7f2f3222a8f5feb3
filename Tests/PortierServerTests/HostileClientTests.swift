import Foundation
import PortierDomain
import PortierProtocol
import PortierServer
import PortierTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A blocking Unix-socket client with time-outs, for clients that misbehave.
final class RawClient {
    let fd: Int32

    init(path: String) throws {
        fd = try connectUnixSocket(path)
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Writes whole frames until the server has taken no byte for `stalledFor`
    /// seconds (a server that is merely slow, on a loaded machine, still takes
    /// some within that) or `limit` frames are out; returns the frames written.
    func writeUntilBlocked(_ frame: [UInt8], limit: Int, stalledFor: Double = 1.5) -> Int {
        var progress = Date()
        for n in 0..<limit {
            var offset = 0
            while offset < frame.count {
                let written = frame.withUnsafeBytes { send(fd, $0.baseAddress! + offset, frame.count - offset, Int32(MSG_NOSIGNAL)) }
                if written > 0 {
                    offset += written
                    progress = Date()
                } else if Date().timeIntervalSince(progress) > stalledFor {
                    return n
                }
            }
        }
        return limit
    }

    /// Reads and discards until end of stream (true) or nothing came for the time-out, `within` in total.
    func readsToEnd(within seconds: Double) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n == 0 { return true }
            if n < 0, errno != EAGAIN, errno != EINTR { return true }
        }
        return false
    }
}

@Suite("Hostile clients (docs/rules.md §10, §12)")
struct HostileClientTests {
    func frame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        return withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload
    }

    @Test("a client that never reads its replies is cut off once they pass the output bound; the server keeps serving others")
    func nonReadingClientIsCutOff() async throws {
        try await withServer(configure: { transport, _ in
            transport.maximumOutputBytes = 64 << 10
            transport.writeStallTimeout = .milliseconds(300)
            transport.idleTimeout = .seconds(60)
        }) { server in
            let hog = try RawClient(path: server.servicePath)
            // `hello` replies are a few hundred bytes: enough to fill every buffer.
            let sent = hog.writeUntilBlocked(frame(#"{"id":1,"op":"hello"}"#), limit: 200_000)
            #expect(sent < 200_000, "the server kept reading although its replies were not read")
            // The server stopped reading. Still not reading, the client waits past
            // the stall timeout: by then the server has closed, so what the client
            // finally reads ends instead of going on.
            try await Task.sleep(for: .seconds(2))
            #expect(hog.readsToEnd(within: 10))
            let polite = try await server.client()
            #expect(try await polite.call("ping").isEmpty)
            await polite.close()
        }
    }

    @Test("JSON nested past the depth limit, or a huge value inside the frame limit, is refused with bad_request and the connection stays usable")
    func deepAndHugeValues() async throws {
        try await withClient(configure: { transport, _ in transport.frameLimits = FrameLimits(maximumFrameBytes: 1 << 20, json: JSONLimits(maximumDepth: 32)) }) { _, client in
            let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
            try await client.sendRaw(frame(#"{"id":1,"op":"ping","params":{"x":\#(deep)}}"#))
            let huge = String(repeating: "a", count: 900_000)
            try await client.sendRaw(frame(#"{"id":2,"op":"check","params":{"user":"\#(huge)","permission":"documents.view"}}"#))
            var iterator = client.unmatchedReplies.makeAsyncIterator()
            var codes: [ErrorCode] = []
            for _ in 0..<2 {
                guard let reply = await iterator.next(), case .failure(let error) = reply.outcome else { Issue.record("no error reply"); return }
                codes.append(error.code)
            }
            #expect(codes == [.badRequest, .badRequest], "\(codes)")
            #expect(try await client.call("ping").isEmpty)
        }
    }

    @Test("ids of any JSON type but integer or string are refused with bad_request", arguments: [#"1.5"#, #"true"#, #"null"#, #"[1]"#, #"{"a":1}"#])
    func idTypes(_ id: String) async throws {
        try await withClient { _, client in
            try await client.sendRaw(frame(#"{"id":\#(id),"op":"ping"}"#))
            var iterator = client.unmatchedReplies.makeAsyncIterator()
            guard let reply = await iterator.next() else { Issue.record("no reply"); return }
            guard case .failure(let error) = reply.outcome else { Issue.record("accepted id \(id)"); return }
            #expect(error.code == .badRequest)
            #expect(reply.id == nil)
            #expect(try await client.call("ping").isEmpty)
        }
    }
}
