#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import Logging
import PortierDomain
import Synchronization
import UnixSignals

extension StartupFailure {
    /// Runs `body`; a start-up failure becomes one critical log line (cause and
    /// setting) and its exit code, any other error exit code 70.
    static func exitOnFailure(_ logger: Logger, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw report(error, logger)
        }
    }

    static func exitOnFailure(_ logger: Logger, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            throw report(error, logger)
        }
    }

    /// Start-up ended by SIGTERM or SIGINT (exit 0).
    static let stopped = StartupFailure(.stopped, "stopped by a signal during start-up")

    /// One critical line (libpq's multi-line messages joined), and the exit code.
    private static func report(_ error: any Error, _ logger: Logger) -> ExitCode {
        if let exit = error as? ExitCode { return exit }
        let failure = error as? StartupFailure ?? StartupFailure(.software, "\(error)")
        if failure.exit == .stopped {
            logger.notice("\(failure.message); cleaned up")
            return ExitCode(0)
        }
        let line = failure.message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        logger.critical("cannot start: \(line)", metadata: failure.setting.map { ["setting": "\($0)"] } ?? [:])
        return ExitCode(failure.exit.rawValue)
    }
}

/// Without the Public Suffix List a public suffix (co.uk) could be claimed as
/// a company's domain (R-ENV-4): portierd refuses to start.
func requirePublicSuffixList() throws(StartupFailure) {
    guard PublicSuffixList.isLoaded else {
        throw StartupFailure(.osFile, "libpsl loaded no Public Suffix List: install the publicsuffix package")
    }
}

/// `mkdir -p`, failing with the folder, the setting and the system's reason
/// (not a Foundation error dump).
func makeDirectory(_ path: String, setting: String) throws(StartupFailure) {
    var built = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        built += "/" + part
        var info = stat()
        if stat(built, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw StartupFailure(.cannotCreate, "\(built) is not a folder (\(setting) \(path))", setting: setting)
            }
            continue
        }
        if mkdir(built, 0o755) != 0, errno != EEXIST {
            let code = errno
            throw StartupFailure(code == EACCES || code == EPERM || code == EROFS ? .noPermission : .cannotCreate,
                                 "cannot create \(built) (\(setting) \(path)): \(String(cString: strerror(code)))", setting: setting)
        }
    }
}

extension String {
    /// The folder part of a path.
    var deletingLastPathComponent: String { (self as NSString).deletingLastPathComponent }
}

/// Renders the metrics text once the server exists (the metrics listener is
/// bound before it, to find a taken port early).
final class MetricsRenderSlot: Sendable {
    private let renderer = Mutex<Renderer?>(nil)

    final class Renderer: Sendable {
        let render: @Sendable () -> String
        init(_ render: @escaping @Sendable () -> String) { self.render = render }
    }

    func set(_ render: @escaping @Sendable () -> String) {
        let box = Renderer(render)
        renderer.withLock { $0 = box }
    }

    func render() -> String { renderer.withLock { $0 }?.render() ?? "" }
}

/// Watches for SIGTERM and SIGINT while portierd starts (before the service
/// group takes them over): start-up checks `requested` between its steps.
final class StopDuringStartup: Sendable {
    private let flag = Flag()
    private let watcher = Mutex<Task<Void, Never>?>(nil)

    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    init(_ signals: UnixSignalsSequence, logger: Logger) {
        let flag = self.flag
        let task = Task {
            for await signal in signals {
                flag.value.store(true, ordering: .relaxed)
                logger.notice("stop requested during start-up; stopping after the current step", metadata: ["signal": "\(signal)"])
                break
            }
        }
        watcher.withLock { $0 = task }
    }

    var requested: Bool { flag.value.load(ordering: .relaxed) }

    /// Stops watching (serving has begun, or start-up ended).
    func finish() { watcher.withLock { $0?.cancel() } }
}
