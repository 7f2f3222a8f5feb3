import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// Reads an organisation id param.
    static func organisationParam(_ params: JSONObject, _ key: String = "organisation") throws -> ScopedID {
        let text = try params.requiredString(key)
        guard let id = ScopedID(text, kind: .organisation) else { throw PortierError.badRequest("params.\(key) must be an organisation id") }
        return id
    }

    /// Environments to scope a transaction to: each once, in order.
    static func scope(_ environments: EnvironmentID...) -> [EnvironmentID] { Array(Set(environments)).sorted() }

    /// `organisation.create` (R-ORG-1, R-ORG-2): the creator becomes its organisation administrator.
    func organisationCreate(_ p: OrganisationCreateParams, _ request: Request) async throws -> OperationOutput {
        let (name, kvk, country) = (p.name, p.kvkNumber, p.country)
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment]) { tx in
            let actor = try Self.administrator(tx, actorRef, to: "create organisations")
            let org = try tx.insertOrganisation(actor.environment, name: name, kvkNumber: kvk, country: country)
            _ = try tx.insertMembership(organisation: org.scopedID, user: actor.scopedID, role: .administrator, status: .active)
            let details: JSONValue = ["name": .string(name), "kvk_number": .orNull(kvk), "country": .orNull(country)]
            try tx.audit(environment: actor.environment, actor: actor.auditActor, op: "organisation.create", target: org.scopedID.description, details: details.jsonText)
            return .result(["organisation": org.json], revision: try tx.bumpRevision(actor.environment))
        }
    }

    /// `organisation.activate` (R-ORG-2): by an environment administrator.
    func organisationActivate(_ p: OrganisationParams, _ request: Request) async throws -> OperationOutput {
        let id = p.organisation
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment]) { tx in
            let actor = try Self.administrator(tx, actorRef, to: "activate organisations")
            guard id.environment == actor.environment, let org = try tx.organisation(id, lock: true) else { throw PortierError.notFound("organisation") }
            guard org.status == .inactive else { throw PortierError.invalidState("the organisation is already active") }
            let updated = try tx.updateOrganisation(id, name: org.name, kvkNumber: org.kvkNumber, country: org.country, status: .active)
            try tx.audit(environment: actor.environment, actor: actor.auditActor, op: "organisation.activate", target: id.description, details: Self.change("status", from: "inactive", to: "active").jsonText)
            return .result(["organisation": updated.json], revision: try tx.bumpRevision(actor.environment))
        }
    }

    /// `organisation.update` (R-ORG-3): name, kvk_number, country; null clears an optional field.
    func organisationUpdate(_ p: OrganisationUpdateParams, _ request: Request) async throws -> OperationOutput {
        let (id, name, kvk, country, clearsKvk, clearsCountry) = (p.organisation, p.name, p.kvkNumber, p.country, p.clearsKvkNumber, p.clearsCountry)
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment]) { tx in
            let actor = try Self.administrator(tx, actorRef, to: "edit organisations")
            guard id.environment == actor.environment, let org = try tx.organisation(id, lock: true) else { throw PortierError.notFound("organisation") }
            let newName = name ?? org.name
            let newKvk = clearsKvk ? nil : (kvk ?? org.kvkNumber)
            let newCountry = clearsCountry ? nil : (country ?? org.country)
            let updated = try tx.updateOrganisation(id, name: newName, kvkNumber: newKvk, country: newCountry, status: org.status)
            var before = JSONObject(), after = JSONObject()
            for (key, old, new) in [("name", org.name, newName), ("kvk_number", org.kvkNumber, newKvk), ("country", org.country, newCountry)] as [(String, String?, String?)] where old != new {
                before[key] = .orNull(old)
                after[key] = .orNull(new)
            }
            guard !after.isEmpty else { return .result(["organisation": org.json]) }
            let details: JSONValue = ["before": .object(before), "after": .object(after)]
            try tx.audit(environment: actor.environment, actor: actor.auditActor, op: "organisation.update", target: id.description, details: details.jsonText)
            return .result(["organisation": updated.json], revision: try tx.bumpRevision(actor.environment))
        }
    }

    /// `organisation.get`: environment administrators of its environment, and its active members.
    func organisationGet(_ p: OrganisationParams, _ request: Request) async throws -> OperationOutput {
        let id = p.organisation
        let actorRef = try await actorReference(request)
        return try await transaction(environments: Self.scope(actorRef.environment, id.environment)) { tx in
            let actor = try Self.activeActor(tx, actorRef)
            let org = try Self.visibleOrganisation(tx, id, to: actor)
            return .result(["organisation": org.json])
        }
    }

    /// The organisation if the actor may see it: environment administrator of its
    /// environment, or active member. Others of its environment get `forbidden`;
    /// everyone else `not_found` (no hint it exists).
    static func visibleOrganisation(_ tx: Transaction, _ id: ScopedID, to actor: UserRecord) throws -> OrganisationRecord {
        guard let org = try tx.organisation(id) else { throw PortierError.notFound("organisation") }
        if actor.role == .administrator, actor.environment == org.environment { return org }
        // Members see it while it is active (R-ORG-2: an inactive one grants them nothing).
        if org.status == .active, try tx.membership(organisation: id, user: actor.scopedID)?.status == .active { return org }
        if actor.environment == org.environment { throw PortierError.forbidden("only its members and environment administrators see this organisation") }
        throw PortierError.notFound("organisation")
    }

    /// `organisation.list`: all of the environment's for administrators, plus every
    /// organisation (own or partner) where the actor is an active member. Paged.
    func organisationList(_ p: ListParams<ListedOrganisations>, _ request: Request) async throws -> OperationOutput {
        let page = p.page
        let actorRef = try await actorReference(request)
        return try await transaction(environments: [actorRef.environment]) { tx in
            let actor = try Self.activeActor(tx, actorRef)
            var ids = Set(try tx.ownMemberships(user: actor.scopedID).filter { $0.status == .active }.map(\.organisation))
            if actor.role == .administrator { ids.formUnion(try tx.organisations(actor.environment).map(\.scopedID)) }
            let links = try tx.partnerOrganisationLinks(user: actor.scopedID)
            if !links.isEmpty {
                try tx.setEnvironments([actor.environment] + Set(links.map(\.environment)).sorted())
                ids.formUnion(try tx.partnerMemberships(user: actor.scopedID, organisations: links).filter { $0.status == .active }.map(\.organisation))
            }
            // Members see only active organisations (R-ORG-2); administrators see all of their environment's.
            let visible = try tx.organisations(Array(ids)).filter { $0.status == .active || (actor.role == .administrator && $0.environment == actor.environment) }
            let orgs = visible.page(page) { $0.scopedID }  // in id order, like the page
            return .result(page.result("organisations", orgs, id: \.scopedID, json: \.json))
        }
    }
}

