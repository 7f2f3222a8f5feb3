import ArgumentParser
import Foundation
import PortierClient
import PortierProtocol

/// `portier`: the command-line client.
@main
struct Portier: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portier",
        abstract: "Talk to portierd: sign-up, users, organisations, members, partners, checks, the audit log, the outbox, support.",
        discussion: CLIExit.helpText,
        version: cliVersion,
        subcommands: [
            Hello.self, Ping.self, Signup.self, Activate.self, Login.self, EnvironmentCommand.self, UserCommand.self,
            OrgCommand.self, MemberCommand.self, PartnerCommand.self, InboxCommand.self, CheckCommand.self, CheckBulkCommand.self,
            LookupCommand.self, AuditCommand.self, Outbox.self, SupportCommand.self, MetricsCommand.self, PasswordCommand.self,
            WatchCommand.self,
        ]
    )

    /// Parses what people type (`CommandLineHabits`), then runs the command; a
    /// usage error raised while running shows the command's own usage.
    static func main() async {
        let typed = CommandLineHabits.moveGlobalOptions(Array(CommandLine.arguments.dropFirst()))
        let named = CommandLineHabits.command(named: typed)
        CommandLineHabits.refusePasswordArguments(typed, command: named)
        let command = parse(typed, named: named)
        do {
            try await run(command)
        } catch let error as ValidationError {
            CommandLineHabits.usageError(error.message, for: type(of: command))
        } catch {
            exit(withError: error)
        }
    }

    private static func parse(_ typed: [String], named: ParsableCommand.Type) -> ParsableCommand {
        do {
            return try parseAsRoot(typed)
        } catch {
            CommandLineHabits.explain(error, arguments: typed, command: named)
        }
    }

    private static func run(_ command: ParsableCommand) async throws {
        guard var asynchronous = command as? AsyncParsableCommand else {
            var synchronous = command
            try synchronous.run()
            return
        }
        try await asynchronous.run()
    }
}

/// The CLI's version: the release it was built from (the server's is `portier hello`).
let cliVersion = "0.1.0"

/// How `portier` ends (shown in `--help`).
enum CLIExit: Int32, CaseIterable {
    /// Done; for `check --exit-code`: allowed.
    case ok = 0
    /// `check --exit-code` (and `check-bulk --exit-code`): denied.
    case denied = 1
    /// The server refused the request: its error code and message are on standard error.
    case refused = 2
    /// No portierd at the socket, or the socket may not be opened.
    case noServer = 3
    /// A command-line mistake.
    case usage = 64

    static var helpText: String {
        """
        Exit codes:
          0   done (check --exit-code: allowed)
          1   check --exit-code: denied
          2   the server refused the request (error code and message on standard error)
          3   no portierd at the socket, or no permission to open it
          64  a command-line mistake

        Sockets: --socket, else PORTIER_SOCKET, else ./.portier/portier.sock; support
        commands use PORTIER_SUPPORT_SOCKET, else support.sock beside the service socket.
        """
    }
}

