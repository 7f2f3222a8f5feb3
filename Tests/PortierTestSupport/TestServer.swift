import Foundation
import Logging
import NIOCore
import PortierClient
import PortierProtocol
import PortierServer
import PortierService
import PortierStorage

/// A real `PortierServer` on real Unix sockets over a fresh test database.
public final class TestServer: Sendable {
    public let database: TestDatabase
    public let directory: String
    public let server: PortierServer
    public let service: PortierService
    let pool: ConnectionPool

    public var servicePath: String { server.configuration.service.path }
    public var supportPath: String { server.configuration.support.path }

    init(database: TestDatabase, directory: String, server: PortierServer, service: PortierService, pool: ConnectionPool) {
        self.database = database
        self.directory = directory
        self.server = server
        self.service = service
        self.pool = pool
    }

    /// Starts a server; `configure` may change transport and service settings.
    public static func start(
        database: TestDatabase? = nil,
        directory: String? = nil,
        logger: Logger = TestDatabase.logger,
        configure: (inout ServerConfiguration, inout ServiceConfiguration) -> Void = { _, _ in },
        configureDatabase: (inout DatabaseConfiguration) -> Void = { _ in }
    ) async throws -> TestServer {
        let database = if let database { database } else { try await TestDatabase.create() }
        // Short paths: a Unix socket path must fit in 108 bytes.
        let directory = directory ?? "/tmp/pt-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var transport = ServerConfiguration.standard(stateDirectory: directory)
        var settings = ServiceConfiguration(passwordHashing: .testing)
        // Tests repeat flows to the same addresses (a hundred proposals to one
        // administrator in the race tests); the caps' own tests set them back.
        settings.messagesPerRecipientPerHour = 10_000
        settings.credentialRefusalDelay = .zero  // LoginProtectionTests sets it where it is the subject
        settings.passwordForgotFloor = .zero  // PasswordRecoveryTests too
        configure(&transport, &settings)
        settings.frameLimits = transport.frameLimits
        settings.maximumInFlightPerConnection = transport.maximumInFlightPerConnection
        var databaseConfiguration = DatabaseConfiguration(conninfo: database.ownerConninfo, poolSize: 4)
        configureDatabase(&databaseConfiguration)
        let pool = ConnectionPool(configuration: databaseConfiguration, logger: logger)
        let service = PortierService(pool: pool, configuration: settings, logger: logger)
        service.startSynchronisation()
        let server = PortierServer(configuration: transport, service: service, logger: logger)
        try await server.start()
        return TestServer(database: database, directory: directory, server: server, service: service, pool: pool)
    }

    public func client(support: Bool = false) async throws -> PortierClient {
        try await PortierClient.connect(path: support ? supportPath : servicePath)
    }

    public func stop() async {
        await stopKeepingFiles()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops as portierd does at SIGTERM (drain, service, pool) and leaves the
    /// folder and database for a next server (a restart).
    public func stopKeepingFiles() async {
        await server.stop()
        await service.shutdown()
        await pool.shutdown()
    }
}

/// Runs `body` with a started server and always stops it.
@discardableResult
public func withServer<R>(
    configure: (inout ServerConfiguration, inout ServiceConfiguration) -> Void = { _, _ in },
    configureDatabase: (inout DatabaseConfiguration) -> Void = { _ in },
    _ body: (TestServer) async throws -> R
) async throws -> R {
    let server = try await TestServer.start(configure: configure, configureDatabase: configureDatabase)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

/// Runs `body` with a started server and one connected client.
@discardableResult
public func withClient<R>(
    configure: (inout ServerConfiguration, inout ServiceConfiguration) -> Void = { _, _ in },
    _ body: (TestServer, PortierClient) async throws -> R
) async throws -> R {
    try await withServer(configure: configure) { server in
        let client = try await server.client()
        defer { Task { await client.close() } }
        return try await body(server, client)
    }
}

/// A wait in a test that did not end in time.
public struct WaitTimedOut: Error, CustomStringConvertible {
    public let description: String
}

/// Waits until `condition` holds, checking every 2 ms; throws after `timeout`
/// instead of hanging the whole suite (what it waits for may have failed).
public func waitUntil(_ what: String, timeout: Duration = .seconds(30), _ condition: () -> Bool) async throws {
    let start = ContinuousClock.now
    while !condition() {
        if ContinuousClock.now - start > timeout { throw WaitTimedOut(description: "waited \(timeout) for: \(what)") }
        try await Task.sleep(for: .milliseconds(2))
    }
}
