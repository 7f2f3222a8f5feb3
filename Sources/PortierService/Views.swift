import PortierDomain
import PortierProtocol
import PortierStorage

// How records appear on the wire (SPEC §11, "Objects carry at least these fields").

extension UserRecord {
    var json: JSONValue {
        [
            "id": .string(scopedID.description),
            "environment": .string(environment.description),
            "email": .string(email),
            "name": .string(name),
            "role": .string(role.rawValue),
            "status": .string(status.rawValue),
        ]
    }
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
