import PortierDomain
import PortierProtocol
@testable import PortierService
import PortierTestSupport
import Testing

/// The operation registry is the one list of operations (issue 15): dispatch,
/// the capability table and `Protocol/` (see ProtocolDocumentationTests) agree
/// with it. Driven through `PortierService.handle`, without a socket.
@Suite("The operation registry")
struct OperationRegistryTests {
    @Test("R-SEC-1: every registered operation needs the capability the transport enforces for it")
    func capabilitiesAgree() {
        for operation in PortierService.registry {
            #expect(operation.capability == Capabilities.required(for: operation.name), "\(operation.name)")
        }
        #expect(Set(PortierService.operations).count == PortierService.registry.count, "a name registered twice")
    }

    @Test("§10: a name missing from the registry is unknown_op; every registered one is dispatched (its own checks answer, never unknown_op)")
    func dispatch() async throws {
        try await withServer { server in
            let context = RequestContext(socket: .support, peer: nil)
            for name in ["user.delete", "check.everything", "", "HELLO", "support.", "outbox"] {
                let reply = await server.service.handle(Request(id: .int(1), op: name, params: [:]), context: context)
                #expect(reply.errorCode == .unknownOp, "\(name)")
            }
            for name in PortierService.operations {
                let reply = await server.service.handle(Request(id: .int(1), op: name, params: ["unexpected": true]), context: context)
                #expect(reply.errorCode != .unknownOp, "\(name): \(reply)")
            }
        }
    }

    @Test("R-SEC-1: support operations are refused on the service socket whatever the peer holds")
    func supportSocketOnly() async throws {
        try await withServer { server in
            let context = RequestContext(socket: .service, peer: nil)
            for operation in PortierService.registry where operation.capability == .support {
                let reply = await server.service.handle(Request(id: .int(1), op: operation.name, params: [:]), context: context)
                #expect(reply.errorCode == .forbidden, "\(operation.name)")
            }
        }
    }
}
