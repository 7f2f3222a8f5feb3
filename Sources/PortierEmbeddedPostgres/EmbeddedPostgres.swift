import Foundation
import Logging

/// A private PostgreSQL cluster under `<state-dir>/pg`, owned by `portierd` (docs/rules.md §12).
///
/// First start runs `initdb`; later starts reuse the data. The cluster listens on
/// a Unix socket inside its data folder only (no TCP). PostgreSQL refuses to run
/// as root: when we are root, every PostgreSQL program runs as the `postgres`
/// system user (created if missing), who is given the data folder.
public struct EmbeddedPostgres: Sendable {
    public let dataDirectory: String
    public let binDirectory: String
    private let logger: Logger

    /// The port number only names the socket file; nothing listens on TCP.
    public static let port = 5432
    public static let superuser = "postgres"

    public init(stateDirectory: String, logger: Logger) throws {
        self.dataDirectory = URL(fileURLWithPath: stateDirectory).appendingPathComponent("pg").path
        self.binDirectory = try Self.findBinDirectory()
        self.logger = logger
    }

    /// A libpq connection string for `database` on this cluster.
    public func conninfo(database: String) -> String {
        "host=\(dataDirectory) port=\(Self.port) user=\(Self.superuser) dbname=\(database)"
    }

    private var runsAsRoot: Bool { geteuid() == 0 }

    /// Initialises (once) and starts the cluster; returns when it accepts connections.
    /// A cluster already running (a server's, or one left by a crashed server) is
    /// reused: returns false then, true when this call started it.
    @discardableResult
    public func start() throws -> Bool {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        if runsAsRoot { try prepareForPostgresUser() }
        chmod(dataDirectory, 0o700)
        if !FileManager.default.fileExists(atPath: dataDirectory + "/PG_VERSION") {
            logger.info("initialising embedded PostgreSQL", metadata: ["data": "\(dataDirectory)"])
            try run("initdb", ["-D", dataDirectory, "-U", Self.superuser, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"])
        }
        if try isRunning() {
            logger.info("embedded PostgreSQL already running; reusing it", metadata: ["data": "\(dataDirectory)"])
            return false
        }
        // A crashed postmaster leaves postmaster.pid behind; if its process is a
        // zombie not yet reaped, PostgreSQL would take it for alive and refuse to start.
        let pidFile = dataDirectory + "/postmaster.pid"
        if FileManager.default.fileExists(atPath: pidFile) {
            logger.warning("removing the stale postmaster.pid of a PostgreSQL that is gone", metadata: ["data": "\(dataDirectory)"])
            try? FileManager.default.removeItem(atPath: pidFile)
        }
        // No JIT: its compilation costs more than it saves on Portier's short queries, and its
        // code pages would need W+X memory (MemoryDenyWriteExecute in Deploy/systemd).
        let options = "-c listen_addresses='' -k \(dataDirectory) -p \(Self.port) -c unix_socket_permissions=0700 -c jit=off"
        // Backends of a crashed postmaster hold its shared memory for a moment
        // after it died; PostgreSQL then refuses to start: try again shortly.
        for attempt in 1...5 {
            do {
                try run("pg_ctl", ["-D", dataDirectory, "-l", dataDirectory + "/server.log", "-w", "-t", "60", "-o", options, "start"])
                break
            } catch where attempt < 5 {
                logger.warning("embedded PostgreSQL did not start; retrying", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                Thread.sleep(forTimeInterval: 1)
            }
        }
        logger.info("embedded PostgreSQL started", metadata: ["data": "\(dataDirectory)"])
        return true
    }

    /// The pid in postmaster.pid, if that process exists and is not a zombie.
    private func livePostmasterPID() -> Int32? {
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
              let first = text.split(separator: "\n").first, let pid = Int32(first), pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return nil }
        // /proc/<pid>/stat: "pid (comm) S …"; Z is a zombie.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" {
            return nil
        }
        return pid
    }

    /// Stops the cluster (fast mode: active transactions roll back).
    public func stop() {
        do {
            try run("pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "-t", "60", "stop"])
            logger.info("embedded PostgreSQL stopped")
        } catch {
            logger.error("could not stop embedded PostgreSQL", metadata: ["error": "\(error)"])
        }
    }

    public func isRunning() throws -> Bool {
        // pg_ctl status: 0 running, 3 not running, 4 no data folder. It counts a
        // zombie postmaster as running, hence the check of the process first.
        guard livePostmasterPID() != nil else { return false }
        return (try? run("pg_ctl", ["-D", dataDirectory, "status"], quiet: true)) != nil
    }

    private func prepareForPostgresUser() throws {
        if getpwnam(Self.superuser) == nil {
            logger.info("creating the postgres system user")
            try Self.exec("/usr/sbin/useradd", ["--system", "--user-group", "--home-dir", "/var/lib/postgresql", "--shell", "/bin/bash", Self.superuser])
        }
        try Self.exec("/bin/chown", ["-R", "\(Self.superuser):", dataDirectory])
        // The postgres user must be able to reach the data folder through its parents.
        var parent = URL(fileURLWithPath: dataDirectory).deletingLastPathComponent()
        while parent.path != "/" {
            var st = stat()
            if stat(parent.path, &st) == 0, st.st_mode & 0o001 == 0 { chmod(parent.path, st.st_mode & 0o7777 | 0o711) }
            parent = parent.deletingLastPathComponent()
        }
    }

    @discardableResult
    private func run(_ program: String, _ arguments: [String], quiet: Bool = false) throws -> String {
        let path = binDirectory + "/" + program
        if runsAsRoot {
            return try Self.exec("/usr/sbin/runuser", ["-u", Self.superuser, "--", path] + arguments, quiet: quiet)
        }
        return try Self.exec(path, arguments, quiet: quiet)
    }

    /// Runs a program to completion; throws with its output when it fails.
    @discardableResult
    static func exec(_ path: String, _ arguments: [String], quiet: Bool = false) throws -> String {
        let outcome = try Spawn.run(path, arguments)
        guard outcome.status == 0 else {
            let name = URL(fileURLWithPath: path).lastPathComponent
            throw EmbeddedPostgresError(message: "\(name) \(arguments.joined(separator: " ")) failed (\(outcome.status))\(quiet ? "" : ": " + outcome.output)")
        }
        return outcome.output
    }

    /// `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
    static func findBinDirectory() throws -> String {
        if let env = ProcessInfo.processInfo.environment["PORTIER_PG_BINDIR"], !env.isEmpty { return env }
        for pgConfig in ["/usr/bin/pg_config", "/usr/local/bin/pg_config"] where FileManager.default.isExecutableFile(atPath: pgConfig) {
            if let dir = try? exec(pgConfig, ["--bindir"]).trimmingCharacters(in: .whitespacesAndNewlines),
               FileManager.default.isExecutableFile(atPath: dir + "/initdb") {
                return dir
            }
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap(Int.init).sorted(by: >)
        for v in versions where FileManager.default.isExecutableFile(atPath: "\(root)/\(v)/bin/initdb") {
            return "\(root)/\(v)/bin"
        }
        throw EmbeddedPostgresError(message: "PostgreSQL server binaries not found (install postgresql, or set PORTIER_PG_BINDIR)")
    }
}

/// Why the embedded cluster could not be set up.
public struct EmbeddedPostgresError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}
