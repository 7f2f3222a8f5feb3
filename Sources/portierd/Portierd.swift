import ArgumentParser
import Foundation
import Logging
import PortierDomain
import PortierEmbeddedPostgres
import PortierServer
import PortierService
import PortierStorage
import PortierTransport
import ServiceLifecycle
import UnixSignals

/// `portierd`: the Portier server.
@main
struct Portierd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portierd",
        abstract: "Portier: users, organisations and permissions over a Unix socket.",
        discussion: PortierdExit.helpText,
        version: PortierVersion.current,
        subcommands: [Run.self, Migrate.self],
        defaultSubcommand: Run.self
    )

    /// Parses the command line after adding the configuration file's and the
    /// environment's settings in front of it (see `ConfigurationSources`).
    static func main() async {
        // `portierd --help`: what `portierd` with no subcommand does is `run`, so its options are the help.
        if [["--help"], ["-h"], ["help"]].contains(Array(CommandLine.arguments.dropFirst())) {
            print(helpMessage())
            print("portierd with no subcommand runs `run`:\n")
            print(helpMessage(for: Run.self))
            Foundation.exit(0)
        }
        do {
            let arguments = try ConfigurationSources.arguments(Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment)
            await main(arguments)
        } catch {
            // Before any option is read: the configuration file (or --config) is wrong.
            LogLevelControl.bootstrap(format: .text, level: .info)
            Logger(label: "portierd").critical("cannot start: \(error)", metadata: ["setting": "--config / PORTIER_CONFIG"])
            Foundation.exit(PortierdExit.config.rawValue)
        }
    }
}

/// Options shared by every subcommand.
struct CommonOptions: ParsableArguments {
    @Option(help: "Folder for sockets and the embedded database.")
    var stateDir: String = "./.portier"

    @Option(help: "libpq connection string or URI of an existing PostgreSQL (PG* variables apply). Without it, portierd runs its own cluster under --state-dir. Also PORTIER_DATABASE_URL.")
    var databaseURL: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (a SIGHUP reload applies a new one).")
    var logLevel: Logger.Level = .info

    @Option(help: "Log format: text, or json (one object per line: time, level, label, message, source, metadata).")
    var logFormat: LogFormat = .text

