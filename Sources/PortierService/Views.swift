import PortierDomain
import PortierProtocol
import PortierStorage

// How records appear on the wire (docs/rules.md §11, "Objects carry at least these fields").

/// The wire shapes of objects that come both from the database and from the index.
enum WireObject {
    static func user(_ id: ScopedID, email: String, name: String, role: EnvironmentRole, status: UserStatus) -> JSONValue {
        [
            "id": .string(id.description),
            "environment": .string(id.environment.description),
            "email": .string(email),
            "name": .string(name),
            "role": .string(role.rawValue),
            "status": .string(status.rawValue),
        ]
    }

    static func organisation(_ id: ScopedID, name: String, kvkNumber: String?, country: String?, status: OrganisationStatus) -> JSONValue {
        [
            "id": .string(id.description),
            "environment": .string(id.environment.description),
            "name": .string(name),
            "kvk_number": .orNull(kvkNumber),
            "country": .orNull(country),
            "status": .string(status.rawValue),
        ]
    }
}

extension UserRecord {
    var json: JSONValue { WireObject.user(scopedID, email: email, name: name, role: role, status: status) }
}

extension EnvironmentRecord {
    var json: JSONValue {
        [
            "id": .string(id.description),
            "name": .string(name),
            "domains": .array(domains.map { .string($0.domain) }),
            "domain_claims": .array(domains.map { ["domain": .string($0.domain), "status": .string($0.status.rawValue)] }),
            "administrators": .array(activeAdministrators.map { .string(ScopedID(.user, environment: id, raw: $0).description) }),
            "warnings": .array(AdministratorRule.warnings(activeAdministrators: activeAdministrators.count).map(JSONValue.string)),
            "revision": .string(RevisionToken(environment: id, revision: revision).description),
        ]
    }
}

extension OutboxRecord {
    var json: JSONValue {
        var o: JSONObject = [
            "id": .string(ScopedID(.message, environment: environment, raw: id).description),
            "environment": .string(environment.description),
            "kind": .string(kind),
            "to": .string(recipient),
            "created_at": .string(createdAt),
        ]
        if let token { o["token"] = .string(token) }
        if let payload = try? JSONParser.parse(payload), case .object(let details) = payload, !details.isEmpty {
            o["details"] = .object(details)
        }
        return .object(o)
    }
}
