import ArgumentParser

/// How portierd ends: documented in `--help` and Deploy/README.md, with
/// sysexits(3) numbers where one fits, so that systemd (`Restart=on-failure`,
/// `RestartPreventExitStatus=`) and scripts can tell a bad setting from a
/// database that is not there yet.
enum PortierdExit: Int32, CaseIterable {
    /// Stopped on SIGTERM or SIGINT after finishing the requests in flight.
    case stopped = 0
    /// Failed while serving (logged).
    case failed = 1
    /// A command-line option or `PORTIER_*` variable is invalid.
    case usage = 64
    /// PostgreSQL could not be reached, started or migrated.
    case unavailable = 69
    /// An internal error.
    case software = 70
    /// A file the system should provide is missing (the Public Suffix List).
    case osFile = 72
    /// A folder, socket or the metrics listener could not be created.
    case cannotCreate = 73
    /// Permission denied (a socket's group, a folder).
    case noPermission = 77
    /// The configuration file cannot be read or has a bad line.
    case config = 78

    var meaning: String {
        switch self {
        case .stopped: "stopped on SIGTERM/SIGINT after finishing the requests in flight"
        case .failed: "failed while serving"
        case .usage: "an option or PORTIER_* variable is invalid"
        case .unavailable: "PostgreSQL could not be reached, started or migrated"
        case .software: "internal error"
        case .osFile: "a system file is missing (the Public Suffix List: install publicsuffix)"
        case .cannotCreate: "a folder, socket or the metrics listener could not be created"
        case .noPermission: "permission denied (a socket's group, a folder)"
        case .config: "the configuration file cannot be read or has a bad line"
        }
    }

    /// The table for `--help`.
    static var helpText: String {
        "Exit codes:\n" + allCases.map { "  \($0.rawValue)\t\($0.meaning)" }.joined(separator: "\n")
    }
}

/// Why portierd could not start: one log line naming the cause and the setting
/// behind it, then the exit code.
struct StartupFailure: Error, CustomStringConvertible {
    let exit: PortierdExit
    let setting: String?
    let message: String

    init(_ exit: PortierdExit, _ message: String, setting: String? = nil) {
        self.exit = exit
        self.message = message
        self.setting = setting
    }

    var description: String { message }
}
