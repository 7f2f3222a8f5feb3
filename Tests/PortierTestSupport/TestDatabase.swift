import Foundation
import Logging
import PortierStorage

/// A fresh, migrated database for one test, cloned from a template that is
/// migrated once per test process. Needs `PORTIER_TEST_DATABASE_URL` (a
/// superuser connection to a throwaway cluster; `Scripts/test.sh` sets it).
public struct TestDatabase: Sendable {
    /// Owner (superuser) connection string of this test's database: for checks
    /// and for arranging states no operation can reach.
    public let ownerConninfo: String
    public let name: String

    public static let logger = Logger(label: "test")

    /// A database prepared elsewhere (e.g. on a private cluster a test stops and starts).
    public init(ownerConninfo: String, name: String) {
        self.ownerConninfo = ownerConninfo
        self.name = name
    }

    /// An empty database with no migrations applied; returns its connection string.
    public static func createEmpty() async throws -> String {
        conninfo(database: try await TemplateKeeper.shared.emptyDatabase())
    }

    /// The cluster's maintenance connection string.
    public static var clusterConninfo: String {
        guard let url = ProcessInfo.processInfo.environment["PORTIER_TEST_DATABASE_URL"], !url.isEmpty else {
            fatalError("PORTIER_TEST_DATABASE_URL is not set: run the tests with Scripts/test.sh")
        }
        return url
    }

    /// A new database, cloned from the migrated template.
    public static func create() async throws -> TestDatabase {
        let name = try await TemplateKeeper.shared.cloneDatabase()
        return TestDatabase(ownerConninfo: conninfo(database: name), name: name)
    }

    /// The cluster connection string with `dbname` replaced.
    public static func conninfo(database: String) -> String {
        let parts = clusterConninfo.split(separator: " ").filter { !$0.hasPrefix("dbname=") }
        return (parts + ["dbname=\(database)"]).joined(separator: " ")
    }

    /// A pool connecting as the application role, as the server does.
    /// A pool on this database; its connection wait is long, since tests of
    /// queueing must not fail on a busy machine (the timeout has its own tests).
    public func makePool(size: Int = 4) -> ConnectionPool {
        ConnectionPool(configuration: DatabaseConfiguration(conninfo: ownerConninfo, poolSize: size, connectionWaitTimeout: .seconds(60)), logger: Self.logger)
    }

    /// Runs SQL as the owner, outside row-level security.
    @discardableResult
    public func owner(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) throws -> QueryResult {
        try PostgresConnection(conninfo: ownerConninfo).query(sql, parameters)
    }
}

/// Creates the template once, and clones it one at a time (PostgreSQL refuses
/// concurrent clones of one template).
actor TemplateKeeper {
    static let shared = TemplateKeeper()
    private var template: String?
    private var counter = 0

    private let prefix = "t\(getpid())_\(UInt32.random(in: 0...UInt32.max))"

    /// An empty database (no migrations), created after the template so that
    /// the cluster's roles already exist when a test migrates it.
    func emptyDatabase() throws -> String {
        _ = try ensureTemplate()
        counter += 1
        let name = "\(prefix)_empty\(counter)"
        try PostgresConnection(conninfo: TestDatabase.clusterConninfo).execute("CREATE DATABASE \(name)")
        return name
    }

    func cloneDatabase() throws -> String {
        let template = try ensureTemplate()
        counter += 1
        let name = "\(prefix)_\(counter)"
        try PostgresConnection(conninfo: TestDatabase.clusterConninfo).execute("CREATE DATABASE \(name) TEMPLATE \(template)")
        return name
    }

    private func ensureTemplate() throws -> String {
        if let template { return template }
        let name = "\(prefix)_template"
        try PostgresConnection(conninfo: TestDatabase.clusterConninfo).execute("CREATE DATABASE \(name)")
        try Migrator.migrate(conninfo: TestDatabase.conninfo(database: name), logger: TestDatabase.logger)
        template = name
        return name
    }
}
