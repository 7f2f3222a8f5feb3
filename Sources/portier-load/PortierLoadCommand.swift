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
        discussion: """
            A first run, against portierd with its embedded PostgreSQL (portierd --print-database-url prints its connection string):
              portier-load seed --database-url "$(portierd --print-database-url)"
              portier-load run --seconds 10
            Exit codes: 0 done; 1 verify found missing mutations; 3 run --strict saw a wrong answer, a missed change or an error; 64 a usage or file mistake.
            """,
        version: "0.1.0",
        subcommands: [Seed.self, Warm.self, Run.self, Verify.self]
    )
}

/// Preset sizes for `seed`.
enum ShapeName: String, ExpressibleByArgument, CaseIterable {
    case small, full
    var shape: LoadShape { self == .small ? .small : .full }
}

/// Reads a file the user named, or fails with what to do instead of a Foundation error dump.
func readUserFile(_ path: String, _ what: String, hint: String) throws -> Data {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ValidationError("cannot read \(what) \(path): no such file, or not readable. \(hint)")
    }
    return data
}

/// Decodes the manifest `seed` wrote.
func loadManifest(_ path: String) throws -> LoadPlan {
    let data = try readUserFile(path, "the manifest", hint: "Run `portier-load seed` first, or give --manifest.")
    do {
        return LoadPlan(try JSONDecoder().decode(LoadManifest.self, from: data))
    } catch {
        throw ValidationError("\(path) is not a manifest written by `portier-load seed`: \(error)")
    }
}

struct Seed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create environments, users, organisations, memberships and partnerships with COPY (needs a superuser connection to a migrated database)."
    )
    @Option(help: "libpq connection string (default: $PORTIER_DATABASE_URL; for portierd's embedded cluster: portierd --print-database-url).") var databaseURL: String?
    @Option(help: "Preset sizes: small (50 environments, 5,000 users, 500 organisations, 15,000 memberships; seconds) or full (10,000 / 1,000,000 / 100,000 / 3,000,000; the issue's target scale, minutes). The options below override one size each.")
    var shape: ShapeName = .small
    @Option(help: "Environments (default: the shape's).") var environments: Int?
    @Option(help: "Users over all environments, sized by a Zipf law (default: the shape's).") var users: Int?
    @Option(help: "Organisations over all environments (default: the shape's).") var organisations: Int?
    @Option(help: "Memberships over all organisations (default: the shape's).") var memberships: Int?
    @Option(help: "Random seed: the same seed gives the same data.") var seed: UInt64 = 1
    @Option(help: "Password of every seeded active user.") var password = "portier-load-password"
    @Option(help: "Where to write the manifest `run` reads.") var manifest = "portier-load.json"

    func run() throws {
        guard let url = databaseURL ?? ProcessInfo.processInfo.environment["PORTIER_DATABASE_URL"] else {
            throw ValidationError("give --database-url or set PORTIER_DATABASE_URL")
        }
        let preset = self.shape.shape
        let shape = LoadShape(environments: environments ?? preset.environments, users: users ?? preset.users,
                              organisations: organisations ?? preset.organisations, memberships: memberships ?? preset.memberships, seed: seed)
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
    static let configuration = CommandConfiguration(
        abstract: "Drive a running portierd with a mixed load over the seeded data; verify what can be known; report."
    )
    @Option(help: "The service socket (default: $PORTIER_SOCKET, else ./.portier/portier.sock); repeat it for several instances on one database (flows then verify on another instance, and convergence without tokens is measured).") var socket: [String] = []
    @Option(help: "A socket on which this process holds the `mail` capability (portierd's service socket, run as its uid or a --mailer-uid): lets invitation flows read activation tokens and activate.") var mailSocket: String?
    @Option(help: "The manifest written by `seed`.") var manifest = "portier-load.json"
    @Option(help: "Connections.") var connections = 4
    @Option(help: "Requests in flight per connection.") var depth = 16
    @Option(help: "Seconds to run (the run stops by itself).") var seconds = 60.0
    @Option(help: "Stop after this many work items instead, if sooner.") var requests: Int?
    @Option(help: "Share of mutation flows (invites, activations, member add/remove, role changes, partner flows).") var mutations = 0.05
    @Option(help: "Zipf exponent of the choice of environments.") var zipf = 1.0
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(help: "Write a latency-percentile plot (SVG) here.") var plot: String?
    @Option(help: "Watches of every environment to hold during the run, spread over the sockets: each must see every change the run commits, in order, once; the report gives the event delay.") var watchers = 0
    @Option(help: "Watches per watcher connection (at most the server's max_watches).") var watchesPerConnection = 8
    @Flag(help: "Exit non-zero when any answer contradicted what the run knew, a watcher missed a change, or a request failed (refusals the run provokes on purpose are not failures).") var strict = false
    @Option(help: "Write every acknowledged mutation here (one line each), for `verify` after a crash.") var acknowledged: String?

    func run() async throws {
        let plan = try loadManifest(manifest)
        let sockets = socket.isEmpty ? [ProcessInfo.processInfo.environment["PORTIER_SOCKET"] ?? ".portier/portier.sock"] : socket
        var options = LoadOptions(sockets: sockets)
        options.mailSocket = mailSocket
        options.connections = connections
        options.depth = depth
        options.duration = .milliseconds(Int64(seconds * 1000))
        options.requests = requests
        options.mutationShare = mutations
        options.zipfExponent = zipf
        options.recordAcknowledged = acknowledged != nil
        options.watchers = watchers
        options.watchesPerConnection = watchesPerConnection
        let live = !json && isatty(STDERR_FILENO) != 0
        let results = try await LoadRunner(plan: plan, options: options).run { line in
            // The live line goes to standard error, so standard output stays the report.
            FileHandle.standardError.write(Data(((live ? "\r" : "") + line + (live ? "" : "\n")).utf8))
        }
        if live { FileHandle.standardError.write(Data("\n".utf8)) }
        let report = LoadReport(results)
        print(json ? report.json : report.table)
        if let plot {
            try report.svg.write(toFile: plot, atomically: true, encoding: .utf8)
            FileHandle.standardError.write(Data("portier-load: latency plot written to \(URL(fileURLWithPath: plot).standardizedFileURL.path)\n".utf8))
        }
        if let acknowledged {
            try results.acknowledged.map { $0.line + "\n" }.joined().write(toFile: acknowledged, atomically: true, encoding: .utf8)
        }
        let watchFailures = results.watch.map { $0.missed + $0.outOfOrder + $0.ended } ?? 0
        if strict && (results.mismatches > 0 || watchFailures > 0 || results.errorCount > 0) { throw ExitCode(3) }
    }
}

