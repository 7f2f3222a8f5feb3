import ArgumentParser
import Foundation

/// What people type, made into what the parser takes (docs/cli.md): global
/// options before the subcommand, a mistyped subcommand or option answered
/// with "did you mean", a usage error shown with the subcommand's usage, and
/// passwords refused as arguments.
///
/// Hand-written around swift-argument-parser, which ties every option to the
/// command that declares it and leaves suggestions to the caller.
enum CommandLineHabits {
    /// Options every subcommand takes (`ConnectionOptions`), accepted before it too.
    static let globalOptionsWithValue: Set<String> = ["--socket"]
    static let globalFlags: Set<String> = ["--json"]
    /// Options that would put a password in the process list (removed; named in the error).
    static let passwordArguments: Set<String> = ["--password", "--current", "--new"]

    /// Moves global options, wherever they were typed (before the subcommand,
    /// between its words), to the end, where the subcommand's own
    /// `ConnectionOptions` read them. Nothing after `--` moves.
    static func moveGlobalOptions(_ arguments: [String]) -> [String] {
        var globals: [String] = []
        var rest: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                rest += arguments[index...]
                break
            }
            let name = String(argument.split(separator: "=", maxSplits: 1).first ?? "")
            if globalOptionsWithValue.contains(name) {
                let takesNext = !argument.contains("=") && index + 1 < arguments.count
                globals += takesNext ? [argument, arguments[index + 1]] : [argument]
                index += takesNext ? 2 : 1
                continue
            }
            if globalFlags.contains(argument) {
                globals.append(argument)
            } else {
                rest.append(argument)
            }
            index += 1
        }
        guard !globals.isEmpty, rest.contains(where: { !$0.hasPrefix("-") }) else { return arguments }
        if let end = rest.firstIndex(of: "--") { return Array(rest[..<end]) + globals + Array(rest[end...]) }
        return rest + globals
    }

    /// The command the arguments name, walking the subcommand tree; exits (64)
    /// with a suggestion at a word that names no subcommand.
    static func command(named arguments: [String]) -> ParsableCommand.Type {
        var command: ParsableCommand.Type = Portier.self
        var path = ["portier"]
        for word in arguments {
            if word.hasPrefix("-") { break }
            let children = subcommands(of: command)
            if children.isEmpty || (isRoot(command) && word == "help") { break }
            if let next = children.first(where: { names(of: $0).contains(word) }) {
                command = next
                path.append(word)
                continue
            }
            let known = children.map { names(of: $0)[0] }
            let suggestion = closest(word, among: known)
            // A word after a command with a default subcommand may be that subcommand's argument.
            if hasDefaultSubcommand(command), suggestion == nil { break }
            let hint = suggestion.map { " Did you mean '\($0)'?" } ?? " Commands: \(known.joined(separator: ", "))."
            usageError("'\(word)' is not a command of '\(path.joined(separator: " "))'.\(hint)", for: command)
        }
        return command
    }

    static func subcommands(of command: ParsableCommand.Type) -> [ParsableCommand.Type] { command.configuration.subcommands }
    /// The command's name, then its aliases.
    static func names(of command: ParsableCommand.Type) -> [String] { [command._commandName] + command.configuration.aliases }
    static func hasDefaultSubcommand(_ command: ParsableCommand.Type) -> Bool { command.configuration.defaultSubcommand != nil }

    /// Refuses a password typed as an argument (it would show in the process list).
    static func refusePasswordArguments(_ arguments: [String], command: ParsableCommand.Type) {
        for argument in arguments {
            let name = String(argument.split(separator: "=", maxSplits: 1)[0])
            guard passwordArguments.contains(name) else { continue }
            usageError("passwords are not taken as arguments (\(name)): other users could read them in the process list. "
                       + "Type it when asked (without echo), or give it on standard input, one line per password.", for: command)
        }
    }

    /// Explains a parse error and exits: an unknown option gets a suggestion,
    /// every usage error the usage of the command it was typed for.
    static func explain(_ error: any Error, arguments: [String], command: ParsableCommand.Type) -> Never {
        let message = Portier.message(for: error)
        // An option the command does not know explains the error better than what it then missed.
        let known = Set(options(of: command))
        for argument in arguments where argument.hasPrefix("--") && argument != "--" {
            let option = String(argument.split(separator: "=", maxSplits: 1)[0])
            guard !known.contains(option), !["--help", "--version"].contains(option) else { continue }
            let suggestion = closest(option, among: Array(known))
            usageError("Unknown option '\(option)'." + (suggestion.map { " Did you mean '\($0)'?" } ?? ""), for: command)
        }
        if Portier.exitCode(for: error) == .validationFailure,
           let range = message.range(of: #"Unknown option '(-{1,2}[^']+)'"#, options: .regularExpression) {
            let option = String(message[range].dropFirst("Unknown option '".count).dropLast())
            let known = options(of: command)
            let suggestion = closest(option, among: known)
            usageError("Unknown option '\(option)'." + (suggestion.map { " Did you mean '\($0)'?" } ?? ""), for: command)
        }
        Portier.exit(withError: error)
    }

    /// A usage error: the message, the command's usage, and where its help is; exit 64.
    static func usageError(_ message: String, for command: ParsableCommand.Type) -> Never {
        let usage = Portier.usageString(for: command)
        let name = isRoot(command) ? "portier" : "portier " + commandPath(command).joined(separator: " ")
        FileHandle.standardError.write(Data("Error: \(message)\nUsage: \(usage)\n  See '\(name) --help' for more information.\n".utf8))
        Foundation.exit(CLIExit.usage.rawValue)
    }

    static func isRoot(_ command: ParsableCommand.Type) -> Bool { ObjectIdentifier(command) == ObjectIdentifier(Portier.self) }

    /// The long options a command's help lists.
    static func options(of command: ParsableCommand.Type) -> [String] {
        let help = Portier.helpMessage(for: command)
        let matches = help.matches(of: /--[a-z][a-z0-9-]*/).map { String($0.output) }
        return Array(Set(matches)).sorted()
    }

    /// The subcommand names from the root to `command`.
    static func commandPath(_ command: ParsableCommand.Type) -> [String] {
        func search(_ node: ParsableCommand.Type, _ path: [String]) -> [String]? {
            if ObjectIdentifier(node) == ObjectIdentifier(command) { return path }
            for child in node.configuration.subcommands {
                if let found = search(child, path + [child._commandName]) { return found }
            }
            return nil
        }
        return search(Portier.self, []) ?? []
    }

    /// The candidate nearest to `word` (edit distance at most a third of its
    /// length, at least 1), or one that starts with it.
    static func closest(_ word: String, among candidates: [String]) -> String? {
        let limit = max(1, word.count / 3)
        let scored = candidates.map { ($0, editDistance(word, $0)) }.filter { $0.1 <= limit }.sorted { $0.1 < $1.1 }
        if let best = scored.first { return best.0 }
        return candidates.first { $0.hasPrefix(word) && word.count >= 2 }
    }

    /// Edit distance counting an adjacent transposition as one edit (optimal
    /// string alignment): `lsit` is one typo away from `list`.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
}