/// Options every subcommand takes.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "The portierd socket (default: $PORTIER_SOCKET or ./.portier/portier.sock; support commands: $PORTIER_SUPPORT_SOCKET or support.sock beside it).")
    var socket: String?

    @Flag(help: "Print the raw JSON result instead of a table.")
    var json = false

    var socketPath: String {
        socket ?? environment("PORTIER_SOCKET") ?? "./.portier/portier.sock"
    }

    /// The support socket: --socket, PORTIER_SUPPORT_SOCKET, or support.sock beside the service socket.
    var supportSocketPath: String {
        socket ?? environment("PORTIER_SUPPORT_SOCKET") ?? {
            let folder = ((environment("PORTIER_SOCKET") ?? "./.portier/portier.sock") as NSString).deletingLastPathComponent
            return (folder.isEmpty ? "." : folder) + "/support.sock"
        }()
    }

    private func environment(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Sends one request and prints its result (table or JSON); an error reply
    /// is printed to stderr and exits with status 2, a lost connection with 3.
    func run(_ op: String, actor: String? = nil, params: JSONObject = [:], support: Bool = false, table: (JSONObject) -> String) async throws {
        let client = try await connect(support: support)
        let reply = try await exchange(client, op, actor: actor, params: params)
        await client.close()
        var out = try result(of: reply)
        if json {
            if case .success(_, let revision?) = reply.outcome { out["revision"] = .string(revision) }
            print(JSONValue.object(out).jsonText)
        } else {
            print(table(out), terminator: "")
        }
    }

    /// A connection to the socket; exits with status 3, saying why and what to
    /// do, if there is none.
    func connect(support: Bool = false) async throws -> PortierClient {
        let path = support ? supportSocketPath : socketPath
        do {
            return try await PortierClient.connect(path: path)
        } catch {
            FileHandle.standardError.write(Data("portier: \(SocketProblem.explain(error, path: path, support: support))\n".utf8))
            throw ExitCode(CLIExit.noServer.rawValue)
        }
    }

    /// Sends a request; a connection lost before its reply (the server stopping,
    /// or cutting this peer off) exits with status 3 like no server at all.
    func exchange(_ client: PortierClient, _ op: String, actor: String? = nil, params: JSONObject) async throws -> Reply {
        do {
            return try await client.send(op, actor: actor, params: params)
        } catch {
            FileHandle.standardError.write(Data("portier: the connection to \(socketPath) ended before the reply: \(error)\n".utf8))
            throw ExitCode(CLIExit.noServer.rawValue)
        }
    }

    /// A reply's result; an error reply is printed (stderr, or JSON) and exits with status 1.
    func result(of reply: Reply) throws -> JSONObject {
        switch reply.outcome {
        case .success(let result, _):
            return result
        case .failure(let error):
            if json {
                print(JSONValue.object(["error": ["code": .string(error.code.rawValue), "message": .string(error.message)]]).jsonText)
            } else {
                FileHandle.standardError.write(Data("portier: \(error.code.rawValue): \(error.message)\n".utf8))
            }
            throw ExitCode(CLIExit.refused.rawValue)
        }
    }
}

/// Where a password comes from: a prompt without echo on a terminal,
/// otherwise a line of standard input. Never an argument: it would show in
/// the process list (`CommandLineHabits.refusePasswordArguments`).
struct PasswordOptions: ParsableArguments {
    @Flag(help: "Read the password from the first line of standard input even on a terminal.")
    var passwordStdin = false

    func resolve() throws -> String {
        try Self.read("Password: ", fromStandardInput: passwordStdin)
    }

    /// One password: prompted for on a terminal (no echo), else the next line of standard input.
    static func read(_ prompt: String, fromStandardInput: Bool = false) throws -> String {
        if !fromStandardInput, isatty(0) != 0 {
            guard let entered = getpass(prompt) else { throw ValidationError("no password given") }
            return String(cString: entered)
        }
        guard let line = readLine(strippingNewline: true) else {
            throw ValidationError("no password on standard input (one line per password, or run it on a terminal to be asked)")
        }
        return line
    }
}

struct Hello: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the server's version, protocol and limits.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.run("hello") { r in
            var rows: [[String]] = [
                ["server", r["server"]?.stringValue ?? ""],
                ["version", r["version"]?.stringValue ?? ""],
                ["protocol", r["protocol"]?.display ?? ""],
                ["socket", r["socket"]?.stringValue ?? ""],
            ]
            for pair in r["limits"]?.objectValue?.pairs ?? [] { rows.append([pair.key, pair.value.display]) }
            return Table.keyValue(rows)
        }
    }
}

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the server answers.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let start = ContinuousClock.now
        try await connection.run("ping") { _ in "pong in \(ContinuousClock.now - start)\n" }
    }
}

struct Signup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sign up with an email; a new environment, or the one that claims its domain.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The email address.") var email: String
    @Option(help: "The person's name.") var name: String?

    func run() async throws {
        var params: JSONObject = ["email": .string(email)]
        if let name { params["name"] = .string(name) }
        try await connection.run("signup", params: params) { r in
            let joined = r["joined"]?.stringValue == "created" ? "created a new environment" : "joined an existing environment"
            return "\(joined); the activation link is in the outbox (portier outbox list)\n\n"
                + Table.user(r["user"]) + "\n" + Table.environment(r["environment"])
        }
    }
}

