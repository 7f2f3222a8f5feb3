import Foundation
import PortierClient
import PortierDomain
import PortierProtocol
import PortierServer
import PortierTestSupport
import PortierTransport
import Testing

/// R-SEC-1 through real sockets: the out-of-the-box grants, a configured
/// check-only peer, and a client process running under another uid.
@Suite("R-SEC-1: capabilities on the real sockets")
struct CapabilitySocketTests {
    @Test("R-SEC-1: out of the box the server's own uid holds mail on the service socket; the support socket never grants mail")
    func defaults() async throws {
        try await withServer { server in
            let service = try await server.client()
            #expect(try await service.send("outbox.list").isSuccess)
            let support = try await server.client(support: true)
            #expect(try await support.send("outbox.list").errorCode == .forbidden)
            #expect(try await support.send("ping").isSuccess)
            await service.close()
            await support.close()
        }
    }

    @Test("R-SEC-1: a peer granted only check may check but not sign up, invite or read the outbox")
    func checkOnly() async throws {
        let me = getuid()
        try await withServer(configure: { transport, _ in
            transport.service.capabilities = .service(mailerUIDs: [], serverUID: me + 1, rules: [CapabilityPolicy.Rule("uid:\(me)=check")!])
        }) { server in
            let client = try await server.client()
            #expect(try await client.send("signup", params: ["email": "a@b.test"]).errorCode == .forbidden)
            #expect(try await client.send("outbox.list").errorCode == .forbidden)
            let check = try await client.send("check", params: ["user": "usr_1_1", "permission": "documents.view", "organisation": "org_1_1"])
            #expect(check.isSuccess)
            #expect(try await client.call("hello")["server"] == "portierd")
            let users = try server.database.owner("SELECT count(*) AS n FROM users").first!.int64("n")
            #expect(users == 0, "the refused sign-up wrote nothing")
            await client.close()
        }
    }

    @Test("R-SEC-1: a client running as another uid (nobody) is refused the outbox on the service socket", .enabled(if: getuid() == 0))
    func anotherUser() async throws {
        try await withServer(configure: { transport, _ in transport.service.mode = 0o666 }) { server in
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: server.directory)
            let script = #"""
            import json, socket, struct, sys
            s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
            def call(i, op):
                body = json.dumps({"id": i, "op": op}).encode()
                s.sendall(struct.pack(">I", len(body)) + body)
                n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
                reply = json.loads(s.recv(n, socket.MSG_WAITALL))
                return "ok" if reply["ok"] else reply["error"]["code"]
            print(call(1, "ping"), call(2, "outbox.list"))
            """#
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", "nobody", "--", "python3", "-c", script, server.servicePath]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            process.waitUntilExit()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(text.trimmingCharacters(in: .whitespacesAndNewlines) == "ok forbidden", "\(text)")
        }
    }
}
