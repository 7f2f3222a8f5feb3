import ArgumentParser
import Foundation

/// portierd's settings from three places, lowest precedence first:
///
/// 1. a file (`--config FILE`, or `PORTIER_CONFIG`): `name = value` lines, where
///    `name` is a long option of the subcommand without its dashes (`pool-size
///    = 16`); `#` starts a comment; a list option may appear on several lines;
/// 2. environment variables `PORTIER_<NAME>` (`PORTIER_POOL_SIZE=16`), list
///    options comma-separated (`PORTIER_SHARED_DOMAIN=a.example,b.example`);
/// 3. the command line.
///
/// They become command-line options in that order: for a single value the last
/// one wins, list options add up. Names that are not options of the subcommand
/// are refused (in the file) or ignored (in the environment, which holds other
/// programs' variables too).
enum ConfigurationSources {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The arguments to parse: the subcommand, then file, environment and command-line options.
    static func arguments(_ commandLine: [String], environment: [String: String]) throws -> [String] {
        var rest = commandLine
        let subcommand: any ParsableCommand.Type
        switch rest.first {
        case "migrate": subcommand = Migrate.self; rest.removeFirst()
        case "run": subcommand = Run.self; rest.removeFirst()
        case let first? where !first.hasPrefix("-"): return commandLine  // help and the like
        default: subcommand = Run.self
        }
        if rest.contains(where: { $0 == "-h" || $0 == "--help" }) { return commandLine }
        let names = optionNames(subcommand)
        var file: String? = environment["PORTIER_CONFIG"]
        var fileSetting = "PORTIER_CONFIG"
        if let i = rest.firstIndex(of: "--config") {
            guard i + 1 < rest.count else { throw Failure(description: "--config needs a file") }
            file = rest[i + 1]
            fileSetting = "--config"
            rest.removeSubrange(i...(i + 1))
        } else if let i = rest.firstIndex(where: { $0.hasPrefix("--config=") }) {
            file = String(rest[i].dropFirst("--config=".count))
            fileSetting = "--config"
            rest.remove(at: i)
        }
        var options: [String] = []
        if let file { options += try fileOptions(file, names: names, setting: fileSetting) }
        for name in names.sorted() {
            let variable = "PORTIER_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
            guard let value = environment[variable], !value.isEmpty else { continue }
            let values = listOptions.contains(name) ? value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } : [value]
            for v in values { options += ["--\(name)", v] }
        }
        return [subcommand._commandName] + options + rest
    }

    /// `setting`: where the file's name came from (`--config` or `PORTIER_CONFIG`), for the messages.
    static func fileOptions(_ path: String, names: Set<String>, setting: String = "--config") throws -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            if access(path, F_OK) != 0 && errno == ENOENT {
                // The systemd recipe's environment file names /etc/portier/portierd.conf: say which step makes it.
                throw Failure(description: "the configuration file \(path) (\(setting)) does not exist: create it "
                    + "(Deploy/README.md, step \"Configuration file\": install -m 0640 -o root -g portier /dev/null \(path)) "
                    + (setting == "--config" ? "or leave out --config" : "or remove PORTIER_CONFIG from the environment (/etc/portier/portierd.env)"))
            }
            if access(path, R_OK) != 0 {
                throw Failure(description: "cannot read the configuration file \(path) (\(setting)): permission denied "
                    + "(portierd's user must be able to read it and its folders: mode 0640, group portier)")
            }
            throw Failure(description: "cannot read the configuration file \(path) (\(setting)): not a readable UTF-8 text file")
        }
        var options: [String] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?
                .trimmingCharacters(in: .whitespaces) ?? ""
            if line.isEmpty { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw Failure(description: "\(path):\(number + 1): expected name = value")
            }
            let name = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard names.contains(name) else { throw Failure(description: "\(path):\(number + 1): \(name) is not a setting (see --help)") }
            options += ["--\(name)", value]
        }
        return options
    }

    /// The long options of a subcommand, read from its help (one source of truth).
    static func optionNames(_ command: any ParsableCommand.Type) -> Set<String> {
        let help = command.helpMessage(columns: 10_000)
        var names = Set<String>()
        for word in help.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," }) where word.hasPrefix("--") {
            let name = word.dropFirst(2).prefix { $0.isLetter || $0.isNumber || $0 == "-" }
            if !name.isEmpty, name != "help", name != "config" { names.insert(String(name)) }
        }
        return names
    }

    /// Options that take several values (their environment variable is comma-separated).
    /// (Grants hold commas themselves: one per line in the file, or on the command line.)
    static let listOptions: Set<String> = ["service-allow-uid", "support-allow-uid", "shared-domain", "not-shared-domain", "mailer-uid"]
}
