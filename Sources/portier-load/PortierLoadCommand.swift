import ArgumentParser
import Foundation
import PortierLoad
import PortierStorage

/// `portier-load`: seeds many environments straight into PostgreSQL and drives
/// a running `portierd` with a mixed load, reporting latency per operation.
@main
struct PortierLoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portier-load",
        abstract: "Simulate many environments against Portier: seed data, run a mixed load, report.",
        subcommands: [Seed.self, Run.self]
    )
}

struct Seed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create environments, users, organisations, memberships and partnerships with COPY (needs a superuser connection to a migrated database)."
    )
    @Option(help: "libpq connection string (default: $PORTIER_DATABASE_URL).") var databaseURL: String?
    @Option var environments = LoadShape.full.environments
    @Option var users = LoadShape.full.users
    @Option var organisations = LoadShape.full.organisations
    @Option var memberships = LoadShape.full.memberships
    @Option(help: "Random seed: the same seed gives the same data.") var seed: UInt64 = 1
    @Option(help: "Password of every seeded active user.") var password = "portier-load-password"
    @Option(help: "Where to write the manifest `run` reads.") var manifest = "portier-load.json"

    func run() throws {
        guard let url = databaseURL ?? ProcessInfo.processInfo.environment["PORTIER_DATABASE_URL"] else {
            throw ValidationError("give --database-url or set PORTIER_DATABASE_URL")
        }
        let shape = LoadShape(environments: environments, users: users, organisations: organisations, memberships: memberships, seed: seed)
        let started = ContinuousClock.now
        let written = try Seeder(conninfo: url).seed(shape, password: password) { line in
            print("  \(line)  (\(Self.format(ContinuousClock.now - started)))")
            fflush(nil)
        }
        let data = try JSONEncoder().encode(written)
        try data.write(to: URL(fileURLWithPath: manifest))
        let totals = LoadPlan(written).totals
        print("seeded \(shape.environments) environments, \(totals.users) users, \(totals.organisations) organisations, \(totals.memberships) memberships in \(Self.format(ContinuousClock.now - started)); manifest: \(manifest)")
    }

    static func format(_ d: Duration) -> String {
        String(format: "%.1f s", Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Drive a running portierd with a mixed load.")
    func run() async throws {}
}
