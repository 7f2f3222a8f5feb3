import Foundation
import Logging
import PortierClient
import PortierDomain
import PortierProtocol
import PortierServer
import PortierService
import PortierTestSupport
import PortierTransport
import Testing

/// Issue 16: sockets handed over by systemd, and a reload's new access rules
/// and limits on a running server.
@Suite("Socket activation and reloads")
struct ReloadAndActivationTests {
    @Test("sd_listen_fds: LISTEN_PID must be ours; names map descriptors from 3; without names one is service, two are service and support; anything else is refused")
    func activationVariables() throws {
        #expect(try SocketActivation.parse([:], pid: 42) == nil)
        #expect(try SocketActivation.parse(["LISTEN_PID": "41", "LISTEN_FDS": "1"], pid: 42) == nil)
        #expect(try SocketActivation.parse(["LISTEN_PID": "42", "LISTEN_FDS": "1"], pid: 42) == SocketActivation(service: 3))
        #expect(try SocketActivation.parse(["LISTEN_PID": "42", "LISTEN_FDS": "2"], pid: 42) == SocketActivation(service: 3, support: 4))
        #expect(try SocketActivation.parse(["LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "support:service"], pid: 42)
            == SocketActivation(service: 4, support: 3))
        #expect(try SocketActivation.parse(["LISTEN_PID": "42", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "support"], pid: 42) == SocketActivation(support: 3))
        for bad: [String: String] in [
            ["LISTEN_PID": "42", "LISTEN_FDS": "0"],
            ["LISTEN_PID": "42", "LISTEN_FDS": "3"],
            ["LISTEN_PID": "42", "LISTEN_FDS": "x"],
            ["LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "service"],
            ["LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "service:service"],
            ["LISTEN_PID": "42", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "metrics"],
        ] {
            #expect(throws: ServerError.self, "\(bad)") { _ = try SocketActivation.parse(bad, pid: 42) }
        }
    }

    @Test("R-SEC-1: a reload that takes a capability away closes the connections of the peers that held it; one that keeps it leaves them open")
    func reloadClosesPeersThatLostAccess() async throws {
        let me = getuid()
        try await withServer { server in
            let client = try await server.client()
            #expect(try await client.send("ping").isSuccess)
            let configuration = server.server.configuration
            // Unchanged rules: the connection stays and keeps working.
            server.server.reconfigure(connections: configuration.connectionSettings, service: configuration.service, support: configuration.support)
            #expect(try await client.send("ping").isSuccess)
            // This uid now holds check only (it held check, manage and mail): cut off.
            var service = configuration.service
            service.capabilities = .service(mailerUIDs: [], serverUID: me + 1, rules: [CapabilityPolicy.Rule("uid:\(me)=check")!])
            server.server.reconfigure(connections: configuration.connectionSettings, service: service, support: configuration.support)
            try await waitUntil("the connection closed", timeout: .seconds(10)) { !client.isConnected }
            // A new connection gets the new rules.
            let again = try await server.client()
            #expect(try await again.send("signup", params: ["email": "a@b.test"]).errorCode == .forbidden)
            #expect(try await again.send("ping").isSuccess)
            await again.close()
            await client.close()
        }
    }

    @Test("a reload's connection limits apply to new connections: hello shows the new max_in_flight after the service is reconfigured")
    func reloadLimits() async throws {
        try await withServer { server in
            var settings = server.server.configuration
            settings.maximumInFlightPerConnection = 7
            server.service.reconfigure { $0.maximumInFlightPerConnection = 7 }
            server.server.reconfigure(connections: settings.connectionSettings, service: settings.service, support: settings.support)
            let client = try await server.client()
            let hello = try await client.call("hello")
            #expect(hello["limits"]?.objectValue?["max_in_flight"] == .int(7))
            await client.close()
        }
    }
}
