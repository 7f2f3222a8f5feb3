import Foundation
import PortierEmbeddedPostgres
import PortierStorage
import PortierTestSupport
import Testing

@Suite("Embedded PostgreSQL (docs/rules.md §12)")
struct EmbeddedPostgresTests {
    @Test("initdb on first start, reuse later, recover from a stale postmaster.pid")
    func lifecycle() throws {
        let state = "/tmp/pe-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let pg = try EmbeddedPostgres(stateDirectory: state, logger: TestDatabase.logger)
        try pg.start()
        try DatabaseAdmin.createDatabaseIfMissing(maintenanceConninfo: pg.conninfo(database: "postgres"), name: "portier")
        try PostgresConnection(conninfo: pg.conninfo(database: "portier")).execute("CREATE TABLE kept (x int)")
        #expect(try pg.isRunning())
        pg.stop()
        #expect(try !pg.isRunning())

        // A crash leaves postmaster.pid behind, naming a process that is gone.
        let pidFile = pg.dataDirectory + "/postmaster.pid"
        try "999999\n\(pg.dataDirectory)\n0\n5432\n\n\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
        if geteuid() == 0 { _ = chown(pidFile, getpwnam("postgres").pointee.pw_uid, getpwnam("postgres").pointee.pw_gid) }
        try pg.start()
        let rows = try PostgresConnection(conninfo: pg.conninfo(database: "portier")).query("SELECT count(*) AS n FROM kept")
        #expect(rows.first?["n"] == "0")
        // Starting while running reuses the cluster.
        try pg.start()
        pg.stop()
    }
}
