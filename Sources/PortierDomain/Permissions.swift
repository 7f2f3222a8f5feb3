/// The permissions other services ask about (docs/rules.md §7).
public enum Permission: String, Sendable, CaseIterable {
    case usersInvite = "users.invite"
    case usersManage = "users.manage"
    case organisationsCreate = "organisations.create"
    case subscriptionsManage = "subscriptions.manage"
    case environmentManage = "environment.manage"
    case partnershipsManage = "partnerships.manage"
    case documentsView = "documents.view"
    case documentsCreate = "documents.create"
    case documentsSend = "documents.send"
    case organisationView = "organisation.view"
    case membersManage = "members.manage"
    case organisationEdit = "organisation.edit"

    /// Parses a permission name; an unknown name is a `bad_request`, never a silent false (R-PRM-3).
    public init(name: String) throws(InvalidInput) {
        guard let p = Permission(rawValue: name) else {
            throw .badRequest("unknown permission \"\(name)\"; known: \(Permission.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = p
    }

    public var rule: PermissionRule { PermissionTable.rules[self]! }
}

/// Who holds a permission: one row of the table in docs/rules.md §7.
public enum Holder: Sendable, Equatable {
    /// Users with one of these environment roles (environment-scoped permissions).
    case environmentRole(Set<EnvironmentRole>)
    /// Any active member of the organisation, own or partner environment.
    case activeMember
    /// An organisation administrator of it, or an environment administrator of its environment.
    case organisationOrEnvironmentAdministrator
    /// An environment administrator of the organisation's environment.
    case environmentAdministrator
}

/// A permission's scope and holders.
public struct PermissionRule: Sendable, Equatable {
    public enum Scope: Sendable, Equatable { case environment, organisation }
    public let scope: Scope
    public let holder: Holder
    /// Held on an inactive organisation too (R-ORG-2: only what its
    /// environment administrators need to edit and activate it).
    public let heldWhileInactive: Bool

    public init(scope: Scope, holder: Holder, heldWhileInactive: Bool = false) {
        self.scope = scope
        self.holder = holder
        self.heldWhileInactive = heldWhileInactive
    }
}

/// docs/rules.md §7 as data: change the rules here and nowhere else.
public enum PermissionTable {
    public static let rules: [Permission: PermissionRule] = [
        .usersInvite: PermissionRule(scope: .environment, holder: .environmentRole([.administrator])),
        .usersManage: PermissionRule(scope: .environment, holder: .environmentRole([.administrator])),
        .organisationsCreate: PermissionRule(scope: .environment, holder: .environmentRole([.administrator])),
        .subscriptionsManage: PermissionRule(scope: .environment, holder: .environmentRole([.administrator])),
        .environmentManage: PermissionRule(scope: .environment, holder: .environmentRole([.administrator])),
        .partnershipsManage: PermissionRule(scope: .environment, holder: .environmentRole([.advanced, .administrator])),
        .documentsView: PermissionRule(scope: .organisation, holder: .activeMember),
        .documentsCreate: PermissionRule(scope: .organisation, holder: .activeMember),
        .documentsSend: PermissionRule(scope: .organisation, holder: .activeMember),
        .organisationView: PermissionRule(scope: .organisation, holder: .activeMember),
        .membersManage: PermissionRule(scope: .organisation, holder: .organisationOrEnvironmentAdministrator),
        .organisationEdit: PermissionRule(scope: .organisation, holder: .environmentAdministrator, heldWhileInactive: true),
    ]
}

/// What a check knows about a user and, for organisation-scoped permissions, an organisation.
public struct PermissionFacts: Sendable, Equatable {
    /// The user, or nil when no such user exists (removed, or never did).
    public var user: (role: EnvironmentRole, status: UserStatus, environment: EnvironmentID)?
    /// The organisation's environment, or nil when it does not exist.
    public var organisationEnvironment: EnvironmentID?
    /// Whether the organisation is active (R-ORG-2); meaningful when it exists.
    public var organisationActive: Bool
    /// The user's membership of the organisation, if any.
    public var membership: (role: OrganisationRole, status: MembershipStatus)?

    public init(user: (role: EnvironmentRole, status: UserStatus, environment: EnvironmentID)?,
                organisationEnvironment: EnvironmentID? = nil,
                organisationActive: Bool = true,
                membership: (role: OrganisationRole, status: MembershipStatus)? = nil) {
        self.user = user
        self.organisationEnvironment = organisationEnvironment
        self.organisationActive = organisationActive
        self.membership = membership
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.user?.role == b.user?.role && a.user?.status == b.user?.status && a.user?.environment == b.user?.environment
            && a.organisationEnvironment == b.organisationEnvironment && a.organisationActive == b.organisationActive
            && a.membership?.role == b.membership?.role && a.membership?.status == b.membership?.status
    }
}

/// A check's answer: allowed or not, and why (R-PRM-3).
public struct Decision: Sendable, Equatable, CustomStringConvertible {
    public let allowed: Bool
    public let reason: Reason

    /// The reasons a check gives. Stable wire values.
    public enum Reason: String, Sendable, CaseIterable {
        case member, orgAdministrator = "org_administrator", envAdministrator = "env_administrator"
        case envAdvanced = "env_advanced"
        case notMember = "not_member", pendingMembership = "pending_membership"
        case insufficientRole = "insufficient_role"
        case blocked, notActivated = "not_activated", unknownUser = "unknown_user"
        case unknownOrganisation = "unknown_organisation"
        case organisationInactive = "organisation_inactive"
    }

    public static func allow(_ reason: Reason) -> Decision { Decision(allowed: true, reason: reason) }
    public static func deny(_ reason: Reason) -> Decision { Decision(allowed: false, reason: reason) }

    public var description: String { "\(allowed ? "allowed" : "denied") (\(reason.rawValue))" }
}

extension Permission {
    /// Decides from `facts`, exactly per docs/rules.md §7 and R-PRM-1…3.
    public func decide(_ facts: PermissionFacts) -> Decision {
        // R-PRM-1: only active users of an existing environment hold permissions.
        guard let user = facts.user else { return .deny(.unknownUser) }
        switch user.status {
        case .invited: return .deny(.notActivated)
        case .blocked: return .deny(.blocked)
        case .active: break
        }
        let rule = self.rule
        if rule.scope == .organisation, facts.organisationEnvironment == nil { return .deny(.unknownOrganisation) }
        // R-ORG-2: an inactive organisation grants nothing on documents or members.
        if rule.scope == .organisation, !facts.organisationActive, !rule.heldWhileInactive { return .deny(.organisationInactive) }
        let isEnvironmentAdministrator = user.role == .administrator && facts.organisationEnvironment == user.environment
        let activeMembership = facts.membership?.status == .active ? facts.membership : nil
        switch rule.holder {
        case .environmentRole(let roles):
            guard roles.contains(user.role) else { return .deny(.insufficientRole) }
            return .allow(user.role == .administrator ? .envAdministrator : .envAdvanced)
        case .activeMember:
            // R-PRM-2: being environment administrator does not show documents.
            if let m = activeMembership { return .allow(m.role == .administrator ? .orgAdministrator : .member) }
            return .deny(facts.membership?.status == .pending ? .pendingMembership : .notMember)
        case .organisationOrEnvironmentAdministrator:
            if activeMembership?.role == .administrator { return .allow(.orgAdministrator) }
            if isEnvironmentAdministrator { return .allow(.envAdministrator) }
            if facts.membership?.status == .pending { return .deny(.pendingMembership) }
            return .deny(activeMembership == nil ? .notMember : .insufficientRole)
        case .environmentAdministrator:
            return isEnvironmentAdministrator ? .allow(.envAdministrator) : .deny(.insufficientRole)
        }
    }
}
