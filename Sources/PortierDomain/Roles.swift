/// A user's role in their environment (docs/rules.md §1).
public enum EnvironmentRole: String, Sendable, CaseIterable, Codable {
    case basic, advanced, administrator
}

/// A user's status in their environment. A removed user has no row at all.
public enum UserStatus: String, Sendable, CaseIterable, Codable {
    case invited, active, blocked
}

/// A member's role in one organisation.
public enum OrganisationRole: String, Sendable, CaseIterable, Codable {
    case member, administrator
}

/// `active`, or `pending` while a partner user has not accepted (R-MEM-3).
public enum MembershipStatus: String, Sendable, CaseIterable, Codable {
    case active, pending
}

/// Organisations start `inactive` until an administrator activates them (R-ORG-2).
public enum OrganisationStatus: String, Sendable, CaseIterable, Codable {
    case inactive, active
}

/// A partnership is `pending` until the other side accepts (R-PTN-1).
public enum PartnershipStatus: String, Sendable, CaseIterable, Codable {
    case pending, active, ended, declined
}

/// Whether a domain claim has been proven by an activation on that domain (R-ENV-7).
public enum DomainClaimStatus: String, Sendable, CaseIterable, Codable {
    case pending, confirmed
}

/// The kinds of message the outbox carries (docs/rules.md §11).
public enum OutboxKind: String, Sendable, CaseIterable, Codable {
    case activation
    case emailVerification = "email_verification"
    case membershipRequest = "membership_request"
    case partnershipRequest = "partnership_request"
    case domainJoin = "domain_join"
    case passwordReset = "password_reset"
    case adminAppointed = "admin_appointed"
}

/// What a single-use token proves when it is presented.
public enum TokenPurpose: String, Sendable, CaseIterable, Codable {
    case activation
    case emailVerification = "email_verification"
    case passwordReset = "password_reset"
}