struct Warm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the first check of cold environments, then load every environment (for resident memory at full scale)."
    )
    @Option(help: "The service socket.") var socket: String
    @Option(help: "The manifest written by `seed`.") var manifest = "portier-load.json"
    @Option(help: "Cold environments to time, one at a time, spread over all sizes.") var sample = 200

    func run() async throws {
        let plan = try loadManifest(manifest)
        let r = try await ColdStart(plan: plan, socket: socket).run(sample: sample)
        print("cold first check (\(r.cold.totalCount) environments, one at a time): p50 \(r.cold.valueAtPercentile(50)) µs, p99 \(r.cold.valueAtPercentile(99)) µs, max \(r.cold.max) µs; largest sampled (\(r.largest.users) users): \(r.largest.microseconds) µs")
        print("index ready after the first check: p50 \(r.ready.valueAtPercentile(50)) µs, p99 \(r.ready.valueAtPercentile(99)) µs, max \(r.ready.max) µs; largest sampled: \(r.largest.readyMicroseconds) µs")
        print("loaded the other \(r.loaded - Int(r.cold.totalCount)) environments in \(String(format: "%.1f", r.loadSeconds)) s")
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that every mutation a run saw acknowledged is in the database (after a crash or an outage)."
    )
    @Option(help: "libpq connection string (default: $PORTIER_DATABASE_URL).") var databaseURL: String?
    @Option(help: "The file `run --acknowledged` wrote.") var acknowledged: String

    func run() throws {
        guard let url = databaseURL ?? ProcessInfo.processInfo.environment["PORTIER_DATABASE_URL"] else {
            throw ValidationError("give --database-url or set PORTIER_DATABASE_URL")
        }
        let text = String(decoding: try readUserFile(acknowledged, "the acknowledged mutations", hint: "Give the file `run --acknowledged` wrote."), as: UTF8.self)
        let entries = text.split(separator: "\n").compactMap(AcknowledgedMutation.init(line:))
        let outcome = try AcknowledgedCheck.verify(entries, conninfo: url)
        print("\(outcome.mutations) acknowledged mutations: \(outcome.committed) committed (revision reached); \(outcome.invitations) invitations: \(outcome.invitationsComplete) with user, audit event and activation message")
        for line in outcome.missing.prefix(20) { print("MISSING: \(line)") }
        if !outcome.ok { throw ExitCode(1) }
    }
}
