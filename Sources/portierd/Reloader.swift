import ArgumentParser
import Foundation
import Logging
import PortierServer
import PortierService
import ServiceLifecycle
import Synchronization
import UnixSignals

/// SIGHUP: reads the settings again (configuration file, `PORTIER_*`
/// variables, the command line, as at start) and applies what can change
/// while serving; logs what changed, and names what needs a restart.
///
/// Applied at once: the log level; the shared mail domains; the service's
/// limits and lifetimes; the connection limits (for new connections); who may
/// connect and with which capabilities (grants, mailer uids, allow-lists):
/// an open connection whose peer lost access or a capability is closed.
/// Everything else (folders, sockets, database, pool, hasher queues, login
/// throttle, index budget, log format) is named in a warning and left as it
/// was. A configuration that does not parse changes nothing.
final class Reloader: Service {
    let signals: UnixSignalsSequence
    let arguments: [String]
    let server: PortierServer
    let service: PortierService
    let systemd: SystemdNotifier
    let logger: Logger
    private let current: Mutex<[String: String]>

    init(signals: UnixSignalsSequence, arguments: [String], running: Run, server: PortierServer, service: PortierService, systemd: SystemdNotifier, logger: Logger) {
        self.signals = signals
        self.arguments = arguments
        self.server = server
        self.service = service
        self.systemd = systemd
        self.logger = logger
        current = Mutex(Self.settings(of: running))
    }

    /// Options applied by a reload, by name.
    static let reloadable: Set<String> = [
        "log-level",
        "shared-domain", "not-shared-domain", "token-lifetime", "password-reset-lifetime", "invitations-per-hour",
        "messages-per-recipient-per-hour", "domain-join-notices-per-hour", "credential-refusal-delay-ms",
        "max-frame-bytes", "max-in-flight", "idle-timeout", "partial-frame-timeout", "max-output-bytes",
        "write-stall-timeout", "slow-request-ms", "watch-history",
        "service-grant", "support-grant", "mailer-uid", "service-allow-uid", "support-allow-uid",
    ]

    func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() {
            reload()
        }
    }

    func reload() {
        systemd.notify("RELOADING=1\nMONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds)")
        defer { systemd.notify("READY=1") }
        let new: Run
        let serverConfiguration: ServerConfiguration
        let serviceSettings: ServiceConfiguration
        do {
            let parsed = try Portierd.parseAsRoot(
                try ConfigurationSources.arguments(Array(arguments.dropFirst()), environment: ProcessInfo.processInfo.environment))
            guard let run = parsed as? Run else { throw StartupFailure(.usage, "the command line no longer runs the server") }
            new = run
            serverConfiguration = try run.serverConfiguration()
            serviceSettings = try run.serviceSettings(serverConfiguration)
        } catch {
            logger.error("reload refused; nothing changed", metadata: ["error": "\(error)"])
            return
        }
        let after = Self.settings(of: new)
        let before = current.withLock { $0 }
        let changed = Set(after.keys).union(before.keys).filter { after[$0] != before[$0] }.sorted()
        guard !changed.isEmpty else {
            logger.info("reload: nothing changed")
            return
        }
        let applied = changed.filter(Self.reloadable.contains)
        let skipped = changed.filter { !Self.reloadable.contains($0) }
        if applied.isEmpty {
            logger.warning("reload: only settings that change with a restart changed; nothing applied", metadata: ["settings": "\(skipped.joined(separator: ", "))"])
            return
        }
        LogLevelControl.shared.current = new.common.logLevel
        // The reloadable part of the new settings, as one value: its list of fields lives in one place.
        let reloadable = ReloadableSettings(serviceSettings)
        service.reconfigure { $0 = reloadable }
        server.reconfigure(connections: serverConfiguration.connectionSettings, service: serverConfiguration.service, support: serverConfiguration.support)
        if applied.contains("shared-domain") || applied.contains("not-shared-domain") {
            // Claims on domains that are now shared are reported, as at start (R-ENV-4).
            let service = self.service
            Task { await service.reportSharedMailDomains() }
        }
        // Only what was applied counts as the new state: a skipped setting keeps
        // showing as changed until a restart applies it.
        current.withLock { state in for name in applied { state[name] = after[name] } }
        logger.notice("reloaded", metadata: ["applied": "\(applied.joined(separator: ", "))"])
        if !skipped.isEmpty {
            logger.warning("reload: these settings change only with a restart; kept as they were", metadata: ["settings": "\(skipped.joined(separator: ", "))"])
        }
    }

    /// Every option of `run` by its command-line name, with its value as text.
    static func settings(of run: Run) -> [String: String] {
        var out: [String: String] = [:]
        func walk(_ value: Any) {
            for child in Mirror(reflecting: value).children {
                guard var label = child.label else { continue }
                if label.hasPrefix("_") { label.removeFirst() }
                if label == "common" {
                    walk(run.common)
                    continue
                }
                out[optionName(label)] = String(describing: child.value)
            }
        }
        walk(run)
        out["print-database-url"] = nil
        return out
    }

    /// `serviceAllowUID` → `service-allow-uid`.
    static func optionName(_ property: String) -> String {
        var name = ""
        var previous: Character?
        for c in property {
            if c.isUppercase, let p = previous, p.isLowercase || p.isNumber { name.append("-") }
            name.append(Character(c.lowercased()))
            previous = c
        }
        return name
    }
}

/// Tells systemd when portierd serves (`READY=1`, the sockets accept) and when
/// it begins to drain (`STOPPING=1`).
struct SystemdStatus: Service {
    let systemd: SystemdNotifier
    let logger: Logger

    func run() async throws {
        if systemd.notify("READY=1\nSTATUS=serving\nMAINPID=\(getpid())") { logger.debug("told systemd: ready") }
        try? await gracefulShutdown()
        systemd.notify("STOPPING=1\nSTATUS=draining")
    }
}
