import Foundation
import ArgumentParser
import PortierProtocol

/// `portier org …`: organisations (docs/rules.md §4).
struct OrgCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "org",
        abstract: "Create, activate, edit, show and list organisations.",
        subcommands: [Create.self, Activate.self, Update.self, Get.self, List.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an organisation; you become its organisation administrator (administrators).")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The organisation's name.") var name: String
        @Option(help: "Chamber of Commerce (KvK) number: 8 digits.") var kvk: String?
        @Option(help: "Country, ISO 3166-1 alpha-2 (e.g. NL).") var country: String?

        func run() async throws {
            var params: JSONObject = ["name": .string(name)]
            if let kvk { params["kvk_number"] = .string(kvk) }
            if let country { params["country"] = .string(country) }
            try await connection.run("organisation.create", actor: actor.actor, params: params) { r in Table.organisation(r["organisation"]) }
        }
    }

    struct Activate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Activate an organisation (administrators).")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The organisation id.") var organisation: String

        func run() async throws {
            try await connection.run("organisation.activate", actor: actor.actor, params: ["organisation": .string(organisation)]) { r in Table.organisation(r["organisation"]) }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Edit an organisation's details (administrators). An empty value clears KvK or country.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The organisation id.") var organisation: String
        @Option(help: "New name.") var name: String?
        @Option(help: "New KvK number (empty clears it).") var kvk: String?
        @Option(help: "New country (empty clears it).") var country: String?

        func run() async throws {
            var params: JSONObject = ["organisation": .string(organisation)]
            if let name { params["name"] = .string(name) }
            if let kvk { params["kvk_number"] = kvk.isEmpty ? .null : .string(kvk) }
            if let country { params["country"] = country.isEmpty ? .null : .string(country) }
            try await connection.run("organisation.update", actor: actor.actor, params: params) { r in Table.organisation(r["organisation"]) }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an organisation.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The organisation id.") var organisation: String

        func run() async throws {
            try await connection.run("organisation.get", actor: actor.actor, params: ["organisation": .string(organisation)]) { r in Table.organisation(r["organisation"]) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Organisations you see (all of the environment's for administrators, plus your memberships).")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @OptionGroup var page: PageOptions

        func run() async throws {
            try await connection.runList("organisation.list", actor: actor.actor, key: "organisations", page: page) { rows, next in
                Table.rows(rows, next: next, [("ID", "id"), ("NAME", "name"), ("KVK", "kvk_number"), ("COUNTRY", "country"), ("STATUS", "status")])
            }
        }
    }
}

/// `portier member …`: memberships (docs/rules.md §5).
struct MemberCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member",
        abstract: "Add, change, remove and list an organisation's members.",
        subcommands: [Add.self, SetRole.self, Remove.self, List.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a member: at once for your environment's users, pending for a partner's.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The organisation id.") var organisation: String
        @Argument(help: "The user: id or email (also of a partner environment).") var user: String
        @Option(help: "member (default) or administrator.") var role: String?

        func run() async throws {
            var params: JSONObject = ["organisation": .string(organisation), "user": .string(user)]
            if let role { params["role"] = .string(role) }
            try await connection.run("member.add", actor: actor.actor, params: params) { r in Table.membership(r["membership"]) }
        }
    }

    struct SetRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-role", abstract: "Change a member's organisation role.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The organisation id.") var organisation: String
        @Argument(help: "The user: id or email.") var user: String
        @Argument(help: "member or administrator.") var role: String

        func run() async throws {
            try await connection.run("member.set_role", actor: actor.actor, params: ["organisation": .string(organisation), "user": .string(user), "role": .string(role)]) { r in
                Table.membership(r["membership"])
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a member; access ends at once.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The organisation id.") var organisation: String
        @Argument(help: "The user: id or email.") var user: String

        func run() async throws {
            try await connection.run("member.remove", actor: actor.actor, params: ["organisation": .string(organisation), "user": .string(user)]) { _ in "removed \(user) from \(organisation)\n" }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An organisation's members.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The organisation id.") var organisation: String
        @OptionGroup var page: PageOptions

        func run() async throws {
            try await connection.runList("member.list", actor: actor.actor, params: ["organisation": .string(organisation)], key: "memberships", page: page) { rows, next in
                Table.rows(rows, next: next, [("USER", "user"), ("EMAIL", "email"), ("ROLE", "role"), ("STATUS", "status")])
            }
        }
    }
}

/// `portier partner …`: partnerships between environments (docs/rules.md §6).
struct PartnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "partner",
        abstract: "Propose, answer, end and list partnerships (advanced users and administrators).",
        subcommands: [Propose.self, Accept.self, Decline.self, End.self, List.self]
    )

    struct Propose: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Propose a partnership to an environment, by its id or a user's email.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "An environment id (env_…) or the email of one of its users.") var target: String

        func run() async throws {
            let params: JSONObject = target.hasPrefix("env_") ? ["environment": .string(target)] : ["email": .string(target)]
            try await connection.run("partnership.propose", actor: actor.actor, params: params) { r in Table.partnership(r["partnership"]) }
        }
    }

    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Accept a proposal made to your environment.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The partnership id.") var partnership: String

        func run() async throws {
            try await connection.run("partnership.accept", actor: actor.actor, params: ["partnership": .string(partnership)]) { r in Table.partnership(r["partnership"]) }
        }
    }

    struct Decline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decline a proposal made to your environment.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The partnership id.") var partnership: String

        func run() async throws {
            try await connection.run("partnership.decline", actor: actor.actor, params: ["partnership": .string(partnership)]) { r in Table.partnership(r["partnership"]) }
        }
    }

    struct End: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a partnership; every membership that depended on it ends.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The partnership id.") var partnership: String

        func run() async throws {
            try await connection.run("partnership.end", actor: actor.actor, params: ["partnership": .string(partnership)]) { r in Table.partnership(r["partnership"]) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Your environment's partnerships.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @OptionGroup var page: PageOptions

        func run() async throws {
            try await connection.runList("partnership.list", actor: actor.actor, key: "partnerships", page: page) { rows, next in
                Table.rows(rows, next: next, [("ID", "id"), ("PROPOSER", "proposer"), ("PARTNER", "partner"), ("STATUS", "status")])
            }
        }
    }
}