    var resolvedDatabaseURL: String? {
        databaseURL ?? ProcessInfo.processInfo.environment["PORTIER_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    var absoluteStateDir: String { URL(fileURLWithPath: stateDir).standardizedFileURL.path }

    func makeLogger() -> Logger {
        LogLevelControl.bootstrap(format: logFormat, level: logLevel)
        return Logger(label: "portierd")
    }

    /// The setting that names the database, for error messages.
    var databaseSetting: String {
        databaseURL != nil ? "--database-url" : resolvedDatabaseURL != nil ? "PORTIER_DATABASE_URL" : "--state-dir (the embedded PostgreSQL)"
    }

    /// The owner connection string, starting the embedded cluster when no URL is
    /// given. `startedHere`: this call started the cluster (not one already running).
    func database(logger: Logger) throws(StartupFailure) -> (conninfo: String, embedded: EmbeddedPostgres?, startedHere: Bool) {
        if let url = resolvedDatabaseURL { return (url, nil, false) }
        try makeDirectory(absoluteStateDir, setting: "--state-dir")
        var started: EmbeddedPostgres?
        do {
            let embedded = try EmbeddedPostgres(stateDirectory: absoluteStateDir, logger: logger)
            let startedHere = try embedded.start()
            if startedHere { started = embedded }
            try DatabaseAdmin.createDatabaseIfMissing(maintenanceConninfo: embedded.conninfo(database: "postgres"), name: "portier")
            return (embedded.conninfo(database: "portier"), embedded, startedHere)
        } catch {
            started?.stop()  // never leave behind a cluster this start brought up
            throw StartupFailure(.unavailable, "the embedded PostgreSQL did not start: \(error)", setting: databaseSetting)
        }
    }

    /// The embedded cluster's connection string (whether it runs or not).
    func embeddedDatabaseURL() -> String {
        "host=\(URL(fileURLWithPath: absoluteStateDir).appendingPathComponent("pg").path) port=\(EmbeddedPostgres.port) user=\(EmbeddedPostgres.superuser) dbname=portier"
    }

    /// Applies pending migrations; a failure names the database setting.
    func migrate(_ conninfo: String, logger: Logger) throws(StartupFailure) -> [Int] {
        do {
            return try Migrator.migrate(conninfo: conninfo, logger: logger)
        } catch {
            throw StartupFailure(.unavailable, "cannot migrate the database: \(error)", setting: databaseSetting)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `portierd migrate`: apply pending migrations and exit.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations and exit.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let logger = common.makeLogger()
        try StartupFailure.exitOnFailure(logger) {
            try requirePublicSuffixList()
            let (conninfo, embedded, startedHere) = try common.database(logger: logger)
            // A running server's cluster is left running; one started for this is stopped.
            defer { if startedHere { embedded?.stop() } }
            let applied = try common.migrate(conninfo, logger: logger)
            logger.info("migrations up to date", metadata: ["applied": "\(applied)"])
        }
    }
}

/// `portierd run` (the default): serve until SIGTERM or SIGINT.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the default).", discussion: PortierdExit.helpText)

    @OptionGroup var common: CommonOptions

    @Option(help: "Database connections (and database threads).")
    var poolSize: Int = DatabaseConfiguration.defaultPoolSize

    @Option(help: "Largest frame accepted, in bytes.")
    var maxFrameBytes: Int = 1 << 20

    @Option(help: "Requests in flight per connection before reading pauses.")
    var maxInFlight: Int = 128

    @Option(help: "Connections open at once on the service socket.")
    var maxConnections: Int = 1024

    @Option(help: "Connections open at once on the support socket (counted apart: a full service socket never locks support out).")
    var maxSupportConnections: Int = 64

    @Option(help: "Milliseconds a statement of a request may run (PostgreSQL statement_timeout; not for migrations). Past it: unavailable.")
    var statementTimeoutMs: Int64 = 10_000

    @Option(help: "Milliseconds a request may wait for a row lock (PostgreSQL lock_timeout). Past it: unavailable.")
    var lockTimeoutMs: Int64 = 5_000

    @Option(help: "Milliseconds a request may wait for a free database connection. Past it: unavailable, logged.")
    var connectionWaitTimeoutMs: Int64 = 5_000

    @Option(help: "Seconds a connection may stay idle.")
    var idleTimeout: Int64 = 300

    @Option(help: "Seconds a started frame may take to arrive in full.")
    var partialFrameTimeout: Int64 = 10

    @Option(help: "Unread replies of one client, in bytes, past which the server stops reading its requests (and at four times which it closes the connection).")
    var maxOutputBytes: Int = 1 << 20

    @Option(help: "Event bytes one watch may have waiting for a client that does not read them; past it the watch ends with overloaded.")
    var maxWatchBacklogBytes: Int = 1 << 20

    @Option(help: "Watches one connection may hold (reported by hello).")
    var maxWatchesPerConnection: Int = 8

    @Option(help: "Watches this server holds in all; past it, watch answers overloaded.")
    var maxWatches: Int = 10_000

    @Option(help: "Seconds of permission events kept for watches to resume from (older: resync_required).")
    var watchHistory: Int64 = 24 * 3600

    @Option(help: "Seconds a client may leave its replies unread past --max-output-bytes before it is cut off.")
    var writeStallTimeout: Int64 = 10

    @Option(help: "Requests slower than this many milliseconds are logged (warning), with id, op, environment and duration.")
    var slowRequestMs: Int64 = 500

    @Option(help: "File mode of the service socket (octal).")
    var serviceSocketMode: String = "660"

    @Option(help: "File mode of the support socket (octal).")
    var supportSocketMode: String = "600"

    @Option(help: "Group of the service socket file (name or gid); default: the server's group.")
    var serviceSocketGroup: String?

    @Option(help: "Group of the support socket file (name or gid); default: the server's group.")
    var supportSocketGroup: String?

    @Option(help: "Only these peer uids may use the service socket (repeatable).")
    var serviceAllowUID: [UInt32] = []

    @Option(help: "Only these peer uids may use the support socket (repeatable).")
    var supportAllowUID: [UInt32] = []

    @Option(help: "A uid of the mailer: on the service socket it also holds `mail` (outbox.*, the clear tokens). The server's own uid always does. Repeatable.")
    var mailerUID: [UInt32] = []

    @Option(help: "Capabilities of a peer on the service socket, by uid or primary gid: `uid:1001=check` or `gid:2000=check,manage` (check, manage, mail; `none` refuses it). Peers no rule names hold check,manage. Repeatable.")
    var serviceGrant: [String] = []

    @Option(help: "Capabilities of a peer on the support socket: `uid:N=…` or `gid:N=…` (check, manage, support). Peers no rule names hold all three. Repeatable.")
    var supportGrant: [String] = []

    @Option(help: "Lifetime of activation and verification tokens, in seconds.")
    var tokenLifetime: Int64 = 7 * 24 * 3600

    @Option(help: "Lifetime of password reset tokens, in seconds (R-USR-14).")
    var passwordResetLifetime: Int64 = 3600

    @Option(help: "Invitations one environment may send per hour (R-USR-13).")
    var invitationsPerHour: Int = 200

    @Option(help: "Failed logins per address and client (user.authenticate's `client`) within the window before that client gets rate_limited for the address (R-USR-4).")
    var loginFailuresPerClient: Int = 10

    @Option(help: "Failed logins per address within the window before every client gets rate_limited for it.")
    var loginFailuresPerAddress: Int = 100

    @Option(help: "The login throttling window, in seconds.")
    var loginWindowSeconds: Int64 = 900

    @Option(help: "Password checks one connection-and-client may have waiting for the hasher; past it: overloaded (R-SEC-2).")
    var hashQueuePerKey: Int = 8

    @Option(help: "Password checks waiting for the hasher in all; past it: overloaded.")
    var hashQueueTotal: Int = 256

    @Option(help: "Milliseconds a refused user.activate or user.authenticate (wrong token or password, rate_limited, overloaded) waits before its answer, holding only its connection's in-flight slot (R-SEC-2).")
    var credentialRefusalDelayMs: Int = 1000

    @Option(help: "Messages one sender (an environment, or the person's own sign-up or reset) may cause to one address in an hour; all environments together: four times this (R-USR-16). Past it: rate_limited.")
    var messagesPerRecipientPerHour: Int = 5

    @Option(help: "domain_join notices an environment's administrators get in an hour; past it, one summary an hour (sign-ups are never refused for it).")
    var domainJoinNoticesPerHour: Int = 10

    @Option(help: "Memory the in-memory permission indexes may use, in MiB, before least recently used environments are evicted.")
    var indexBudgetMib: Int = 1024

    @Option(help: "A mail domain to treat as shared, in addition to the built-in list (repeatable).")
    var sharedDomain: [String] = []

    @Option(help: "A listed shared mail domain to treat as a company's domain after all (a false positive of the shipped list; repeatable).")
    var notSharedDomain: [String] = []

    @Option(help: "A configuration file of `name = value` lines (see Deploy/README.md); also PORTIER_CONFIG. Precedence: command line, then PORTIER_<NAME> environment variables, then this file.")
    var config: String?

    @Option(help: "Folder for the two sockets (portier.sock, support.sock), e.g. systemd's RuntimeDirectory; default: --state-dir.")
    var socketDir: String?

    @Option(help: "Connection string for the LISTEN connection that follows other instances' commits, when --database-url goes through a transaction-mode pooler such as PgBouncer (default: --database-url).")
    var listenDatabaseURL: String?

    @Option(help: "Serve Prometheus metrics (GET /metrics) here: 127.0.0.1:9464, [::1]:9464 or unix:/path. Off by default; the support socket's support.metrics answers anyway.")
    var metricsListen: String?

    @Flag(help: "Print the connection string of the embedded PostgreSQL under --state-dir (for psql and portier-load while portierd runs), then exit.")
    var printDatabaseURL = false

    func run() async throws {
        if printDatabaseURL {
            print(common.resolvedDatabaseURL ?? common.embeddedDatabaseURL())
            return
        }
        let logger = common.makeLogger()
        try await StartupFailure.exitOnFailure(logger) { try await serve(logger) }
    }

    /// Start-up in the order that finds mistakes cheapest: settings, folders,
    /// sockets and the metrics listener (bound, not yet accepting), then the
    /// database, then serving. Every failure is one log line naming the cause
    /// and the setting, and an exit code (`PortierdExit`).
    private func serve(_ logger: Logger) async throws {
        // SIGHUP is trapped first: one sent during start-up (the sockets accept
        // connections into their backlog before the database is up) waits for
        // the reloader instead of ending the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        // SIGTERM or SIGINT before serving: start-up stops at its next step,
        // cleans up (sockets, metrics listener, the embedded cluster) and exits 0.
        let stop = StopDuringStartup(await UnixSignalsSequence(trapping: .sigterm, .sigint), logger: logger)
        defer { stop.finish() }
        let systemd = SystemdNotifier.takeFromEnvironment()
        try requirePublicSuffixList()
        let server = try serverConfiguration()
        let settings = try serviceSettings(server)
        let metricsAddress = try metricsListen.map { text throws(StartupFailure) in
            guard let address = MetricsHTTPServer.Address(text) else {
                throw StartupFailure(.usage, "--metrics-listen \(text): expected host:port or unix:/path", setting: "--metrics-listen")
            }
            return address
        }
        try makeDirectory(common.absoluteStateDir, setting: "--state-dir")
        try makeDirectory(server.service.path.deletingLastPathComponent, setting: socketDir == nil ? "--state-dir" : "--socket-dir")

        let activation: SocketActivation?
        do { activation = try SocketActivation.fromEnvironment(ProcessInfo.processInfo.environment) } catch {
            throw StartupFailure(.usage, "socket activation: \(error)", setting: "LISTEN_FDS / LISTEN_FDNAMES")
        }
        let listeners: SocketListeners
        do { listeners = try await SocketListeners.open(server, activation: activation, logger: logger) } catch {
            let text = "\(error)"
            let serverError = error as? ServerError
            let exit: PortierdExit = serverError?.isUsage == true ? .usage
                : text.contains("Operation not permitted") || text.contains("Permission denied") ? .noPermission : .cannotCreate
            throw StartupFailure(exit, text, setting: serverError?.setting ?? (socketDir == nil ? "--state-dir" : "--socket-dir"))
        }
        if stop.requested {
            await listeners.close()
            throw StartupFailure.stopped
        }
        let metrics = MetricsRenderSlot()
        var metricsServer: MetricsHTTPServer?
        if let metricsAddress {
            do { metricsServer = try await MetricsHTTPServer.start(at: metricsAddress, render: { metrics.render() }, logger: logger) } catch {
                await listeners.close()
                throw StartupFailure(.cannotCreate, "cannot serve metrics at \(metricsListen ?? ""): \(error)", setting: "--metrics-listen")
            }
        }

        let embedded: EmbeddedPostgres?
        let pool: ConnectionPool
        do {
            let (conninfo, cluster, _) = try common.database(logger: logger)
            embedded = cluster
            do {
                _ = try common.migrate(conninfo, logger: logger)
            } catch {
                cluster?.stop()
                throw error
            }
            let database = DatabaseConfiguration(
                conninfo: conninfo, poolSize: poolSize, statementTimeout: .milliseconds(statementTimeoutMs),
                lockTimeout: .milliseconds(lockTimeoutMs), connectionWaitTimeout: .milliseconds(connectionWaitTimeoutMs)
            )
            pool = ConnectionPool(configuration: database, logger: logger)
        } catch {
            await metricsServer?.stop()
            await listeners.close()
            throw error
        }
        defer { embedded?.stop() }
        if stop.requested {
            await metricsServer?.stop()
            await listeners.close()
            throw StartupFailure.stopped
        }
        await pool.openAll()
        let service = PortierService(pool: pool, configuration: settings, logger: logger)
        await service.reportSharedMailDomains()
        service.startSynchronisation(conninfo: listenDatabaseURL)
        let portier = PortierServer(configuration: server, service: service, listeners: listeners, logger: logger)
        metrics.set { [portier] in portier.metricsText() }
        // Accepting now: connections that waited in the backlog are served.
        try await portier.start()
        stop.finish()  // from here on the service group answers SIGTERM and SIGINT
        let reloader = Reloader(signals: hangups, arguments: CommandLine.arguments, running: self, server: portier, service: service, systemd: systemd, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: portier),
                    .init(service: Maintenance(service: service, logger: logger)),
                    .init(service: reloader),
                    .init(service: SystemdStatus(systemd: systemd, logger: logger)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        logger.info("portierd started", metadata: ["version": "\(PortierVersion.current)", "state_dir": "\(common.absoluteStateDir)",
                                                   "systemd": "\(systemd.isActive ? "notify" : "no")", "sockets": "\(activation == nil ? "bound" : "from systemd")"])
        var failed = false
        if stop.requested {
            // Asked to stop while the last steps ran: drain what was accepted, and stop.
            await portier.stop()
        } else {
            do {
                try await group.run()
            } catch {
                logger.error("portierd failed while serving", metadata: ["error": "\(error)"])
                failed = true
            }
        }
        await metricsServer?.stop()
        // The service first: its feeders (LISTEN, watches) stop before the pool they read through.
        await service.shutdown()
        await pool.shutdown()
        logger.info("portierd stopped")
        if failed { throw ExitCode(PortierdExit.failed.rawValue) }
    }

    /// The transport settings from the options.
    func serverConfiguration() throws(StartupFailure) -> ServerConfiguration {
        let sockets = socketDir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? common.absoluteStateDir
        var server = ServerConfiguration.standard(stateDirectory: sockets)
        guard let serviceMode = UInt32(serviceSocketMode, radix: 8) else {
            throw StartupFailure(.usage, "--service-socket-mode \(serviceSocketMode) is not an octal mode such as 660", setting: "--service-socket-mode")
        }
        guard let supportMode = UInt32(supportSocketMode, radix: 8) else {
            throw StartupFailure(.usage, "--support-socket-mode \(supportSocketMode) is not an octal mode such as 600", setting: "--support-socket-mode")
        }
        server.service.mode = serviceMode
        server.support.mode = supportMode
        server.service.group = serviceSocketGroup
        server.support.group = supportSocketGroup
        server.service.capabilities = .service(mailerUIDs: mailerUID, serverUID: getuid(), rules: try Self.rules(serviceGrant, "--service-grant"))
        server.support.capabilities = .support(rules: try Self.rules(supportGrant, "--support-grant"))
        server.service.allowedUIDs = serviceAllowUID.isEmpty ? nil : Set(serviceAllowUID)
        server.support.allowedUIDs = supportAllowUID.isEmpty ? nil : Set(supportAllowUID)
        server.frameLimits.maximumFrameBytes = maxFrameBytes
        server.maximumInFlightPerConnection = maxInFlight
        server.maximumConnections = maxConnections
        server.maximumSupportConnections = maxSupportConnections
        server.idleTimeout = .seconds(idleTimeout)
        server.partialFrameTimeout = .seconds(partialFrameTimeout)
        server.maximumOutputBytes = maxOutputBytes
        server.maximumWatchBacklogBytes = maxWatchBacklogBytes
        server.writeStallTimeout = .seconds(writeStallTimeout)
        server.slowRequestThreshold = .milliseconds(slowRequestMs)
        return server
    }

    static func rules(_ texts: [String], _ option: String) throws(StartupFailure) -> [CapabilityPolicy.Rule] {
        try texts.map { text throws(StartupFailure) in
            guard let rule = CapabilityPolicy.Rule(text) else {
                throw StartupFailure(.usage, "\(option) \(text): expected uid:N=capabilities or gid:N=capabilities (check, manage, mail, support, none)", setting: option)
            }
            return rule
        }
    }

    /// The service settings from the options.
    func serviceSettings(_ server: ServerConfiguration) throws(StartupFailure) -> ServiceConfiguration {
        let shared: SharedMailDomains
        do { shared = try SharedMailDomains(additions: sharedDomain, notShared: notSharedDomain) } catch {
            throw StartupFailure(.usage, "shared mail domains: \(error.message)", setting: "--shared-domain / --not-shared-domain")
        }
        var settings = ServiceConfiguration(
            tokenLifetimeSeconds: tokenLifetime,
            sharedMailDomains: shared,
            invitationsPerHour: invitationsPerHour,
            indexBudgetBytes: indexBudgetMib << 20,
            frameLimits: server.frameLimits,
            maximumInFlightPerConnection: maxInFlight
        )
        settings.loginFailuresPerClient = loginFailuresPerClient
        settings.loginFailuresPerAddress = loginFailuresPerAddress
        settings.loginWindowSeconds = loginWindowSeconds
        settings.hashQueuePerKey = hashQueuePerKey
        settings.hashQueueTotal = hashQueueTotal
        settings.credentialRefusalDelay = .milliseconds(credentialRefusalDelayMs)
        settings.passwordResetLifetimeSeconds = passwordResetLifetime
        settings.messagesPerRecipientPerHour = messagesPerRecipientPerHour
        settings.domainJoinNoticesPerHour = domainJoinNoticesPerHour
        guard watchHistory >= 60 else {
            throw StartupFailure(.usage, "--watch-history \(watchHistory): keep at least 60 seconds of events for watches to resume from", setting: "--watch-history")
        }
        settings.watchHistorySeconds = watchHistory
        settings.watchesPerConnection = maxWatchesPerConnection
        settings.watchesTotal = maxWatches
        return settings
    }
}

/// Periodic chores: deleting environments nobody activated in time (R-ENV-7),
/// pruning the index change log and the watch history.
struct Maintenance: Service {
    let service: PortierService
    let logger: Logger
    var interval: Duration = .seconds(60)

    func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                _ = try await service.purgeUnactivatedEnvironments()
                _ = try await service.pruneLogs()
            } catch {
                logger.warning("maintenance failed", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
