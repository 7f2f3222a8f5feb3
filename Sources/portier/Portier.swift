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
        subcommands: [
            Hello.self, Ping.self, Signup.self, Activate.self, Login.self, EnvironmentCommand.self, UserCommand.self,
            OrgCommand.self, MemberCommand.self, PartnerCommand.self, InboxCommand.self, CheckCommand.self,
            LookupCommand.self, AuditCommand.self, Outbox.self, SupportCommand.self,
        ]
    )
}

/// Options every subcommand takes.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "The portierd socket (default: $PORTIER_SOCKET or ./.portier/portier.sock).")
    var socket: String?

    @Flag(help: "Print the raw JSON result instead of a table.")
    var json = false

    var socketPath: String {
        socket ?? ProcessInfo.processInfo.environment["PORTIER_SOCKET"].flatMap { $0.isEmpty ? nil : $0 } ?? "./.portier/portier.sock"
    }

    /// Sends one request and prints its result (table or JSON); an error reply
    /// is printed to stderr and exits with status 1.
    func run(_ op: String, actor: String? = nil, params: JSONObject = [:], table: (JSONObject) -> String) async throws {
        let client: PortierClient
        do {
            client = try await PortierClient.connect(path: socketPath)
        } catch {
            FileHandle.standardError.write(Data("portier: cannot connect to \(socketPath): \(error)\n".utf8))
            throw ExitCode(3)
        }
        let reply = try await client.send(op, actor: actor, params: params)
        await client.close()
        switch reply.outcome {
        case .success(let result, let revision):
            if json {
                var out = result
                if let revision { out["revision"] = .string(revision) }
                print(JSONValue.object(out).jsonText)
            } else {
                print(table(result), terminator: "")
            }
        case .failure(let error):
            if json {
                print(JSONValue.object(["error": ["code": .string(error.code.rawValue), "message": .string(error.message)]]).jsonText)
            } else {
                FileHandle.standardError.write(Data("portier: \(error.code.rawValue): \(error.message)\n".utf8))
            }
            throw ExitCode(1)
        }
    }
}

/// Where a password comes from: the flag, standard input, or a prompt.
struct PasswordOptions: ParsableArguments {
    @Option(help: "The password (visible to other local users in the process list; prefer --password-stdin).")
    var password: String?

    @Flag(help: "Read the password from the first line of standard input.")
    var passwordStdin = false

    func resolve() throws -> String {
        if let password { return password }
        if !passwordStdin, isatty(0) != 0 {
            guard let entered = getpass("Password: ") else { throw ValidationError("no password given") }
            return String(cString: entered)
        }
        guard let line = readLine(strippingNewline: true) else { throw ValidationError("no password on standard input") }
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
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The email address.") var email: String
    @OptionGroup var password: PasswordOptions

    func run() async throws {
        let params: JSONObject = ["email": .string(email), "password": .string(try password.resolve())]
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
        @Option(help: "At most this many (1–1000).") var limit: Int?
        @Option(help: "Continue after this cursor (next_cursor of the previous page).") var cursor: String?

        func run() async throws {
            var params: JSONObject = [:]
            if let limit { params["limit"] = .int(Int64(limit)) }
            if let cursor { params["cursor"] = .string(cursor) }
            try await connection.run("outbox.list", params: params) { r in
                Table.page(r, "messages", [("ID", "id"), ("KIND", "kind"), ("TO", "to"), ("TOKEN", "token")])
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