/// `organisation.create`: `{name, kvk_number?, country?}`.
struct OrganisationCreateParams: OperationParams {
    static let keys: Set<String> = ["name", "kvk_number", "country"]
    let name: String
    let kvkNumber: String?
    let country: String?
    init(_ params: JSONObject) throws {
        name = try OrganisationRules.name(try params.requiredString("name"))
        kvkNumber = try params.optionalString("kvk_number").map(OrganisationRules.kvkNumber)
        country = try params.optionalString("country").map(OrganisationRules.country)
    }
}

/// `organisation.update`: `{organisation}` and at least one of `name`,
/// `kvk_number`, `country`; null clears an optional field.
struct OrganisationUpdateParams: OperationParams {
    static let keys: Set<String> = ["organisation", "name", "kvk_number", "country"]
    let organisation: ScopedID
    let name: String?
    let kvkNumber: String?
    let country: String?
    let clearsKvkNumber: Bool
    let clearsCountry: Bool
    init(_ params: JSONObject) throws {
        organisation = try PortierService.organisationParam(params)
        guard params["name"] != nil || params["kvk_number"] != nil || params["country"] != nil else {
            throw PortierError.badRequest("give at least one of name, kvk_number, country")
        }
        name = try params.optionalString("name").map(OrganisationRules.name)
        kvkNumber = try params.optionalString("kvk_number").map(OrganisationRules.kvkNumber)
        country = try params.optionalString("country").map(OrganisationRules.country)
        clearsKvkNumber = params["kvk_number"] == .null
        clearsCountry = params["country"] == .null
    }
}
