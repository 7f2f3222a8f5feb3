import Logging
import NIOCore
import NIOEmbedded
import PortierDomain
import PortierProtocol
import PortierTransport
import Testing

/// R-SEC-1: which peer may ask what, decided at admission from SO_PEERCRED
/// (credentials injected here), checked before each request runs.
@Suite("R-SEC-1: capabilities per peer")
struct CapabilityTests {
    static let mailer = PeerCredentials(pid: 1, uid: 1001, gid: 100)
    static let web = PeerCredentials(pid: 2, uid: 1002, gid: 100)
    static let query = PeerCredentials(pid: 3, uid: 1003, gid: 3000)

    @Test("R-SEC-1: defaults: service peers hold check and manage, mail only the mailers and the server's own uid; support peers check, manage, support")
    func defaults() {
        let service = CapabilityPolicy.service(mailerUIDs: [1001], serverUID: 0)
        #expect(service.capabilities(for: Self.web) == [.check, .manage])
        #expect(service.capabilities(for: Self.mailer) == [.check, .manage, .mail])
        #expect(service.capabilities(for: PeerCredentials(pid: 9, uid: 0, gid: 0)).contains(.mail))
        #expect(!service.capabilities(for: Self.web).contains(.support), "the service socket never grants support")
        let support = CapabilityPolicy.support()
        #expect(support.capabilities(for: Self.web) == [.check, .manage, .support])
        let greedy = CapabilityPolicy.support(rules: [CapabilityPolicy.Rule("uid:1002=check,manage,mail,support")!])
        #expect(!greedy.capabilities(for: Self.web).contains(.mail), "the support socket never grants mail")
    }

    @Test("R-SEC-1: rules by uid and by primary gid; a named peer gets only what its rules say; none refuses")
    func rules() throws {
        let policy = CapabilityPolicy.service(mailerUIDs: [], serverUID: 0, rules: [
            try #require(CapabilityPolicy.Rule("gid:3000=check")),
            try #require(CapabilityPolicy.Rule("uid:1002=none")),
        ])
        #expect(policy.capabilities(for: Self.query) == [.check])
        #expect(policy.capabilities(for: Self.web).isEmpty)
        #expect(policy.capabilities(for: Self.mailer) == [.check, .manage])
        let mailOnly = CapabilityPolicy.service(mailerUIDs: [1001], serverUID: 0, rules: [CapabilityPolicy.Rule("uid:1001=none")!])
        #expect(mailOnly.capabilities(for: Self.mailer) == [.mail], "a mailer narrowed to mail only")
        for bad in ["uid=1", "user:1=check", "uid:x=check", "uid:1=write", "gid:1"] {
            #expect(CapabilityPolicy.Rule(bad) == nil, "\(bad)")
        }
        #expect(CapabilityPolicy.Rule("uid:7=check,mail")?.description == "uid:7=check,mail")
    }

    @Test("R-SEC-1: every operation needs exactly one capability")
    func required() {
        for op in ["check", "check.bulk", "lookup.users", "lookup.organisations", "hello", "ping", "watch", "watch.cancel"] {
            #expect(Capabilities.required(for: op) == .check, "\(op)")
        }
        #expect(Capabilities.required(for: "outbox.list") == .mail)
        #expect(Capabilities.required(for: "outbox.ack") == .mail)
        #expect(Capabilities.required(for: "support.appoint_admin") == .support)
        for op in ["signup", "user.activate", "user.authenticate", "user.invite", "member.add", "user.email.verify", "no.such.op"] {
            #expect(Capabilities.required(for: op) == .manage, "\(op)")
        }
    }

    func replies(peer: PeerCredentials, admission: SocketAdmission, ops: [String]) throws -> [ErrorCode?] {
        let handler = ConnectionHandler(
            responder: OfflineResponder(), admission: admission, settings: ConnectionSettings(),
            logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }),
            identifyPeer: { $0.eventLoop.makeSucceededFuture(peer) }
        )
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/x")).wait()
        var input = ByteBuffer()
        for (i, op) in ops.enumerated() { input.writeFrame { $0.writeString(#"{"id":\#(i),"op":"\#(op)"}"#) } }
        try channel.writeInbound(input)
        channel.embeddedEventLoop.run()
        var out = ByteBuffer()
        while var piece = try channel.readOutbound(as: ByteBuffer.self) { out.writeBuffer(&piece) }
        var codes: [ErrorCode?] = []
        while let payload = try FrameDecoder.nextFrame(from: &out, maximumFrameBytes: .max) {
            let reply = try Reply.decode(try payload.withUnsafeReadableBytes { try JSONParser.parse($0) })
            codes.append(reply.errorCodeForTest)
        }
        return codes
    }

    @Test("R-SEC-1: a request outside the peer's capabilities is forbidden before anything runs; the connection stays usable")
    func refusedRequests() throws {
        let service = SocketAdmission(socket: .service, maximumConnections: 9, policy: .service(mailerUIDs: [1001], serverUID: 0, rules: [
            CapabilityPolicy.Rule("gid:3000=check")!,
        ]))
        // The offline responder answers what it is given: unavailable for operations it cannot do.
        #expect(try replies(peer: Self.query, admission: service, ops: ["ping", "user.invite", "outbox.list", "check"])
                == [nil, .forbidden, .forbidden, .unavailable])
        #expect(try replies(peer: Self.web, admission: service, ops: ["user.invite", "outbox.list", "support.appoint_admin"])
                == [.unavailable, .forbidden, .forbidden])
        #expect(try replies(peer: Self.mailer, admission: service, ops: ["outbox.list"]) == [.unavailable])
        let support = SocketAdmission(socket: .support, maximumConnections: 9)
        #expect(try replies(peer: Self.web, admission: support, ops: ["outbox.ack", "support.appoint_admin", "ping"])
                == [.forbidden, .unavailable, nil])
    }

    @Test("R-SEC-1: a peer that holds nothing on a socket is refused at admission")
    func nothingHeld() throws {
        let admission = SocketAdmission(socket: .service, maximumConnections: 9, policy: .service(mailerUIDs: [], serverUID: 0, rules: [
            CapabilityPolicy.Rule("uid:1002=none")!,
        ]))
        #expect(try replies(peer: Self.web, admission: admission, ops: ["ping"]) == [.forbidden])
    }
}
