import ArgumentParser
import Foundation
import Logging
import Synchronization

/// `--log-format`: `text` (one human line per event) or `json` (one object per
/// line: `time`, `level`, `label`, `message`, `source`, `metadata`; for
/// journald, Loki and the like).
enum LogFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text, json
}

/// The level every log handler of the process reads: set at start, changed
/// by a SIGHUP reload (`--log-level` in the configuration file).
final class LogLevelControl: Sendable {
    static let shared = LogLevelControl()
    private let level = Atomic<Int>(Logger.Level.info.rank)

    var current: Logger.Level {
        get { Logger.Level.ranked[level.load(ordering: .relaxed)] }
        set { level.store(newValue.rank, ordering: .relaxed) }
    }

    /// Bootstraps swift-log once for the process with `format`, at `level`.
    static func bootstrap(format: LogFormat, level: Logger.Level) {
        shared.current = level
        LoggingSystem.bootstrap { label in
            switch format {
            case .text: ControlledLevel(StreamLogHandler.standardError(label: label))
            case .json: ControlledLevel(JSONLogHandler(label: label))
            }
        }
    }
}

extension Logger.Level {
    static let ranked: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]
    var rank: Int { Self.ranked.firstIndex(of: self)! }
}

/// A handler whose level is the process's `LogLevelControl`.
struct ControlledLevel<Inner: LogHandler>: LogHandler {
    var inner: Inner

    init(_ inner: Inner) {
        self.inner = inner
        self.inner.logLevel = .trace  // the level is decided here, before the inner handler
    }

    var logLevel: Logger.Level {
        get { LogLevelControl.shared.current }
        set { LogLevelControl.shared.current = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        inner.log(event: event)
    }
}

/// One JSON object per line on standard error.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    private static let output = Mutex(())

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        var object: [String: Any] = [
            "time": Self.timestamp(), "level": event.level.rawValue, "label": label, "message": event.message.description, "source": event.source,
        ]
        if !merged.isEmpty { object["metadata"] = merged.mapValues(Self.plain) }
        guard var data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        data.append(UInt8(ascii: "\n"))
        // One write per line, under a lock: lines of concurrent events never interleave.
        Self.output.withLock { _ in data.withUnsafeBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) } }
    }

    static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c): c.description
        case .array(let a): a.map(plain)
        case .dictionary(let d): d.mapValues(plain)
        }
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var tm = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour, tm.tm_min, tm.tm_sec, Int(now.tv_nsec / 1_000_000))
    }
}
