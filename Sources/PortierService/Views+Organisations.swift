import PortierDomain
import PortierProtocol
import PortierStorage

extension OrganisationRecord {
    var json: JSONValue { WireObject.organisation(scopedID, name: name, kvkNumber: kvkNumber, country: country, status: status) }
}

extension MembershipRecord {
    func json(email: String? = nil) -> JSONValue {
        var o: JSONObject = [
            "organisation": .string(organisation.description),
            "user": .string(user.description),
            "role": .string(role.rawValue),
            "status": .string(status.rawValue),
        ]
        if let email { o["email"] = .string(email) }
        return .object(o)
    }
}

extension PartnershipRecord {
    /// `proposer` proposed; `partner` is the environment that received the proposal.
    var json: JSONValue {
        let receiver = environment == proposer ? partner : environment
        return [
            "id": .string(scopedID.description),
            "proposer": .string(proposer.description),
            "partner": .string(receiver.description),
            "status": .string(status.rawValue),
        ]
    }
}

extension InboxRequestRecord {
    /// - Parameter partnership: the partnership a proposal is about (its id names the proposer).
    func json(partnership: PartnershipRecord? = nil) -> JSONValue {
        var o: JSONObject = ["id": .string(scopedID.description), "kind": .string(kind), "status": .string(status)]
        if let organisation {
            o["organisation"] = .string(organisation.description)
            o["from"] = .string(organisation.environment.description)
        }
        if let partnership {
            o["partnership"] = .string(partnership.scopedID.description)
            o["from"] = .string(partnership.proposer.description)
        }
        return .object(o)
    }
}

extension Transaction {
    /// The request as JSON, with the partnership it is about looked up in its environment.
    func requestJSON(_ request: InboxRequestRecord) throws -> JSONValue {
        guard let id = request.partnershipID else { return request.json() }
        let side: PartnershipRecord? = try self.partnership(request.environment, id: id)
        return request.json(partnership: side)
    }
}

extension Decision {
    /// The 22 possible answers, built once: the hot path allocates none.
    private static let encoded: [Bool: [Reason: JSONObject]] = [true, false].reduce(into: [:]) { table, allowed in
        table[allowed] = Dictionary(uniqueKeysWithValues: Reason.allCases.map {
            ($0, ["allowed": .bool(allowed), "reason": .string($0.rawValue)] as JSONObject)
        })
    }

    var jsonObject: JSONObject { Self.encoded[allowed]![reason]! }
    var json: JSONValue { .object(jsonObject) }
}
