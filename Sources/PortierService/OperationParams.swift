import PortierDomain
import PortierProtocol

/// An operation's parameters, decoded and validated once from the request
/// before the operation runs (the registry does it, `Operation.init`): the
/// operation itself sees typed values only. A missing, mistyped or invalid
/// value, or a key not in `keys`, is `bad_request` and nothing runs.
protocol OperationParams: Sendable {
    /// Every key `params` may hold; `Protocol/`'s schema of the operation lists
    /// the same (ProtocolDocumentationTests).
    static var keys: Set<String> { get }
    init(_ params: JSONObject) throws
}

/// No parameters: `params` must be empty (or absent).
struct NoParams: OperationParams {
    static let keys: Set<String> = []
    init(_ params: JSONObject) {}
}

/// `{user}`: a user by id or email.
struct UserParams: OperationParams {
    static let keys: Set<String> = ["user"]
    let user: UserReference
    init(_ params: JSONObject) throws { user = try PortierService.userParam(params) }
}

/// `{email}`.
struct EmailParams: OperationParams {
    static let keys: Set<String> = ["email"]
    let email: EmailAddress
    init(_ params: JSONObject) throws { email = try EmailAddress(try params.requiredString("email")) }
}

/// `{organisation}`.
struct OrganisationParams: OperationParams {
    static let keys: Set<String> = ["organisation"]
    let organisation: ScopedID
    init(_ params: JSONObject) throws { organisation = try PortierService.organisationParam(params) }
}

/// `{partnership}`.
struct PartnershipParams: OperationParams {
    static let keys: Set<String> = ["partnership"]
    let partnership: ScopedID
    init(_ params: JSONObject) throws { partnership = try PortierService.partnershipParam(params) }
}

/// What a paged list lists: the kind of id its cursor is.
protocol ListedKind: Sendable {
    static var kind: EntityKind { get }
}
enum ListedOrganisations: ListedKind { static let kind = EntityKind.organisation }
enum ListedRequests: ListedKind { static let kind = EntityKind.request }
enum ListedPartnerships: ListedKind { static let kind = EntityKind.partnership }
enum ListedEvents: ListedKind { static let kind = EntityKind.event }
enum ListedMessages: ListedKind { static let kind = EntityKind.message }

/// `{limit?, cursor?}` of a list whose cursor is an id of `Listed.kind`.
struct ListParams<Listed: ListedKind>: OperationParams {
    static var keys: Set<String> { PageRequest.keys }
    let page: PageRequest
    init(_ params: JSONObject) throws { page = try PageRequest(params, kind: Listed.kind) }
}

/// `{token, password}`: an activation or a password reset.
struct TokenPasswordParams: OperationParams {
    static let keys: Set<String> = ["token", "password"]
    let token: String
    let password: String
    init(_ params: JSONObject) throws {
        token = try params.requiredString("token")
        password = try params.requiredString("password")
    }
}
