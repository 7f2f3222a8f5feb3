import PortierStorage
import PortierTestSupport
import Testing

@Suite("Migrations")
struct MigrationTests {
    @Test("migrations apply once: a second run applies nothing and changes nothing")
    func idempotent() async throws {
        let db = try await TestDatabase.create()
        let tablesBefore = try db.owner("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'").first!.int64("n")
        let applied = try Migrator.migrate(conninfo: db.ownerConninfo, logger: TestDatabase.logger)
        #expect(applied.isEmpty)
        #expect(try Migrator.appliedVersions(conninfo: db.ownerConninfo) == Migrations.all.map(\.version))
        let tablesAfter = try db.owner("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'").first!.int64("n")
        #expect(tablesBefore == tablesAfter)
    }

    @Test("a fresh database gets every migration, recorded with its name")
    func fresh() async throws {
        let conninfo = try await TestDatabase.createEmpty()
        let applied = try Migrator.migrate(conninfo: conninfo, logger: TestDatabase.logger)
        #expect(applied == Migrations.all.map(\.version))
        let rows = try PostgresConnection(conninfo: conninfo).query("SELECT version, name FROM schema_migrations ORDER BY version").rows
        #expect(rows.map { $0["name"] } == Migrations.all.map(\.name))
    }

    @Test("R-ENV-1: every table except the documented global ones is a tenant table under forced RLS")
    func tenantTables() async throws {
        let db = try await TestDatabase.create()
        let rows = try db.owner("""
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   (SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                    WHERE i.indrelid = c.oid AND i.indisprimary) AS first_key
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r'
            """).rows
        #expect(rows.count > 10)
        for row in rows {
            let name = try row.string("relname")
            if Schema.globalTables.contains(name) { continue }
            #expect(row["first_key"] == "environment_id", "\(name) must have environment_id first in its primary key")
            #expect(try row.bool("relrowsecurity") && row.bool("relforcerowsecurity"), "\(name) must force row-level security")
        }
    }

    @Test("Citus (Deploy/citus): every foreign key between tenant tables starts with environment_id on both sides, so distributed tables stay co-located")
    func foreignKeysCarryTheEnvironment() async throws {
        let db = try await TestDatabase.create()
        let rows = try db.owner("""
            SELECT c.conname, src.relname AS source, dst.relname AS target,
                   (SELECT attname FROM pg_attribute WHERE attrelid = c.conrelid AND attnum = c.conkey[1]) AS source_first,
                   (SELECT attname FROM pg_attribute WHERE attrelid = c.confrelid AND attnum = c.confkey[1]) AS target_first
            FROM pg_constraint c
            JOIN pg_class src ON src.oid = c.conrelid
            JOIN pg_class dst ON dst.oid = c.confrelid
            JOIN pg_namespace n ON n.oid = src.relnamespace
            WHERE c.contype = 'f' AND n.nspname = 'public'
            """).rows
        #expect(rows.count >= 8)
        for row in rows {
            let source = try row.string("source"), target = try row.string("target")
            #expect(!Schema.globalTables.contains(source) && !Schema.globalTables.contains(target),
                    "\(row["conname"] ?? ""): foreign keys between global and tenant tables cannot be distributed")
            #expect(row["source_first"] == "environment_id" && row["target_first"] == "environment_id",
                    "\(row["conname"] ?? ""): \(source) → \(target) must start with environment_id on both sides")
        }
    }
}
