import PortierClient
import PortierDomain
import PortierProtocol

/// Steps many tests share, done through the real operations.
public struct Scenario: Sendable {
    public let client: PortierClient
    public init(_ client: PortierClient) { self.client = client }

    public static let password = "correct horse battery"

    /// Signs up and returns the result object.
    @discardableResult
    public func signup(_ email: String, name: String? = nil) async throws -> JSONObject {
        var params: JSONObject = ["email": .string(email)]
        if let name { params["name"] = .string(name) }
        return try await client.call("signup", params: params)
    }

    /// The clear token of the newest unacknowledged message of `kind` to `to`.
    public func token(for to: String, kind: String = "activation") async throws -> String {
        var cursor: String?
        var found: String?
        repeat {
            var params: JSONObject = ["limit": 1000]
            if let cursor { params["cursor"] = .string(cursor) }
            let page = try await client.call("outbox.list", params: params)
            for m in page["messages"]?.arrayValue ?? [] {
                let o = m.objectValue!
                if o["to"]?.stringValue?.lowercased() == to.lowercased(), o["kind"]?.stringValue == kind {
                    found = o["token"]?.stringValue
                }
            }
            cursor = page["next_cursor"]?.stringValue
        } while cursor != nil
        guard let found else { throw PortierError.notFound("\(kind) message to \(to)") }
        return found
    }

    /// Signs up and activates; returns the active user object.
    @discardableResult
    public func activeUser(_ email: String) async throws -> JSONObject {
        try await signup(email)
        return try await activate(email)
    }

    /// Activates `email`'s pending invitation with the standard password.
    @discardableResult
    public func activate(_ email: String) async throws -> JSONObject {
        let token = try await token(for: email)
        let result = try await client.call("user.activate", params: ["token": .string(token), "password": .string(Self.password)])
        return result["user"]!.objectValue!
    }
}

extension JSONObject {
    /// `self[a][b]…` as a string, for terse assertions.
    public func string(_ path: String...) -> String? {
        var value: JSONValue? = .object(self)
        for key in path { value = value?.objectValue?[key] }
        return value?.stringValue
    }
}

extension Scenario {
    /// Invites `email` with `role` on behalf of `actor`; returns the invited user.
    @discardableResult
    public func invite(_ email: String, role: String = "basic", as actor: String) async throws -> JSONObject {
        let result = try await client.call("user.invite", actor: actor, params: ["email": .string(email), "role": .string(role)])
        return result["user"]!.objectValue!
    }

    /// Invites and activates; returns the active user.
    @discardableResult
    public func member(_ email: String, role: String = "basic", as actor: String) async throws -> JSONObject {
        try await invite(email, role: role, as: actor)
        return try await activate(email)
    }

    /// An environment with an active administrator `admin@<domain>`; returns the admin.
    @discardableResult
    public func environment(_ domain: String) async throws -> JSONObject {
        try await activeUser("admin@\(domain)")
    }
}

extension JSONObject {
    /// The `id` field, for terse test code.
    public var id: String { self["id"]!.stringValue! }
}

extension Scenario {
    /// Creates and activates an organisation on behalf of `actor`; returns its id.
    public func organisation(_ name: String, as actor: String, activate: Bool = true) async throws -> String {
        let org = try await client.call("organisation.create", actor: actor, params: ["name": .string(name)])["organisation"]!.objectValue!
        if activate { try await client.call("organisation.activate", actor: actor, params: ["organisation": .string(org.id)]) }
        return org.id
    }

    /// `a` proposes to the environment of `b`, and `b` accepts; returns the partnership id.
    @discardableResult
    public func partners(_ a: String, _ b: String) async throws -> String {
        let proposal = try await client.call("partnership.propose", actor: a, params: ["email": .string(b)])
        let id = proposal.string("partnership", "id")!
        try await client.call("partnership.accept", actor: b, params: ["partnership": .string(id)])
        return id
    }

    /// The decision of one check, as (allowed, reason).
    public func check(_ user: String, _ permission: String, in organisation: String? = nil) async throws -> (Bool, String) {
        Self.decision(try await client.call("check", params: Self.question(user, permission, organisation)))
    }

    /// The same question as a one-item `check.bulk`, which waits for the
    /// environments' indexes to load: afterwards this instance has them in memory
    /// (a single `check` of a cold environment is answered by PostgreSQL and
    /// loads it in the background).
    public func checkLoading(_ user: String, _ permission: String, in organisation: String? = nil) async throws -> (Bool, String) {
        let r = try await client.call("check.bulk", params: ["checks": [.object(Self.question(user, permission, organisation))]])
        return Self.decision(r["results"]?.arrayValue?.first?.objectValue ?? [:])
    }

    private static func question(_ user: String, _ permission: String, _ organisation: String?) -> JSONObject {
        var q: JSONObject = ["user": .string(user), "permission": .string(permission)]
        if let organisation { q["organisation"] = .string(organisation) }
        return q
    }

    private static func decision(_ result: JSONObject) -> (Bool, String) {
        (result["allowed"]?.boolValue ?? false, result["reason"]?.stringValue ?? "")
    }

    /// The pending inbox requests of `actor`.
    public func inbox(_ actor: String) async throws -> [JSONObject] {
        try await client.call("inbox.list", actor: actor)["requests"]!.arrayValue!.map { $0.objectValue! }
    }
}