struct Activate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Activate an account with the token from its activation message.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The token from the activation message.") var token: String
    @OptionGroup var password: PasswordOptions

    func run() async throws {
        let params: JSONObject = ["token": .string(token), "password": .string(try password.resolve())]
        try await connection.run("user.activate", params: params) { r in "activated\n\n" + Table.user(r["user"]) }
    }
}

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check an email and password (user.authenticate).")
    /// `portier-cli:uid=N`: failed logins from this account's CLI are throttled
    /// together, apart from a front end's users.
    static var clientKey: String { "portier-cli:uid=\(getuid())" }
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The email address.") var email: String
    @OptionGroup var password: PasswordOptions

    func run() async throws {
        // The CLI's own throttling key, as a front end passes its user's (R-USR-4, docs/cli.md).
        let params: JSONObject = ["email": .string(email), "password": .string(try password.resolve()), "client": .string(Self.clientKey)]
        try await connection.run("user.authenticate", params: params) { r in
            "authenticated\n\n" + Table.user(r["user"]) + "\n" + Table.environment(r["environment"])
        }
    }
}

struct EnvironmentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "environment", abstract: "Show the actor's environment.")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .customLong("as"), help: "The actor: a user id or email.") var actor: String

    func run() async throws {
        try await connection.run("environment.get", actor: actor) { r in Table.environment(r["environment"]) }
    }
}

struct Outbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read and acknowledge messages to people (the mailer's side).",
        subcommands: [List.self, Ack.self], defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unacknowledged messages, oldest first.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var page: PageOptions
        @Option(help: "Only messages to this address (reads every page).") var to: String?
        @Option(help: "Only messages of this kind, e.g. activation or password_reset (reads every page).") var kind: String?
        @Flag(help: "Print only the tokens, one per line, oldest first (for scripts: … --tokens | tail -n 1).") var tokens = false

        func run() async throws {
            let to = to?.lowercased()
            let kind = kind
            let tokens = tokens
            try await connection.runList("outbox.list", key: "messages", page: page, followAll: to != nil || kind != nil, keep: { m in
                let o = m.objectValue
                return (to == nil || o?["to"]?.stringValue?.lowercased() == to) && (kind == nil || o?["kind"]?.stringValue == kind)
                    && (!tokens || o?["token"] != nil)
            }) { rows, next in
                tokens
                    ? rows.compactMap { $0.objectValue?["token"]?.stringValue }.map { $0 + "\n" }.joined()
                    : Table.rows(rows, next: next, [("ID", "id"), ("KIND", "kind"), ("TO", "to"), ("CREATED", "created_at"), ("TOKEN", "token")])
            }
        }
    }

    struct Ack: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mark messages delivered (their tokens are erased).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Message ids.") var ids: [String]

        func run() async throws {
            try await connection.run("outbox.ack", params: ["ids": .array(ids.map(JSONValue.string))]) { _ in
                "acknowledged \(ids.count) message(s)\n"
            }
        }
    }
}

/// `portier password …`: recovery and change (R-USR-14, R-USR-15).
struct PasswordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "password",
        abstract: "Recover a forgotten password, or change your own.",
        subcommands: [Forgot.self, Reset.self, Change.self]
    )

    struct Forgot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ask for a reset link (the answer is the same for every address).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The email address.") var email: String

        func run() async throws {
            try await connection.run("user.password.forgot", params: ["email": .string(email)]) { _ in
                "if \(email) belongs to an active account, a reset link is in the outbox (portier outbox list --to \(email) --kind password_reset)\n"
            }
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a new password with the token from a password_reset message.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The token from the password_reset message.") var token: String
        @OptionGroup var password: PasswordOptions

        func run() async throws {
            let params: JSONObject = ["token": .string(token), "password": .string(try password.resolve())]
            try await connection.run("user.password.reset", params: params) { r in "password reset\n\n" + Table.user(r["user"]) }
        }
    }

    struct Change: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change your own password: asked for on a terminal (the current one, the new one twice), else two lines of standard input."
        )
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("as"), help: "You: a user id or email.") var actor: String

        func run() async throws {
            let current = try PasswordOptions.read("Current password: ")
            let new = try PasswordOptions.read("New password: ")
            if isatty(0) != 0, try PasswordOptions.read("New password again: ") != new {
                throw ValidationError("the two new passwords differ; nothing changed")
            }
            try await connection.run("user.password.change", actor: actor, params: ["current_password": .string(current), "new_password": .string(new)]) { _ in
                "password changed\n"
            }
        }
    }
}
