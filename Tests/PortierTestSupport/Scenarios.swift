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
