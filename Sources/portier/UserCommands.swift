import ArgumentParser
import PortierProtocol

/// `--as`: the actor, by id or email.
struct ActorOption: ParsableArguments {
    @Option(name: .customLong("as"), help: "The actor: a user id or email.")
    var actor: String
}

/// `portier user …`: user administration (docs/rules.md §3).
struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Invite, list, change, block and remove users; manage extra email addresses.",
        subcommands: [Invite.self, Resend.self, Get.self, List.self, SetRole.self, Block.self, Unblock.self, Remove.self, Offboard.self, Email.self]
    )

    struct Invite: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Invite a user (administrators).")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The email address to invite.") var email: String
        @Option(help: "basic (default), advanced or administrator.") var role: String?
        @Option(help: "The person's name.") var name: String?

        func run() async throws {
            var params: JSONObject = ["email": .string(email)]
            if let role { params["role"] = .string(role) }
            if let name { params["name"] = .string(name) }
            try await connection.run("user.invite", actor: actor.actor, params: params) { r in
                "invited; the activation link is in the outbox\n\n" + Table.user(r["user"])
            }
        }
    }

    struct Resend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a new activation link; the earlier one stops working.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The invited user: id or email.") var user: String

        func run() async throws {
            try await connection.run("user.resend_invitation", actor: actor.actor, params: ["user": .string(user)]) { r in Table.user(r["user"]) }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a user.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The user: id or email.") var user: String

        func run() async throws {
            try await connection.run("user.get", actor: actor.actor, params: ["user": .string(user)]) { r in
                var text = Table.user(r["user"])
                if let emails = r["user"]?.objectValue?["emails"], emails.arrayValue?.isEmpty == false {
                    text += "\n" + Table.objects(emails, [("EXTRA EMAIL", "email"), ("VERIFIED", "verified")])
                }
                return text
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the environment's users.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Option(help: "invited, active or blocked.") var status: String?
        @Option(help: "basic, advanced or administrator.") var role: String?
        @OptionGroup var page: PageOptions

        func run() async throws {
            var params: JSONObject = [:]
            if let status { params["status"] = .string(status) }
            if let role { params["role"] = .string(role) }
            try await connection.runList("user.list", actor: actor.actor, params: params, key: "users", page: page) { rows, next in
                Table.rows(rows, next: next, [("ID", "id"), ("EMAIL", "email"), ("NAME", "name"), ("ROLE", "role"), ("STATUS", "status")])
            }
        }
    }

    struct SetRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-role", abstract: "Change a user's role (administrators).")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The user: id or email.") var user: String
        @Argument(help: "basic, advanced or administrator.") var role: String

        func run() async throws {
            try await connection.run("user.set_role", actor: actor.actor, params: ["user": .string(user), "role": .string(role)]) { r in Table.user(r["user"]) }
        }
    }

    struct Block: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Block an active user (administrators).")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The user: id or email.") var user: String

        func run() async throws {
            try await connection.run("user.block", actor: actor.actor, params: ["user": .string(user)]) { r in Table.user(r["user"]) }
        }
    }

    struct Unblock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unblock a blocked user (administrators).")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The user: id or email.") var user: String

        func run() async throws {
            try await connection.run("user.unblock", actor: actor.actor, params: ["user": .string(user)]) { r in Table.user(r["user"]) }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user and all their memberships, or revoke an invitation (administrators).")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The user: id or email.") var user: String

        func run() async throws {
            try await connection.run("user.remove", actor: actor.actor, params: ["user": .string(user)]) { _ in "removed \(user)\n" }
        }
    }

    struct Offboard: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A colleague leaves: every membership, then the user, in one step (administrators).")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The user: id or email.") var user: String
        @Option(help: "Made administrator first (needed when the user is the last one).") var successor: String?

        func run() async throws {
            var params: JSONObject = ["user": .string(user)]
            if let successor { params["successor"] = .string(successor) }
            try await connection.run("user.offboard", actor: actor.actor, params: params) { _ in "off-boarded \(user)\n" }
        }
    }

    struct Email: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Extra email addresses of the actor (R-USR-11).",
            subcommands: [Add.self, Verify.self, Remove.self]
        )

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add an address; a verification link goes to it.")
            @OptionGroup var connection: ConnectionOptions
            @OptionGroup var actor: ActorOption
            @Argument(help: "The address.") var email: String

            func run() async throws {
                try await connection.run("user.email.add", actor: actor.actor, params: ["email": .string(email)]) { _ in
                    "added \(email); the verification link is in the outbox\n"
                }
            }
        }

        struct Verify: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Confirm an address with the token from its verification message.")
            @OptionGroup var connection: ConnectionOptions
            @Argument(help: "The token.") var token: String

            func run() async throws {
                try await connection.run("user.email.verify", params: ["token": .string(token)]) { r in
                    "verified \(r["email"]?.objectValue?["email"]?.display ?? "")\n"
                }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove an extra address.")
            @OptionGroup var connection: ConnectionOptions
            @OptionGroup var actor: ActorOption
            @Argument(help: "The address.") var email: String

            func run() async throws {
                try await connection.run("user.email.remove", actor: actor.actor, params: ["email": .string(email)]) { _ in "removed \(email)\n" }
            }
        }
    }
}

/// `portier audit`: the environment's audit log (administrators).
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "Read the environment's audit log, newest first (administrators).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var actor: ActorOption
    @OptionGroup var page: PageOptions

    func run() async throws {
        try await connection.runList("audit.list", actor: actor.actor, key: "events", page: page) { rows, next in
            Table.rows(rows, next: next, [("AT", "at"), ("ACTOR", "actor_label"), ("OP", "op"), ("TARGET", "target"), ("DETAILS", "details")])
        }
    }
}

/// `portier support …`: operations of platform support, on the support socket.
struct SupportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "support",
        abstract: "Platform support's operations, on the support socket ($PORTIER_SUPPORT_SOCKET, or support.sock beside the service socket).",
        subcommands: [AppointAdmin.self]
    )

    struct AppointAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "appoint-admin",
            abstract: "Make a user administrator after verifying their identity (R-SUP-1)."
        )
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "The environment id.") var environment: String
        @Option(help: "The user: id or email.") var user: String
        @Option(help: "How identity was verified: known_email or kvk_extract.") var method: String
        @Option(help: "What was checked (e.g. the KvK extract's number and date).") var reference: String
        @Option(help: "An organisation of that environment to make the user administrator of (repeatable).") var organisation: [String] = []

        func run() async throws {
            var params: JSONObject = [
                "environment": .string(environment), "user": .string(user),
                "verification": ["method": .string(method), "reference": .string(reference)],
            ]
            if !organisation.isEmpty { params["organisations"] = .array(organisation.map(JSONValue.string)) }
            try await connection.run("support.appoint_admin", params: params, support: true) { r in "appointed\n\n" + Table.user(r["user"]) }
        }
    }
}

/// `portier metrics`: the Prometheus text of `support.metrics`, on the support socket.
struct MetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics", abstract: "Print the server's metrics (Prometheus text), from the support socket."
    )
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.run("support.metrics", support: true) { r in r["text"]?.stringValue ?? "" }
    }
}