/// `portier inbox …`: requests waiting for the actor.
struct InboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inbox",
        abstract: "Requests waiting for you: membership requests and partnership proposals.",
        subcommands: [List.self, Accept.self, Decline.self], defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pending requests.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @OptionGroup var page: PageOptions

        func run() async throws {
            try await connection.runList("inbox.list", actor: actor.actor, key: "requests", page: page) { rows, next in
                Table.rows(rows, next: next, [("ID", "id"), ("KIND", "kind"), ("ORGANISATION", "organisation"), ("PARTNERSHIP", "partnership"), ("FROM", "from")])
            }
        }
    }

    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Accept a request.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The request id.") var request: String

        func run() async throws {
            try await connection.run("inbox.accept", actor: actor.actor, params: ["request": .string(request)]) { _ in "accepted \(request)\n" }
        }
    }

    struct Decline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decline a request.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var actor: ActorOption
        @Argument(help: "The request id.") var request: String

        func run() async throws {
            try await connection.run("inbox.decline", actor: actor.actor, params: ["request": .string(request)]) { _ in "declined \(request)\n" }
        }
    }
}

/// `portier check`, `portier lookup …`: permission questions (docs/rules.md §7).
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "May this user do that (in this organisation)?",
        discussion: "With --exit-code, like `kubectl auth can-i`: exit 0 when allowed, 1 when denied (2: the request was refused)."
    )
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The user: id or email.") var user: String
    @Argument(help: "The permission, e.g. documents.view.") var permission: String
    @Option(help: "The organisation id (for organisation-scoped permissions).") var organisation: String?
    @Flag(help: "Exit 1 when denied (for scripts: `portier check … --exit-code && …`).") var exitCode = false

    func run() async throws {
        var params: JSONObject = ["user": .string(user), "permission": .string(permission)]
        if let organisation { params["organisation"] = .string(organisation) }
        var allowed = false
        try await connection.run("check", params: params) { r in
            allowed = r["allowed"]?.boolValue == true
            return "\(allowed ? "allowed" : "denied") (\(r["reason"]?.display ?? ""))\n"
        }
        if exitCode, !allowed { throw ExitCode(CLIExit.denied.rawValue) }
    }
}

/// `portier check-bulk`: many questions in one request (up to 1,000).
struct CheckBulkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-bulk",
        abstract: "Many checks in one request: a JSON array of {user, permission, organisation?} from a file or standard input.",
        discussion: "Example: echo '[{\"user\": \"usr_1_1\", \"permission\": \"users.invite\"}]' | portier check-bulk -"
    )
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The file with the JSON array, or - for standard input.") var file: String
    @Flag(help: "Exit 1 unless every check is allowed.") var exitCode = false

    func run() async throws {
        guard let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: file) else {
            throw ValidationError("cannot read \(file): no such file, or not readable")
        }
        guard case .array(let checks)? = try? JSONParser.parse(Array(data)) else {
            throw ValidationError("\(file) must hold a JSON array of {user, permission, organisation?}")
        }
        var all = true
        try await connection.run("check.bulk", params: ["checks": .array(checks)]) { r in
            let results = r["results"]?.arrayValue ?? []
            var rows: [[String]] = []
            for (question, answer) in zip(checks, results) {
                let q = question.objectValue ?? [:], a = answer.objectValue ?? [:]
                let allowed = a["allowed"]?.boolValue == true
                all = all && allowed
                rows.append([q["user"]?.display ?? "", q["permission"]?.display ?? "", q["organisation"]?.display ?? "-",
                             allowed ? "allowed" : "denied", a["reason"]?.display ?? ""])
            }
            return Table.columns(["USER", "PERMISSION", "ORGANISATION", "ANSWER", "REASON"], rows)
        }
        if exitCode, !all { throw ExitCode(CLIExit.denied.rawValue) }
    }
}

struct LookupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookup",
        abstract: "Who holds a permission where (R-PRM-4).",
        subcommands: [Organisations.self, Users.self]
    )

    struct Organisations: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The organisations where a user holds a permission.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user: id or email.") var user: String
        @Argument(help: "An organisation-scoped permission.") var permission: String
        @OptionGroup var page: PageOptions

        func run() async throws {
            try await connection.runList("lookup.organisations", params: ["user": .string(user), "permission": .string(permission)], key: "organisations", page: page) { rows, next in
                Table.rows(rows, next: next, [("ID", "id"), ("NAME", "name"), ("ENVIRONMENT", "environment")])
            }
        }
    }

    struct Users: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The users who hold a permission in an organisation.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The organisation id.") var organisation: String
        @Argument(help: "An organisation-scoped permission.") var permission: String
        @OptionGroup var page: PageOptions

        func run() async throws {
            try await connection.runList("lookup.users", params: ["organisation": .string(organisation), "permission": .string(permission)], key: "users", page: page) { rows, next in
                Table.rows(rows, next: next, [("ID", "id"), ("EMAIL", "email"), ("ENVIRONMENT", "environment")])
            }
        }
    }
}
